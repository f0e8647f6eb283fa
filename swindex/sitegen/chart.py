"""Line charts as plain SVG text: the site's per-layer activation chart (the paper's Figure 3) and the
quantization benchmark's perplexity chart share this one geometry and renderer.

Why plain SVG: no plotting library in the site build, and the markup is small, stable and testable. A
chart is one or more `Frame`\\ s (panels); `frame_svg` draws one inline (styled by the site's stylesheet,
class ``sw-chart-panel sw-chart-KEY``), `figure_svg` places several side by side with a legend in a
standalone file that carries its own style.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

WIDTH, HEIGHT = 380, 230
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 30, 40
LEGEND_ROW = 18

# Series colours are attributes, which any stylesheet rule would override: the standalone style sets none.
_STANDALONE_STYLE = (
    "text{fill:currentColor}.sw-chart-title{font-weight:600}.sw-grid{stroke:currentColor;stroke-opacity:.12}"
    ".sw-axis{stroke:currentColor;stroke-opacity:.5}.sw-line{fill:none;stroke-width:2}"
)


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Mark:
    """One data point as drawn: where, its hover text, and whether it is emphasised (a larger dot)."""

    x: float
    y: float
    title: str
    marked: bool = False


@dataclass(frozen=True)
class Series:
    """One line of a chart; without a colour it is left to the stylesheet (the site's light and dark themes)."""

    label: str
    marks: tuple[Mark, ...]
    colour: str | None = None
    dash: str = ""

    @property
    def polyline(self) -> str:
        return " ".join(f"{m.x:.1f},{m.y:.1f}" for m in self.marks)


@dataclass(frozen=True)
class Rule:
    """A labelled horizontal reference line (a baseline every series is compared with)."""

    y: float
    label: str
    colour: str


@dataclass(frozen=True)
class Frame:
    """One panel: axes, ticks and series, in pixels of a ``width`` x ``height`` box."""

    key: str
    title: str
    description: str  # the accessible title of the panel
    series: tuple[Series, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    x_label: str
    y_label: str = ""
    rules: tuple[Rule, ...] = ()
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM
    id_prefix: str = ""  # keeps element ids unique when one page holds several charts with the same keys


def nice_step(span: float, count: int) -> float:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) giving about ``count`` ticks over ``span``."""
    raw = span / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def format_number(value: float) -> str:
    """Short human form of a magnitude: 1313, 2.5k, 0.031."""
    magnitude = abs(value)
    if magnitude >= 10_000:
        return f"{value / 1000:.0f}k"
    if magnitude >= 1000:
        return f"{value / 1000:.3g}k"
    return f"{value:.3g}"


def linear_axis(
    peak: float, top: float, bottom: float, ticks: int = 4
) -> tuple[Callable[[float], float], tuple[Tick, ...]]:
    """A y axis from 0 to a round value at or past ``peak``: the pixel of a value, and the ticks."""
    step = nice_step(peak or 1.0, ticks)
    top_value = step * math.ceil((peak or 1.0) / step)

    def y_of(value: float) -> float:
        return top + (bottom - top) * (1 - value / top_value)

    return y_of, tuple(Tick(y_of(step * i), format_number(step * i)) for i in range(int(round(top_value / step)) + 1))


def log_axis(values: Iterable[float], top: float, bottom: float) -> tuple[Callable[[float], float], tuple[Tick, ...]]:
    """A logarithmic y axis over whole decades covering ``values`` (all positive):
    the pixel of a value, and the ticks."""
    logs = [math.log10(v) for v in values]
    lo, hi = math.floor(min(logs)), math.ceil(max(logs))
    hi = max(hi, lo + 1)

    def y_of(value: float) -> float:
        return bottom - (math.log10(value) - lo) / (hi - lo) * (bottom - top)

    return y_of, tuple(Tick(y_of(10.0**p), f"{10.0**p:g}") for p in range(lo, hi + 1))


def _dash(dash: str) -> str:
    return f' stroke-dasharray="{escape(dash)}"' if dash else ""


def frame_svg(frame: Frame, *, x: float | None = None, y: float | None = None) -> str:
    """One panel as an ``<svg>`` element (placed at x, y when nested in a figure)."""
    place = "" if x is None else f' x="{x:g}" y="{y or 0:g}"'
    ident = f"sw-chart-{escape(frame.key)}"
    title_id = f"{escape(frame.id_prefix)}{ident}-title"
    mid_x = (frame.left + frame.right) // 2
    out = [
        f'<svg class="sw-chart-panel {ident}" role="img" aria-labelledby="{title_id}"{place} viewBox="0 0 '
        f'{frame.width} {frame.height}" width="{frame.width}" height="{frame.height}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{title_id}">{escape(frame.description)}</title>',
        f'<text class="sw-chart-title" x="{frame.left}" y="16">{escape(frame.title)}</text>',
    ]
    for tick in frame.y_ticks:
        out.append(
            f'<line class="sw-grid" x1="{frame.left}" x2="{frame.right}" y1="{tick.at:.1f}" y2="{tick.at:.1f}"/>'
        )
        out.append(
            f'<text class="sw-tick" x="{frame.left - 6}" y="{tick.at + 4:.1f}" '
            f'text-anchor="end">{escape(tick.label)}</text>'
        )
    for tick in frame.x_ticks:
        out.append(
            f'<text class="sw-tick" x="{tick.at:.1f}" y="{frame.bottom + 16}" '
            f'text-anchor="middle">{escape(tick.label)}</text>'
        )
    out.append(f'<line class="sw-axis" x1="{frame.left}" x2="{frame.right}" y1="{frame.bottom}" y2="{frame.bottom}"/>')
    out.append(f'<line class="sw-axis" x1="{frame.left}" x2="{frame.left}" y1="{frame.top}" y2="{frame.bottom}"/>')
    out.append(
        f'<text class="sw-axis-label" x="{mid_x}" y="{frame.height - 4}" '
        f'text-anchor="middle">{escape(frame.x_label)}</text>'
    )
    if frame.y_label:
        mid_y = (frame.top + frame.bottom) / 2
        out.append(
            f'<text class="sw-axis-label" transform="translate(14,{mid_y:g}) rotate(-90)" '
            f'text-anchor="middle">{escape(frame.y_label)}</text>'
        )
    for rule in frame.rules:
        colour = escape(rule.colour)
        out.append(
            f'<line x1="{frame.left}" x2="{frame.right}" y1="{rule.y:.1f}" y2="{rule.y:.1f}" stroke="{colour}" '
            'stroke-width="1.5"/>'
        )
        out.append(
            f'<text x="{frame.right - 4}" y="{rule.y - 4:.1f}" text-anchor="end" '
            f'fill="{colour}">{escape(rule.label)}</text>'
        )
    for series in frame.series:
        stroke = f' stroke="{escape(series.colour)}"' if series.colour else ""
        fill = f' fill="{escape(series.colour)}"' if series.colour else ""
        out.append(f'<polyline class="sw-line" points="{series.polyline}"{stroke}{_dash(series.dash)}/>')
        for m in series.marks:
            kind = "sw-point sw-marked" if m.marked else "sw-point"
            out.append(
                f'<circle class="{kind}" cx="{m.x:.1f}" cy="{m.y:.1f}" '
                f'r="{4.5 if m.marked else 2.5}"{fill}><title>{escape(m.title)}</title></circle>'
            )
    out.append("</svg>")
    return "\n".join(out)


def figure_svg(
    frames: Sequence[Frame], title: str, *, gap: int = 20, legend_columns: int = 3, legend_width: int = 210
) -> str:
    """A standalone SVG file: the frames side by side, and below them a legend of every labelled series."""
    legend: dict[tuple[str, str | None, str], None] = {}
    for frame in frames:
        for series in frame.series:
            if series.label:
                legend[(series.label, series.colour, series.dash)] = None
    width = sum(f.width for f in frames) + gap * max(len(frames) - 1, 0)
    rows = math.ceil(len(legend) / legend_columns)
    plot_height = max((f.height for f in frames), default=0)
    height = plot_height + (12 + rows * LEGEND_ROW if rows else 0)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'font-family="system-ui, sans-serif" font-size="11" role="img" aria-labelledby="sw-figure-title">',
        f'<title id="sw-figure-title">{escape(title)}</title>',
        f"<style>{_STANDALONE_STYLE}</style>",
    ]
    x = 0
    for frame in frames:
        out.append(frame_svg(frame, x=x, y=0))
        x += frame.width + gap
    for k, (label, colour, dash) in enumerate(legend):
        lx = frames[0].left + (k % legend_columns) * legend_width
        ly = plot_height + 12 + (k // legend_columns) * LEGEND_ROW
        stroke = f' stroke="{escape(colour)}"' if colour else ""
        out.append(f'<line class="sw-line" x1="{lx}" x2="{lx + 26}" y1="{ly}" y2="{ly}"{stroke}{_dash(dash)}/>')
        out.append(f'<text x="{lx + 32}" y="{ly + 4}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# The site's activation chart.


@dataclass(frozen=True)
class Point:
    layer: int
    value: float  # signed value as measured
    x: float
    y: float
    channel: int | None
    token: int | None
    marked: bool  # a super weight sits in this layer

    @property
    def title(self) -> str:
        parts = [f"layer {self.layer}: {self.value!r}"]
        if self.channel is not None:
            parts.append(f"channel {self.channel}")
        if self.token is not None:
            parts.append(f"token {self.token}")
        return ", ".join(parts) + (" (super weight layer)" if self.marked else "")


@dataclass(frozen=True)
class Panel:
    """One line chart: largest |input| or |output| of the down projection in every layer."""

    key: str
    title: str
    points: tuple[Point, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    frame: Frame = field(compare=False, repr=False)

    @property
    def peak(self) -> Point:
        return max(self.points, key=lambda p: abs(p.value))

    @property
    def svg(self) -> str:
        return frame_svg(self.frame)


def per_layer_maxima(
    layers: Iterable[Mapping[str, Any]], value_key: str, channel_key: str, token_key: str
) -> list[tuple[int, float, int | None, int | None]]:
    """The largest magnitude per layer (experts of a MoE layer folded into one), sorted by layer."""
    best: dict[int, tuple[float, int | None, int | None]] = {}
    for row in layers:
        layer, value = row.get("layer"), row.get(value_key)
        if (
            not isinstance(layer, int)
            or isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            continue
        if layer not in best or abs(value) > abs(best[layer][0]):
            best[layer] = (float(value), row.get(channel_key), row.get(token_key))
    return [(layer, *best[layer]) for layer in sorted(best)]


def _panel(
    key: str,
    title: str,
    maxima: Sequence[tuple[int, float, int | None, int | None]],
    marked: set[int],
    id_prefix: str = "",
) -> Panel:
    left, right, top, bottom = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM
    last_layer = max(maxima[-1][0], 1)
    y_of, y_ticks = linear_axis(max(abs(v) for _, v, _, _ in maxima), top, bottom)

    def x_of(layer: int) -> float:
        return left + (right - left) * layer / last_layer

    points = tuple(
        Point(layer, value, x_of(layer), y_of(abs(value)), channel, token, layer in marked)
        for layer, value, channel, token in maxima
    )
    x_step = max(1, math.ceil((last_layer + 1) / 8))
    x_ticks = tuple(Tick(x_of(layer), str(layer)) for layer in range(0, last_layer + 1, x_step))
    peak = max(points, key=lambda p: abs(p.value))
    frame = Frame(
        key,
        title,
        f"{title} per layer; peak {peak.value!r} at layer {peak.layer}",
        (Series("", tuple(Mark(p.x, p.y, p.title, p.marked) for p in points)),),
        x_ticks,
        y_ticks,
        "layer",
        id_prefix=id_prefix,
    )
    return Panel(key, title, points, x_ticks, y_ticks, frame)


def activation_chart(
    detection: Mapping[str, Any] | None, super_weight_layers: Iterable[int], id_prefix: str = ""
) -> tuple[Panel, ...]:
    """Two panels (input, output) from ``evidence.detection.layers``; empty when no detection run is recorded."""
    layers = (detection or {}).get("layers") or []
    marked = set(super_weight_layers)
    panels = []
    for key, title, value_key, channel_key, token_key in (
        ("input", "Largest |input| of down_proj", "input_max", "input_channel", "input_token"),
        ("output", "Largest |output| of down_proj", "output_max", "output_channel", "output_token"),
    ):
        maxima = per_layer_maxima(layers, value_key, channel_key, token_key)
        if maxima:
            panels.append(_panel(key, title, maxima, marked, id_prefix))
    return tuple(panels)


LAYER_MEASUREMENT = re.compile(r"^layer_(0|[1-9][0-9]{0,5})_(input|output)_(max|channel|token)$")
"""How a source's ``measurements`` publish per-layer activations, charted like a detection run:
``layer_<N>_input_max`` / ``layer_<N>_output_max`` (the largest input / output of layer N's down projection,
signed, as printed), optionally ``layer_<N>_input_channel``, ``_output_channel``, ``_input_token`` and
``_output_token`` (where it occurred). N is the 0-based layer index."""


def layer_measurements(measurements: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """A source's per-layer measurements as detection-run rows (``{layer, input_max, ...}``), sorted by layer."""
    rows: dict[int, dict[str, Any]] = {}
    for key, value in (measurements or {}).items():
        match = LAYER_MEASUREMENT.match(str(key))
        if match is None:
            continue
        layer, side, what = int(match.group(1)), match.group(2), match.group(3)
        rows.setdefault(layer, {"layer": layer})[f"{side}_{what}"] = value
    for (
        row
    ) in rows.values():  # channels and tokens are integers or absent: a stray string must not reach a tooltip as one
        for name in ("input_channel", "output_channel", "input_token", "output_token"):
            if name in row and (isinstance(row[name], bool) or not isinstance(row[name], int)):
                del row[name]
    return [rows[layer] for layer in sorted(rows) if "input_max" in rows[layer] or "output_max" in rows[layer]]


def source_chart(
    measurements: Mapping[str, Any] | None, super_weight_layers: Iterable[int], id_prefix: str
) -> tuple[Panel, ...]:
    """The activation chart of a source's published per-layer measurements;
    empty unless at least two layers are given."""
    rows = layer_measurements(measurements)
    if len(rows) < 2:
        return ()
    return activation_chart({"layers": rows}, super_weight_layers, id_prefix)

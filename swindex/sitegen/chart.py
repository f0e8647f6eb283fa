"""Geometry of the per-layer activation chart (the paper's Figure 3), computed at build time for an SVG template."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

WIDTH, HEIGHT = 380, 230
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 30, 40


@dataclass(frozen=True)
class Point:
    layer: int
    value: float  # signed value as measured
    x: float
    y: float
    channel: int | None
    token: int | None
    marked: bool  # a super weight sits in this layer


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Panel:
    """One line chart: largest |input| or |output| of the down projection in every layer."""

    key: str
    title: str
    points: tuple[Point, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)

    @property
    def peak(self) -> Point:
        return max(self.points, key=lambda p: abs(p.value))


def _nice_step(span: float, count: int) -> float:
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


def per_layer_maxima(layers: Iterable[Mapping[str, Any]], value_key: str, channel_key: str, token_key: str) -> list[tuple[int, float, int | None, int | None]]:
    """The largest magnitude per layer (experts of a MoE layer folded into one), sorted by layer."""
    best: dict[int, tuple[float, int | None, int | None]] = {}
    for row in layers:
        layer, value = row.get("layer"), row.get(value_key)
        if not isinstance(layer, int) or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        if layer not in best or abs(value) > abs(best[layer][0]):
            best[layer] = (float(value), row.get(channel_key), row.get(token_key))
    return [(layer, *best[layer]) for layer in sorted(best)]


def _panel(key: str, title: str, maxima: Sequence[tuple[int, float, int | None, int | None]], marked: set[int]) -> Panel:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    last_layer = max(maxima[-1][0], 1)
    peak = max(abs(v) for _, v, _, _ in maxima) or 1.0
    step = _nice_step(peak, 4)
    top_value = step * math.ceil(peak / step)

    def x_of(layer: int) -> float:
        return LEFT + plot_w * layer / last_layer

    def y_of(magnitude: float) -> float:
        return TOP + plot_h * (1 - magnitude / top_value)

    points = tuple(
        Point(layer, value, x_of(layer), y_of(abs(value)), channel, token, layer in marked)
        for layer, value, channel, token in maxima
    )
    x_step = max(1, math.ceil((last_layer + 1) / 8))
    x_ticks = tuple(Tick(x_of(layer), str(layer)) for layer in range(0, last_layer + 1, x_step))
    y_ticks = tuple(Tick(y_of(step * i), format_number(step * i)) for i in range(int(round(top_value / step)) + 1))
    return Panel(key, title, points, x_ticks, y_ticks)


def activation_chart(detection: Mapping[str, Any] | None, super_weight_layers: Iterable[int]) -> tuple[Panel, ...]:
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
            panels.append(_panel(key, title, maxima, marked))
    return tuple(panels)

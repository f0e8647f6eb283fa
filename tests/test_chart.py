"""swindex.sitegen.chart: the one SVG line-chart renderer (site activation chart and quantization benchmark chart)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from swindex.sitegen.chart import Frame, Mark, Rule, Series, Tick, figure_svg, frame_svg, linear_axis, log_axis

SVG = "{http://www.w3.org/2000/svg}"


def _frame(key: str, title: str, series: tuple[Series, ...]) -> Frame:
    return Frame(
        key,
        title,
        f"{title} chart",
        series,
        (Tick(60, "a"), Tick(300, "b")),
        (Tick(100, "1"),),
        "x",
        rules=(Rule(50, "base", "#2ca02c"),),
    )


def _line(label: str, colour: str, dash: str = "") -> Series:
    return Series(label, (Mark(60, 100, f"{label} a"), Mark(300, 40, f"{label} b")), colour, dash)


def test_a_figure_draws_each_panel_and_lists_each_labelled_series_once():
    frames = [
        _frame("one", "planted", (_line("INT4 RTN", "#d62728"), _line("INT8 RTN", "#1f77b4"))),
        _frame("two", "stories", (_line("INT4 RTN", "#d62728"), _line("INT8 RTN", "#1f77b4"))),
    ]
    root = ET.fromstring(figure_svg(frames, "Perplexity"))
    panels = root.findall(f"{SVG}svg")
    assert [p.get("class") for p in panels] == ["sw-chart-panel sw-chart-one", "sw-chart-panel sw-chart-two"]
    assert float(panels[1].get("x")) >= float(panels[0].get("width"))
    legend = [t.text for t in root.findall(f"{SVG}text")]
    assert legend == ["INT4 RTN", "INT8 RTN"]


def test_a_series_colour_is_not_overridden_by_the_figure_style():
    svg = figure_svg([_frame("one", "m", (_line("INT4", "#d62728", "6 4"),))], "t")
    root = ET.fromstring(svg)
    line = root.find(f"{SVG}svg/{SVG}polyline")
    assert line.get("stroke") == "#d62728" and line.get("stroke-dasharray") == "6 4"
    style = root.find(f"{SVG}style").text
    assert not re.search(r"\.sw-line\{[^}]*stroke:", style)


def test_text_is_escaped():
    svg = frame_svg(_frame("k", "<script>alert(1)</script>", (_line("a & b", "#000"),)))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a &amp; b" in svg
    ET.fromstring(svg)


def test_a_log_axis_spans_whole_decades_around_the_values():
    y_of, ticks = log_axis([3.0, 50.0], top=0, bottom=200)
    assert [t.label for t in ticks] == ["1", "10", "100"]
    assert y_of(1.0) == 200 and y_of(100.0) == 0 and 0 < y_of(50.0) < y_of(3.0) < 200


def test_a_linear_axis_starts_at_zero_and_reaches_past_the_peak():
    y_of, ticks = linear_axis(560.5, top=0, bottom=200)
    assert ticks[0].label == "0" and ticks[0].at == 200
    assert float(ticks[-1].label) >= 560.5 and y_of(560.5) >= 0

"""The dashboard's server-rendered SVG charts (flywheel.web.svg): valid XML, axes with tick labels, one linked
mark per point, gaps for missing values, an empty chart that says so, escaping of names and links."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from flywheel.web import svg

NS = {"s": "http://www.w3.org/2000/svg"}


def parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # raises on markup that is not well-formed XML


def texts(root: ET.Element, cls: str) -> list[str]:
    return [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == cls]


def series() -> list[svg.Series]:
    return [svg.Series("gpt", [svg.Point(0, 10.0, "/ui/traces?since=0&until=3600"),
                               svg.Point(3600, None, "/x"), svg.Point(7200, 30.0, "/ui/traces?since=7200")]),
            svg.Series("other <b>", [svg.Point(0, 5.0, "/a?x=1&y=2"), svg.Point(7200, 50.0)])]


def test_line_chart_is_valid_xml_with_axes_ticks_and_linked_points():
    root = parse(svg.line_chart("Latency p95 (ms)", series(), x_format=lambda x: f"t{x:.0f}", y_label="ms"))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert texts(root, "chart-title") == ["Latency p95 (ms)"]
    y_ticks = texts(root, "y-tick")
    assert y_ticks[0] == "0" and y_ticks[-1] == "60"  # from zero up to a round value covering the maximum (50)
    assert texts(root, "x-tick") == ["t0", "t3600", "t7200"]  # every window, measured or not
    assert len([e for e in root.iter("{http://www.w3.org/2000/svg}line") if e.get("class") == "axis"]) == 2
    circles = list(root.iter("{http://www.w3.org/2000/svg}circle"))
    assert len(circles) == 4  # the None point is a gap, not a dot
    links = [a.get("href") for a in root.iter("{http://www.w3.org/2000/svg}a")]
    assert links == ["/ui/traces?since=0&until=3600", "/ui/traces?since=7200", "/a?x=1&y=2"]
    # the gap splits gpt's line: no polyline joins its two points; other's two points are one line
    assert len(list(root.iter("{http://www.w3.org/2000/svg}polyline"))) == 1
    assert any(c.get("data-series") == "other <b>" for c in circles)  # escaped in the markup, intact when parsed


def test_bar_chart_has_one_bar_per_value():
    root = parse(svg.bar_chart("Traces", series()))
    bars = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if "bar" in (r.get("class") or "")]
    assert len(bars) == 4
    assert {b.get("data-y") for b in bars} == {"10", "30", "5", "50"}
    assert all(float(b.get("height")) > 0 for b in bars)


def test_empty_series_render_an_empty_chart_that_says_so():
    for chart in (svg.line_chart("Cost", [], empty_message="no data"),
                  svg.line_chart("Cost", [svg.Series("a", [svg.Point(0, None)])]),
                  svg.bar_chart("Cost", [svg.Series("a", [])], empty_message="无数据")):
        root = parse(chart)
        assert "empty" in root.get("class")
        assert texts(root, "no-data")[0] in ("no data", "无数据")
        assert texts(root, "chart-title") == ["Cost"]


def test_one_point_and_a_flat_series_still_draw():
    root = parse(svg.line_chart("x", [svg.Series("s", [svg.Point(5, 0.0)])]))
    circle = next(root.iter("{http://www.w3.org/2000/svg}circle"))
    assert float(circle.get("cx")) > 0 and float(circle.get("cy")) > 0
    flat = parse(svg.line_chart("x", [svg.Series("s", [svg.Point(0, 0.25), svg.Point(1, 0.25)])], zero=False))
    assert len(texts(flat, "y-tick")) >= 2


def test_nice_ticks_and_labels():
    assert svg.nice_ticks(0, 0.93) == [0, 0.5, 1.0]
    assert svg.nice_ticks(0, 50) == [0, 20, 40, 60]
    assert svg.nice_ticks(0, 1234)[-1] >= 1234
    assert svg.number_label(15000) == "15k" and svg.number_label(0.0021) == "0.0021"
    assert svg.number_label(2_000_000) == "2M"

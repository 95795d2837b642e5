"""Server-rendered SVG charts for the dashboard's small multiples: a line chart (one line per series) and a bar
chart, with axes, tick labels and one link per point. No JavaScript; the markup is escaped and valid XML.

    chart = line_chart("Latency p95 (ms)", [Series("gpt", [Point(t0, 812.0, "/ui/traces?since=…")])],
                       x_format=hour_label)

Points with a None value are gaps (a window where the metric was not measured): the line breaks there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 360, 180
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 52, 12, 22, 34
COLORS = ("#2754c5", "#d1641a", "#067647", "#b42318", "#7a3fb8", "#0f7b8a", "#9a6700", "#5b6472")


@dataclass
class Point:
    x: float  # e.g. a window's start, Unix seconds
    y: float | None
    href: str | None = None
    label: str = ""  # the tooltip (SVG <title>); defaults to "x: y"


@dataclass
class Series:
    name: str
    points: list[Point] = field(default_factory=list)


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2 or 5 times a power of ten apart)."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(lo / step) * step
    ticks: list[float] = []
    value = start
    while value <= hi + step * 1e-9 and len(ticks) < 50:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(value, 12))
    return ticks


def number_label(value: float) -> str:
    """A short tick label: 0.25, 12, 1.5k, 2M."""
    a = abs(value)
    if a >= 1e6:
        return f"{value / 1e6:g}M"
    if a >= 1e4:
        return f"{value / 1e3:g}k"
    if a == 0 or a >= 1:
        return f"{value:g}"
    return f"{value:.3g}"


def _frame(title: str, y_ticks: list[float], y_of: Callable[[float], float], x_ticks: list[tuple[float, str]],
           x_of: Callable[[float], float], width: int, height: int, y_label: str) -> list[str]:
    bottom, right = height - PAD_BOTTOM, width - PAD_RIGHT
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'),
           f"<title>{escape(title)}</title>",
           f'<text class="chart-title" x="{PAD_LEFT}" y="14" font-size="12" font-weight="600">{escape(title)}</text>']
    for v in y_ticks:
        y = y_of(v)
        out.append(f'<line class="grid" x1="{PAD_LEFT}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e6eb"/>')
        out.append(f'<text class="y-tick" x="{PAD_LEFT - 4}" y="{y + 3:.1f}" font-size="10" text-anchor="end" '
                   f'fill="#6b7280">{escape(number_label(v))}</text>')
    for xv, text in x_ticks:
        x = x_of(xv)
        anchor = "end" if x > right - 30 else "middle"  # the last label stays inside the chart
        out.append(f'<text class="x-tick" x="{x:.1f}" y="{bottom + 13}" font-size="10" text-anchor="{anchor}" '
                   f'fill="#6b7280">{escape(text)}</text>')
    out.append(f'<line class="axis" x1="{PAD_LEFT}" x2="{PAD_LEFT}" y1="{PAD_TOP}" y2="{bottom}" stroke="#6b7280"/>')
    out.append(f'<line class="axis" x1="{PAD_LEFT}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#6b7280"/>')
    if y_label:
        out.append(f'<text class="y-label" x="{PAD_LEFT}" y="{height - 4}" font-size="10" fill="#6b7280">'
                   f"{escape(y_label)}</text>")
    return out


def _x_ticks(xs: list[float], x_format: Callable[[float], str], count: int = 4) -> list[tuple[float, str]]:
    if not xs:
        return []
    if len(xs) <= count:
        return [(x, x_format(x)) for x in xs]
    step = (len(xs) - 1) / (count - 1)
    return [(xs[round(i * step)], x_format(xs[round(i * step)])) for i in range(count)]


def _empty(title: str, width: int, height: int, message: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart empty" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
            f'<text class="chart-title" x="{PAD_LEFT}" y="14" font-size="12" font-weight="600">{escape(title)}</text>'
            f'<line class="axis" x1="{PAD_LEFT}" x2="{PAD_LEFT}" y1="{PAD_TOP}" y2="{height - PAD_BOTTOM}" '
            f'stroke="#6b7280"/><line class="axis" x1="{PAD_LEFT}" x2="{width - PAD_RIGHT}" y1="{height - PAD_BOTTOM}" '
            f'y2="{height - PAD_BOTTOM}" stroke="#6b7280"/><text class="no-data" x="{width / 2:.0f}" '
            f'y="{height / 2:.0f}" font-size="11" text-anchor="middle" fill="#6b7280">{escape(message)}</text></svg>')


def _scales(series: Sequence[Series], width: int, height: int, zero: bool
            ) -> tuple[list[float], list[float], Callable[[float], float], Callable[[float], float]] | None:
    xs = sorted({p.x for s in series for p in s.points})
    ys = [p.y for s in series for p in s.points if p.y is not None and math.isfinite(p.y)]
    if not xs or not ys:
        return None
    ticks = nice_ticks(min(0.0, min(ys)) if zero else min(ys), max(ys))
    lo, hi = ticks[0], ticks[-1]
    bottom, right = height - PAD_BOTTOM, width - PAD_RIGHT
    x0, x1 = xs[0], xs[-1]

    def x_of(x: float) -> float:
        return PAD_LEFT + 8 + (x - x0) / (x1 - x0) * (right - PAD_LEFT - 16) if x1 > x0 else (PAD_LEFT + right) / 2

    def y_of(y: float) -> float:
        return bottom - (y - lo) / (hi - lo) * (bottom - PAD_TOP) if hi > lo else (bottom + PAD_TOP) / 2

    return xs, ticks, x_of, y_of


def _point_label(series: Series, p: Point, x_format: Callable[[float], str]) -> str:
    value = "-" if p.y is None else number_label(p.y)
    name = f"{series.name} · " if series.name else ""
    return p.label or f"{name}{x_format(p.x)}: {value}"


def line_chart(title: str, series: Sequence[Series], *, x_format: Callable[[float], str] = number_label,
               y_label: str = "", width: int = WIDTH, height: int = HEIGHT, zero: bool = True,
               empty_message: str = "no data") -> str:
    """One line per series; every point is a circle (inside a link when it has `href`) with a tooltip."""
    scales = _scales(series, width, height, zero)
    if scales is None:
        return _empty(title, width, height, empty_message)
    xs, ticks, x_of, y_of = scales
    out = _frame(title, ticks, y_of, _x_ticks(xs, x_format), x_of, width, height, y_label)
    for i, s in enumerate(series):
        color = COLORS[i % len(COLORS)]
        runs: list[list[str]] = [[]]
        for p in sorted(s.points, key=lambda p: p.x):
            if p.y is None or not math.isfinite(p.y):
                runs.append([])
                continue
            runs[-1].append(f"{x_of(p.x):.1f},{y_of(p.y):.1f}")
        for run in runs:
            if len(run) > 1:
                out.append(f'<polyline class="line" fill="none" stroke="{color}" stroke-width="1.5" '
                           f'points="{" ".join(run)}"/>')
        for p in s.points:
            if p.y is None or not math.isfinite(p.y):
                continue
            dot = (f'<circle class="point" cx="{x_of(p.x):.1f}" cy="{y_of(p.y):.1f}" r="3.5" fill="{color}" '
                   f'data-series="{escape(s.name)}" data-x="{p.x:g}" data-y="{p.y:g}">'
                   f"<title>{escape(_point_label(s, p, x_format))}</title></circle>")
            out.append(f'<a href="{escape(p.href)}">{dot}</a>' if p.href else dot)
    out.append("</svg>")
    return "".join(out)


def bar_chart(title: str, series: Sequence[Series], *, x_format: Callable[[float], str] = number_label,
              y_label: str = "", width: int = WIDTH, height: int = HEIGHT, empty_message: str = "no data") -> str:
    """Grouped bars: at each x, one bar per series (each bar a link when its point has `href`)."""
    scales = _scales(series, width, height, True)
    if scales is None:
        return _empty(title, width, height, empty_message)
    xs, ticks, x_of, y_of = scales
    out = _frame(title, ticks, y_of, _x_ticks(xs, x_format), x_of, width, height, y_label)
    slot = (width - PAD_LEFT - PAD_RIGHT - 16) / max(1, len(xs))
    bar = max(1.0, slot * 0.8 / max(1, len(series)))
    base = y_of(max(0.0, ticks[0]))
    for i, s in enumerate(series):
        color = COLORS[i % len(COLORS)]
        for p in s.points:
            if p.y is None or not math.isfinite(p.y):
                continue
            x = x_of(p.x) - bar * len(series) / 2 + i * bar
            top = y_of(p.y)
            rect = (f'<rect class="point bar" x="{x:.1f}" y="{min(top, base):.1f}" width="{bar:.1f}" '
                    f'height="{max(0.5, abs(base - top)):.1f}" fill="{color}" data-series="{escape(s.name)}" '
                    f'data-x="{p.x:g}" data-y="{p.y:g}"><title>{escape(_point_label(s, p, x_format))}</title></rect>')
            out.append(f'<a href="{escape(p.href)}">{rect}</a>' if p.href else rect)
    out.append("</svg>")
    return "".join(out)


def legend(names: Sequence[str]) -> list[tuple[str, str]]:
    """(series name, its color) in chart order, for a legend in HTML."""
    return [(n, COLORS[i % len(COLORS)]) for i, n in enumerate(names)]

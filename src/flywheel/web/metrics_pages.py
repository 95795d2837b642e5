"""/ui/metrics (and its .json / .csv twins): small-multiple SVG charts of the monitor metrics per time window,
one line per group (model, prompt version, app or tenant); every point links to the traces it was computed from.

The URL holds the state: `window` (1h, 1d …), `group_by`, `since` / `until` (as the traces page reads them) and
the filters `app`, `model`, `prompt_version`, `tenant`. A tenant key sees only its tenant.

Big stores: the traces in range are counted first (one SQL aggregate); windows are then computed newest first,
a few at a time, until the time budget is spent — the page says which older windows it left out."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Float, Integer, case, cast, func, select

from flywheel.errors import UserError
from flywheel.monitor.windows import GROUP_FIELDS, METRICS, WindowStats, compute, parse_duration
from flywheel.store.schema import traces as traces_t
from flywheel.tracing.query import product_traffic
from flywheel.tracing.search import parse_time
from flywheel.web import svg
from flywheel.web.auth import Viewer
from flywheel.web.metrics_i18n import Text
from flywheel.web.pages import gate
from flywheel.web.render import as_csv, as_json, language, render, split_format

router = APIRouter()
WINDOWS = ("15m", "1h", "6h", "1d", "1w")
DEFAULT_COUNT = {"15m": 24, "1h": 24, "6h": 28, "1d": 14, "1w": 12}  # windows shown when `since` is not given
MAX_WINDOWS = 400
BUDGET_S = 1.5  # compute time one page may spend on full metrics; older windows then get their SQL summary only
MAX_TRACES = 5_000  # traces one page reads the spans of (about 0.5 ms each); the same
CHUNK_TRACES = 1_000  # traces per compute call (one window at least)
CHARTS: tuple[tuple[str, str], ...] = (  # (metric, chart kind)
    ("volume", "bar"), ("latency_p50_ms", "line"), ("latency_p95_ms", "line"), ("cost_usd", "bar"),
    ("online_pass_rate", "line"), ("negative_feedback_rate", "line"), ("guard_trigger_rate", "line"),
    ("cache_hit_rate", "line"), ("error_rate", "line"))
POINT_FILTER = {"error_rate": {"status": "error"}, "negative_feedback_rate": {"feedback": "negative"},
                "cache_hit_rate": {"cache": "hit"}}  # a point of these opens only the traces it counted
FILTERS = GROUP_FIELDS  # app, model, prompt_version, tenant


def _params(request: Request, viewer: Viewer) -> tuple[dict[str, Any], dict[str, str]]:
    """The page's settings from the URL, and {param: why} for each invalid one (replaced by its default)."""
    q = request.query_params
    errors: dict[str, str] = {}
    window = q.get("window") or "1h"
    if window not in WINDOWS:
        errors["window"] = f"one of {', '.join(WINDOWS)}"
        window = "1h"
    width = parse_duration(window)
    group_by = q.get("group_by") or ""
    if group_by and group_by not in GROUP_FIELDS:
        errors["group_by"] = f"one of {', '.join(GROUP_FIELDS)} (or empty)"
        group_by = ""
    now = time.time()
    until = _time(q.get("until"), "until", errors, now)
    until = now if until is None else until
    since = _time(q.get("since"), "since", errors, now)
    if since is None:
        since = (until // width - DEFAULT_COUNT[window] + 1) * width
    if since >= until:
        errors["since"] = "must be before until"
        since = (until // width - DEFAULT_COUNT[window] + 1) * width
    if (until - since) / width > MAX_WINDOWS:
        errors["since"] = f"the range holds more than {MAX_WINDOWS} windows of {window}; pick a longer window"
        since = (until // width - DEFAULT_COUNT[window] + 1) * width
    where: dict[str, str] = {}
    for name in FILTERS:
        value = (q.get(name) or "").strip()
        if len(value) > 200:
            errors[name] = "at most 200 characters"
        elif value:
            where[name] = value
    if viewer.scoped:
        where["tenant"] = viewer.tenant or ""
    return {"window": window, "width": width, "group_by": group_by, "since": since, "until": until,
            "where": where}, errors


LATEST = 32503680000.0  # 3000-01-01: the page shows its range as dates, and a year like -3166904 has none


def _time(raw: str | None, name: str, errors: dict[str, str], now: float) -> float | None:
    try:
        value = parse_time(raw, now=now)
    except ValueError as exc:
        errors[name] = str(exc)
        return None
    if value is not None and not 0 <= value < LATEST:
        errors[name] = "a time between 1970 and the year 3000"
        return None
    return value


def summaries(store: Any, p: dict[str, Any]) -> list[WindowStats]:
    """Every window and group of the range from SQL aggregates alone (fast on any store): volume, error rate,
    cost and tokens; the metrics that read spans, text or feedback are None (`details["summary_only"]`)."""
    c = traces_t.c
    width, groups = p["width"], ((p["group_by"],) if p["group_by"] else ())
    scaled = c.started_at / width
    # as flywheel.monitor.windows buckets: floor on PostgreSQL (its CAST rounds), truncation on SQLite
    bucket = cast(func.floor(scaled), Integer) if store.engine.dialect.name == "postgresql" \
        else cast(cast(scaled, Float), Integer)
    keys = [bucket.label("bucket"), *(c[g] for g in groups)]
    q = select(*keys, func.count().label("n"), func.sum(case((c.status == "error", 1), else_=0)).label("errors"),
               func.sum(c.cost_usd).label("cost"), func.sum(c.input_tokens + c.output_tokens).label("tokens")).where(
        c.started_at >= p["since"], c.started_at < p["until"], product_traffic(traces_t),
        *(c[k] == v for k, v in p["where"].items())).group_by(*keys)
    with store.connect() as conn:
        rows = conn.execute(q).mappings().all()
    out = []
    for r in rows:
        n, start = int(r["n"]), int(r["bucket"]) * width
        metrics: dict[str, float | None] = {m: None for m in METRICS}
        metrics.update(volume=n, error_rate=round(int(r["errors"] or 0) / n, 9), tokens=int(r["tokens"] or 0),
                       cost_usd=round(float(r["cost"] or 0.0), 9), cost_per_trace_usd=round(float(r["cost"] or 0.0) / n, 9))
        out.append(WindowStats(start, start + width, {g: r[g] for g in groups}, metrics, {"summary_only": True}))
    return out


def measure(store: Any, p: dict[str, Any], *, budget_s: float = BUDGET_S, max_traces: int = MAX_TRACES,
            chunk_traces: int = CHUNK_TRACES) -> tuple[list[WindowStats], float | None]:
    """Every window of the range: the SQL summary of each, and — newest first, while the time budget and the
    trace cap allow — the full metrics (flywheel.monitor.windows.compute). Returns the windows and, when older
    windows have only their summary, the start of the fully computed part (None: all of it)."""
    width, since, until = p["width"], p["since"], p["until"]
    summary = summaries(store, p)
    counts: dict[float, int] = {}
    for w in summary:
        counts[w.start] = counts.get(w.start, 0) + int(w.metrics["volume"] or 0)
    starts = sorted(counts, reverse=True)
    groups = (p["group_by"],) if p["group_by"] else ()
    started = time.perf_counter()
    full: list[WindowStats] = []
    read = 0
    i = 0
    while i < len(starts):
        chunk = [starts[i]]  # one window at least, then more while the chunk stays small
        while i + len(chunk) < len(starts) and sum(counts[s] for s in chunk) + counts[starts[i + len(chunk)]] \
                <= chunk_traces:
            chunk.append(starts[i + len(chunk)])
        n = sum(counts[s] for s in chunk)
        if read + n > max_traces or time.perf_counter() - started > budget_s:
            break
        lo, hi = max(since, chunk[-1]), min(until, chunk[0] + width)
        full += compute(store, window=width, since=lo, until=hi, group_by=groups, where=p["where"] or None)
        read += n
        i += len(chunk)
    done = {(w.start, tuple(w.group.items())) for w in full}
    out = full + [w for w in summary if (w.start, tuple(w.group.items())) not in done]
    out.sort(key=lambda w: (w.start, str(w.group)))
    if i == len(starts):
        return out, None
    return out, (max(since, starts[i - 1]) if i > 0 else until)


def traces_link(w: WindowStats, p: dict[str, Any], extra: dict[str, str] | None = None,
                viewer: Viewer | None = None) -> str:
    """The traces page filtered to one window (clipped to the range) and group (an empty group value adds no
    filter)."""
    params: dict[str, Any] = {"since": _num(max(w.start, p["since"])), "until": _num(min(w.end, p["until"]))}
    params.update({k: v for k, v in p["where"].items() if not (viewer and viewer.scoped and k == "tenant")})
    params.update({k: v for k, v in w.group.items() if v is not None})
    params.update(extra or {})
    return "/ui/traces?" + urlencode(params)


def _num(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")


def _x_format(width: float) -> Callable[[float], str]:
    def fmt(x: float) -> str:
        t = dt.datetime.fromtimestamp(x, dt.UTC)
        return t.strftime("%m-%d") if width >= 86400 else t.strftime("%m-%d %H:%M")
    return fmt


def charts(stats: list[WindowStats], p: dict[str, Any], tx: Any, viewer: Viewer) -> list[dict[str, Any]]:
    """One chart (SVG markup and its legend) per metric in CHARTS; one series per group."""
    names = sorted({_group_name(w) for w in stats})
    fmt = _x_format(p["width"])
    out = []
    for metric, kind in CHARTS:
        series = []
        for name in names:
            points = [svg.Point(w.start, w.metrics.get(metric),
                                traces_link(w, p, POINT_FILTER.get(metric), viewer))
                      for w in stats if _group_name(w) == name]
            series.append(svg.Series(name, points))
        draw = svg.bar_chart if kind == "bar" else svg.line_chart
        markup = draw(tx(f"m_{metric}"), series, x_format=fmt, empty_message=tx("no_data"))
        out.append({"metric": metric, "svg": markup, "legend": svg.legend(names)})
    return out


def _group_name(w: WindowStats) -> str:
    return ", ".join("-" if v is None else str(v) for v in w.group.values())


def rows_of(stats: list[WindowStats], p: dict[str, Any], viewer: Viewer) -> list[dict[str, Any]]:
    return [{"start": w.start, "end": w.end, **{f"group_{k}": v for k, v in w.group.items()}, **w.metrics,
             "traces": traces_link(w, p, None, viewer)} for w in stats]


@router.get("/ui/metrics", include_in_schema=False)
@router.get("/ui/metrics.json", include_in_schema=False)
@router.get("/ui/metrics.csv", include_in_schema=False)
def metrics_page(request: Request) -> Response:
    fmt = split_format(request.url.path)[1]
    viewer = gate(request, fmt)
    if not isinstance(viewer, Viewer):
        return viewer
    p, errors = _params(request, viewer)
    started = time.perf_counter()
    try:
        stats, covered = measure(request.app.state.flywheel.store, p)
    except UserError as exc:  # pragma: no cover - the params were checked above
        errors["window"] = exc.message
        stats, covered = [], None
    took_ms = round((time.perf_counter() - started) * 1000)
    rows = rows_of(stats, p, viewer)
    status = 400 if errors else 200
    settings = {"window": p["window"], "group_by": p["group_by"] or None, "since": p["since"], "until": p["until"],
                "where": p["where"]}
    if fmt == "json":
        return as_json(rows, settings=settings, partial=covered is not None, computed_since=covered,
                       took_ms=took_ms, errors=errors)
    if fmt == "csv":
        group_cols = [f"group_{p['group_by']}"] if p["group_by"] else []
        metric_cols = [m for m, _ in CHARTS] + ["tokens", "refusal_rate", "empty_output_rate"]
        return as_csv(rows, ["start", "end", *group_cols, *metric_cols, "traces"], "metrics.csv", status=status)
    tx = Text(language(request))
    shown = {k: v for k, v in request.query_params.items() if k != "lang"}
    return render(request, "metrics_page.html", status=status, tx=tx, errors=errors, p=p, shown=shown,
                  charts=charts(stats, p, tx, viewer), windows=WINDOWS, groups=GROUP_FIELDS,
                  filters=[f for f in FILTERS if not (viewer.scoped and f == "tenant")],
                  covered=covered, took_ms=took_ms, n_windows=len(rows),
                  since_text=_iso(p["since"]), until_text=_iso(p["until"]),
                  twin_qs=urlencode(shown))


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M")

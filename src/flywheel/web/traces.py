"""/ui/traces (list, facets, saved views, .json/.csv twins), /ui/traces/{id} (tree, waterfall, final prompt),
/ui/traces/{id}/spans (more span rows, lazily) and /ui/spans/{id}/body (one span's inputs and outputs)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import delete, select

from flywheel.errors import UserError
from flywheel.store.schema_web import web_views
from flywheel.tracing.query import span_body, span_details, trace_outline
from flywheel.tracing.search import FACET_FIELDS, Page, TraceQuery, facet_counts, search_traces
from flywheel.web.auth import Viewer
from flywheel.web.pages import gate, posted, tenant_may_see
from flywheel.web.render import as_csv, as_json, fragment, not_found, render, split_format
from flywheel.workflows.records import name_incomplete_runs

router = APIRouter()
SPAN_CHUNK = 200  # span rows per response: the first one of a 5,000-span trace stays small
FACET_BUDGET_MS = 150
CSV_COLUMNS = ("trace_id", "started_at", "name", "app", "model", "prompt_version", "tenant", "status",
               "latency_ms", "input_tokens", "output_tokens", "cost_usd", "span_count", "session_id", "user_id",
               "input_preview", "output_preview")
PAGE_PARAMS = ("cursor", "limit", "lang")


def _query(request: Request, viewer: Viewer) -> tuple[TraceQuery, dict[str, str], dict[str, str]]:
    """The query from the URL (scoped to the viewer's tenant), the invalid params, and the filter params."""
    params = {k: v for k, v in request.query_params.items() if k not in PAGE_PARAMS}
    q, errors = TraceQuery.from_params(params)
    if viewer.scoped:
        q = q.model_copy(update={"tenant": viewer.tenant})
    return q, errors, {k: v for k, v in params.items() if k in TraceQuery.model_fields and v != ""}


SEARCH_SYNONYMS = ("q", "query", "text", "contains")  # what other trace APIs call the free-text search


def _unknown_filters(request: Request) -> dict[str, str]:
    """{param: why} for each query param that is neither a filter (TraceQuery) nor a page param."""
    from flywheel.registry import did_you_mean

    fields = sorted(TraceQuery.model_fields)
    out = {}
    for name in request.query_params:
        if name in TraceQuery.model_fields or name in PAGE_PARAMS:
            continue
        near = ["search"] if name.lower() in SEARCH_SYNONYMS else did_you_mean(name, fields, n=1)
        out[name] = (f"not a filter{f' (did you mean {near[0]!r}?)' if near else ''}; the filters are: "
                     + ", ".join(fields))
    return out


def _limit(request: Request, errors: dict[str, str]) -> int:
    raw = request.query_params.get("limit") or "50"
    if raw.isdigit() and 1 <= int(raw) <= 1000:
        return int(raw)
    errors["limit"] = "a whole number from 1 to 1000"
    return 50


@router.get("/ui", include_in_schema=False)
def home(request: Request) -> Response:
    query = request.url.query  # ?lang=zh and any filter carry over to the traces page
    return RedirectResponse("/ui/traces" + (f"?{query}" if query else ""), status_code=307)


@router.get("/ui/traces", include_in_schema=False)
@router.get("/ui/traces.json", include_in_schema=False)
@router.get("/ui/traces.csv", include_in_schema=False)
def traces_page(request: Request) -> Response:
    fmt = split_format(request.url.path)[1]
    viewer = gate(request, fmt)
    if not isinstance(viewer, Viewer):
        return viewer
    q, errors, filters = _query(request, viewer)
    limit = _limit(request, errors)
    cursor = request.query_params.get("cursor") or None
    started = time.perf_counter()
    unknown = _unknown_filters(request) if fmt in ("json", "csv") else {}
    errors.update(unknown)
    try:
        # a script's misspelt filter (`?q=refund`) gets a 400 and no rows, not every trace as if it had matched
        page = Page(rows=[]) if unknown else search_traces(request.app.state.flywheel.store, q, cursor=cursor,
                                                             limit=limit)
    except UserError as exc:
        errors["cursor"] = exc.message
        page = search_traces(request.app.state.flywheel.store, q, limit=limit)
        cursor = None
    name_incomplete_runs(request.app.state.flywheel.store, page.rows)  # a killed workflow run: its name, inputs
    took_ms = round((time.perf_counter() - started) * 1000, 1)
    base = {**filters, "limit": request.query_params.get("limit")}
    next_url = f"{request.url.path}?{urlencode({k: v for k, v in {**base, 'cursor': page.next_cursor}.items() if v})}" \
        if page.next_cursor else None
    if fmt == "json":
        return as_json(page.rows, next_cursor=page.next_cursor, next=next_url, query=q.params(), errors=errors)
    if fmt == "csv":
        return as_csv(page.rows, CSV_COLUMNS, "traces.csv", status=400 if errors else 200)
    return render(request, "traces.html", status=400 if errors else 200, rows=page.rows, errors=errors,
                  filters=filters, base=base, next_url=next_url, cursor=cursor, took_ms=took_ms,
                  views=_views(request, viewer), filter_qs=urlencode(filters), fields=TraceQuery.fields())


@router.get("/ui/traces/facets", include_in_schema=False)
def facets_fragment(request: Request) -> Response:
    viewer = gate(request, "fragment")
    if not isinstance(viewer, Viewer):
        return viewer
    q, _, filters = _query(request, viewer)
    fields = [f for f in FACET_FIELDS if not (viewer.scoped and f == "tenant")]
    facets = facet_counts(request.app.state.flywheel.store, q, fields, budget_ms=FACET_BUDGET_MS)
    return fragment(request, "facets.html", facets=facets, filters=filters)


# ------------------------------------------------------------------------------------------- saved views
def _views(request: Request, viewer: Viewer) -> list[dict[str, Any]]:
    c = web_views.c
    tenant_cond = c.tenant == viewer.tenant if viewer.scoped else c.tenant.is_(None)
    with request.app.state.flywheel.store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(web_views).where(tenant_cond, c.page == "traces")
                                              .order_by(c.name).limit(100)).mappings()]


@router.post("/ui/views", include_in_schema=False)
async def save_view(request: Request) -> Response:
    checked = await posted(request)
    if isinstance(checked, Response):
        return checked
    viewer, form = checked
    name = " ".join(form.get("name", "").split())[:100]
    query = urlencode([(k, v) for k, v in parse_qsl(form.get("query", "")) if k in TraceQuery.model_fields and v])
    if not name:
        return RedirectResponse(f"/ui/traces?{query}", status_code=303)
    with request.app.state.flywheel.store.engine.begin() as conn:
        conn.execute(web_views.insert().values(tenant=viewer.tenant, name=name, page="traces", query=query,
                                               created_by=viewer.name, created_at=time.time()))
    return RedirectResponse(f"/ui/traces?{query}", status_code=303)


@router.post("/ui/views/{view_id}/delete", include_in_schema=False)
async def delete_view(request: Request, view_id: int) -> Response:
    checked = await posted(request)
    if isinstance(checked, Response):
        return checked
    viewer, _ = checked
    c = web_views.c
    tenant_cond = c.tenant == viewer.tenant if viewer.scoped else c.tenant.is_(None)
    with request.app.state.flywheel.store.engine.begin() as conn:
        conn.execute(delete(web_views).where(c.id == view_id, tenant_cond))
    return RedirectResponse("/ui/traces", status_code=303)


# ------------------------------------------------------------------------------------------- one trace
def _ordered(span_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spans in tree order (parents before children, siblings by start) with their `depth`."""
    known = {r["span_id"] for r in span_rows}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for r in span_rows:
        parent = r["parent_id"] if r["parent_id"] in known else None
        children.setdefault(parent, []).append(r)
    out: list[dict[str, Any]] = []
    stack = [(r, 0) for r in reversed(children.get(None, []))]
    while stack:
        node, depth = stack.pop()
        node["depth"] = depth
        out.append(node)
        stack.extend((c, depth + 1) for c in reversed(children.get(node["span_id"], [])))
    return out


def _load(request: Request, viewer: Viewer, trace_id: str) -> dict[str, Any] | None:
    try:
        trace = trace_outline(request.app.state.flywheel.store, trace_id)
    except UserError:  # an ambiguous prefix: not one trace
        return None
    if trace is None or not tenant_may_see(viewer, trace.get("tenant")):
        return None  # another tenant's trace is as unknown as a missing one
    return trace


def _bars(rows: list[dict[str, Any]]) -> tuple[int, int]:
    starts = [r["start_ns"] for r in rows]
    ends = [r["end_ns"] or r["start_ns"] for r in rows]
    t0 = min(starts) if starts else 0
    return t0, max(1, (max(ends) if ends else 0) - t0)


def _with_details(request: Request, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows shown, with their tokens, cost, model, error and body sizes."""
    details = span_details(request.app.state.flywheel.store, [r["span_id"] for r in rows])
    for r in rows:
        r.update(details.get(r["span_id"]) or {"input_bytes": 0, "output_bytes": 0})
    return rows


def _with_bars(rows: list[dict[str, Any]], t0: int, total: int) -> list[dict[str, Any]]:
    for r in rows:
        r["left"] = round((r["start_ns"] - t0) * 100 / total, 2)
        r["width"] = max(0.3, round(((r["end_ns"] or r["start_ns"]) - r["start_ns"]) * 100 / total, 2))
    return rows


@router.get("/ui/traces/{trace_ref}", include_in_schema=False)
def trace_page(request: Request, trace_ref: str) -> Response:
    trace_id, fmt = split_format(trace_ref)
    viewer = gate(request, fmt)
    if not isinstance(viewer, Viewer):
        return viewer
    trace = _load(request, viewer, trace_id)
    if trace is None:
        return not_found(request, f"no trace with id '{trace_id}'", fmt)
    ordered = _ordered(trace.pop("span_rows"))
    bodies = trace.pop("bodies")
    if fmt != "html":
        return as_json([{k: v for k, v in r.items() if k != "attributes"} for r in _with_details(request, ordered)],
                       trace=trace,
                       feedback=_feedback(request, trace["trace_id"]))
    from flywheel.web.trace_view import final_prompt, guard_actions, retrieved_sources

    t0, total = _bars(ordered)
    shown = _with_bars(_with_details(request, ordered[:SPAN_CHUNK]), t0, total)
    return render(request, "trace.html", trace=trace, spans=shown,
                  span_total=len(ordered), more_offset=SPAN_CHUNK if len(ordered) > SPAN_CHUNK else None,
                  prompt=final_prompt(ordered, bodies), sources=retrieved_sources(ordered, bodies),
                  guards=guard_actions(ordered), feedback=_feedback(request, trace["trace_id"]))


@router.get("/ui/traces/{trace_id}/spans", include_in_schema=False)
def more_spans(request: Request, trace_id: str, offset: int = 0) -> Response:
    viewer = gate(request, "fragment")
    if not isinstance(viewer, Viewer):
        return viewer
    trace = _load(request, viewer, trace_id)
    if trace is None:
        return not_found(request, f"no trace with id '{trace_id}'", "fragment")
    ordered = _ordered(trace["span_rows"])
    offset = max(0, offset)
    t0, total = _bars(ordered)
    chunk = _with_bars(_with_details(request, ordered[offset:offset + SPAN_CHUNK]), t0, total)
    nxt = offset + SPAN_CHUNK if offset + SPAN_CHUNK < len(ordered) else None
    return fragment(request, "span_rows.html", spans=chunk, trace=trace, more_offset=nxt)


@router.get("/ui/spans/{span_id}/body", include_in_schema=False)
def span_body_fragment(request: Request, span_id: str) -> Response:
    viewer = gate(request, "fragment")
    if not isinstance(viewer, Viewer):
        return viewer
    span = span_body(request.app.state.flywheel.store, span_id.strip().lower())
    if span is None or not tenant_may_see(viewer, span["trace_tenant"]):
        return not_found(request, f"no span with id '{span_id}'", "fragment")
    return fragment(request, "span_body.html", span=span)


def _feedback(request: Request, trace_id: str) -> list[dict[str, Any]]:
    """The trace's feedback, oldest first; `superseded`: a vote its voter changed later (shown struck through)."""
    from flywheel.feedback import for_trace
    from flywheel.feedback.events import label_corrections
    from flywheel.store.schema_feedback import superseded_ids

    store = request.app.state.flywheel.store
    events = for_trace(store, trace_id)
    gone, fixes = superseded_ids(events), label_corrections(store, events)
    return [{**e.model_dump(), "superseded": e.id in gone, "correction": fixes.get(e.id or 0)} for e in events]

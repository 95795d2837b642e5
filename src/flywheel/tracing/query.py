"""Read traces back: the latest traces, and one trace with its span tree."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Text, cast, func, select

from flywheel.errors import UserError
from flywheel.store import Store
from flywheel.store.schema import open_traces as open_traces_t
from flywheel.store.schema import spans as spans_t
from flywheel.store.schema import traces as traces_t
from flywheel.store.schema import writer_drops
from flywheel.store.schema_workflows import workflow_runs
from flywheel.tracing.store_sink import WRITER_KIND, aggregate, preview

# Root span names of flywheel's own housekeeping (ingest, background embedding, the online evaluators' judge
# calls): traces of these are not product traffic, so monitors, drift, review sampling and the online evaluators
# leave them out.
HOUSEKEEPING = ("retrieval.ingest", "retrieval.ingest_file", "retrieval.embed", "monitor.online")


def product_traffic(traces: Any) -> Any:
    """A SQL condition on the traces table: the trace is an app or model call, not housekeeping."""
    return traces.c.name.not_in(HOUSEKEEPING)


def list_traces(store: Store, last: int = 20, app: str | None = None, *, tenant: str | None = None,
                status: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
    """The `last` most recent traces (newest first), optionally of one app / tenant / status, since a Unix time.

    Traces whose root span never ended — the process was killed mid-request, or it is still running — have
    spans but no trace row yet; they are listed too, with status "incomplete" and totals over the spans stored.
    """
    last = max(0, int(last))
    q = select(traces_t).order_by(traces_t.c.started_at.desc()).limit(last)
    if app is not None:
        q = q.where(traces_t.c.app == app)
    if tenant is not None:
        q = q.where(traces_t.c.tenant == tenant)
    if status is not None:
        q = q.where(traces_t.c.status == status)
    if since is not None:
        q = q.where(traces_t.c.started_at >= since)
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()] if status != "incomplete" else []
        if status in (None, "incomplete"):
            # only as far back as the page reaches: older incomplete traces would not make the page anyway
            floor = rows[-1]["started_at"] if len(rows) == last and rows else since
            extra = [t for t in incomplete_traces(conn, floor)
                     if (app is None or t["app"] == app) and (tenant is None or t["tenant"] == tenant)]
            if extra:
                rows = sorted([*rows, *extra], key=lambda r: r["started_at"], reverse=True)[:last]
    return rows


def dropped_spans(store: Store, since: float | None = None) -> int:
    """How many spans the store's writer had to drop under load (or after close), since a Unix time."""
    q = select(func.coalesce(func.sum(writer_drops.c.count), 0)).where(writer_drops.c.kind == WRITER_KIND)
    if since is not None:
        q = q.where(writer_drops.c.at >= since)
    with store.engine.connect() as conn:
        return int(conn.scalar(q) or 0)


def incomplete_traces(conn: Any, since: float | None = None) -> list[dict[str, Any]]:
    """Traces with spans stored but no trace row (their root never ended: still running, or killed), started at
    or after `since` (the newest 10,000). Read from `open_traces` (a row per such trace, kept by the span writer
    and the OTLP import), so one of any age is found without scanning every span."""
    o = open_traces_t.c
    has_row = select(traces_t.c.trace_id).where(traces_t.c.trace_id == o.trace_id).exists()
    q = select(o.trace_id).where(~has_row)  # (a trace row written by other means than the writer: ended)
    if since is not None:  # (a mark's time is its first spans' start: never before the trace's own)
        q = q.where(o.started_at >= since)
    ids = list(conn.scalars(q.order_by(o.started_at.desc()).limit(10_000)))
    out: list[dict[str, Any]] = []
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        members: dict[str, list[dict[str, Any]]] = {}
        for r in conn.execute(select(spans_t).where(spans_t.c.trace_id.in_(chunk))
                              .order_by(spans_t.c.start_ns)).mappings():
            members.setdefault(r["trace_id"], []).append(dict(r))
        out.extend(_incomplete(tid, spans) for tid, spans in members.items())
    if since is not None:  # an earlier span stored after the mark: the trace started before `since`
        out = [t for t in out if t["started_at"] >= since]
    _name_runs(conn, [t for t in out if t["app"] is None])
    return out


def _name_runs(conn: Any, rows: list[dict[str, Any]]) -> None:
    """Incomplete traces of workflow runs whose spans do not name the app (recorded before the steps carried
    it): the run's workflow is the app, so `--app NAME` finds a run that was killed."""
    for i in range(0, len(rows), 500):
        chunk = {r["trace_id"]: r for r in rows[i:i + 500]}
        runs = conn.execute(select(workflow_runs.c.trace_id, workflow_runs.c.workflow, workflow_runs.c.tenant)
                            .where(workflow_runs.c.trace_id.in_(list(chunk))))
        for trace_id, workflow, tenant in runs:
            row = chunk[trace_id]
            row["app"], row["tenant"] = workflow, row["tenant"] or tenant


def get_trace(store: Store, trace_id: str) -> dict[str, Any] | None:
    """The trace row plus `spans`: its root spans, each with `children` (ordered by start), or None.

    `trace_id` may be a unique prefix (at least 6 characters) as shown by `flywheel traces`. A trace whose root
    span was never recorded (the process died mid-request) comes back with status "incomplete".
    """
    trace_id = trace_id.strip().lower()
    with store.engine.connect() as conn:
        tid = _resolve(conn, trace_id)
        if tid is None:
            return None
        row = conn.execute(select(traces_t).where(traces_t.c.trace_id == tid)).mappings().first()
        span_rows = [dict(r) for r in conn.execute(
            select(spans_t).where(spans_t.c.trace_id == tid).order_by(spans_t.c.start_ns, spans_t.c.span_id)
        ).mappings()]
    if row is None and not span_rows:
        return None
    trace = dict(row) if row is not None else _incomplete(tid, span_rows)
    trace["spans"] = span_tree(span_rows)
    return trace


def trace_outline(store: Store, trace_id: str, *, body_kinds: tuple[str, ...] = ("llm", "retrieval"),
                  attribute_kinds: tuple[str, ...] = ("guard", "cache")) -> dict[str, Any] | None:
    """A trace for a page that must open fast however many spans it has: the trace row plus `span_rows`, every
    span WITHOUT its inputs/outputs (their sizes: `body_sizes`), ordered by start. Spans of `attribute_kinds`
    carry their attributes; the bodies of spans of `body_kinds` are in `bodies` {span_id: {"inputs", "outputs"}}
    (the model calls' prompts, the retrieved sources). None when unknown."""
    s = spans_t.c
    with store.engine.connect() as conn:
        tid = _resolve(conn, trace_id.strip().lower())
        if tid is None:
            return None
        row = conn.execute(select(traces_t).where(traces_t.c.trace_id == tid)).mappings().first()
        # only the columns stored before the JSON bodies: later ones would make SQLite read every overflow page
        light = [s.span_id, s.parent_id, s.name, s.kind, s.start_ns, s.end_ns, s.latency_ms]
        result = conn.execute(select(*light).where(s.trace_id == tid).order_by(s.start_ns, s.span_id))
        names = list(result.keys())
        span_rows = [dict(zip(names, r)) for r in result]  # tuples: a 5,000-span trace stays cheap
        attrs = dict(conn.execute(select(s.span_id, s.attributes)
                                  .where(s.trace_id == tid, s.kind.in_(attribute_kinds))).all())
        bodies = {r[0]: {"inputs": r[1], "outputs": r[2]} for r in conn.execute(
            select(s.span_id, s.inputs, s.outputs).where(s.trace_id == tid, s.kind.in_(body_kinds))
            .order_by(s.start_ns).limit(200))}
    if row is None and not span_rows:
        return None
    for r in span_rows:
        r["attributes"] = attrs.get(r["span_id"])
    if row is not None:
        trace = dict(row)
    else:  # no trace row: its totals and tenant come from the spans' details
        details = span_details(store, [r["span_id"] for r in span_rows])
        trace = _incomplete(tid, [{**r, **details.get(r["span_id"], {}), "inputs": None} for r in span_rows])
    trace["span_rows"] = span_rows
    trace["bodies"] = bodies
    return trace


DETAIL_COLUMNS = ("output_state", "error", "model", "provider", "input_tokens", "output_tokens", "cost_usd",
                  "prompt_version", "tenant", "app")


def span_details(store: Store, span_ids: list[str]) -> dict[str, dict[str, Any]]:
    """{span_id: its DETAIL_COLUMNS plus `input_bytes`/`output_bytes` (stored size of its inputs and outputs)},
    without the bodies — read for the spans shown, not for all of a big trace's."""
    s = spans_t.c
    cols = [s.span_id, *(s[c] for c in DETAIL_COLUMNS),
            func.coalesce(func.length(cast(s.inputs, Text)), 0).label("input_bytes"),
            func.coalesce(func.length(cast(s.outputs, Text)), 0).label("output_bytes")]
    out: dict[str, dict[str, Any]] = {}
    with store.engine.connect() as conn:
        for i in range(0, len(span_ids), 500):
            result = conn.execute(select(*cols).where(s.span_id.in_(span_ids[i:i + 500])))
            names = list(result.keys())
            out.update((r[0], dict(zip(names[1:], r[1:]))) for r in result)
    return out


def span_body(store: Store, span_id: str) -> dict[str, Any] | None:
    """One span with its inputs, outputs and attributes, plus `trace_tenant` (its trace's tenant), or None."""
    if not span_id or len(span_id) > 32:
        return None
    with store.engine.connect() as conn:
        row = conn.execute(select(spans_t).where(spans_t.c.span_id == span_id)).mappings().first()
        if row is None:
            return None
        tenant = conn.scalar(select(traces_t.c.tenant).where(traces_t.c.trace_id == row["trace_id"]))
    out = dict(row)
    out["trace_tenant"] = tenant if tenant is not None else row["tenant"]
    return out


def span_tree(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nest span rows under their parents; spans whose parent is unknown become roots."""
    by_id = {r["span_id"]: {**r, "children": []} for r in rows}
    roots: list[dict[str, Any]] = []
    for r in rows:
        node = by_id[r["span_id"]]
        parent = by_id.get(r["parent_id"]) if r["parent_id"] else None
        (parent["children"] if parent is not None else roots).append(node)
    return roots


def _resolve(conn: Any, trace_id: str) -> str | None:
    for table in (traces_t, spans_t):
        if conn.execute(select(table.c.trace_id).where(table.c.trace_id == trace_id).limit(1)).first():
            return trace_id
    if len(trace_id) < 6 or not all(c in "0123456789abcdef" for c in trace_id):
        return None
    found: set[str] = set()
    for table in (traces_t, spans_t):
        found.update(conn.scalars(select(table.c.trace_id).where(table.c.trace_id.like(trace_id + "%"))
                                  .distinct().limit(5)))
    if len(found) > 1:
        raise UserError(f"trace id prefix '{trace_id}' matches {len(found)} traces ({', '.join(sorted(found)[:3])} …)",
                        hint="give more characters of the trace id")
    return found.pop() if found else None


def _incomplete(trace_id: str, spans: list[dict[str, Any]]) -> dict[str, Any]:
    """A trace row for a trace whose root never ended, from the spans that were stored (oldest first)."""
    ordered = sorted(spans, key=lambda s: s["start_ns"])
    known = {s["span_id"] for s in ordered}
    top = next((s for s in ordered if s["parent_id"] not in known), ordered[0])  # the highest span stored

    def first(key: str) -> Any:
        return next((s[key] for s in ordered if s.get(key)), None)


    # guard and cache spans record what they looked at (`{"stage": "input", "chars": 55}`), not the question
    asked = [s for s in ordered if s["kind"] not in ("guard", "cache")] or ordered
    return {"trace_id": trace_id, "name": top["name"], "kind": top["kind"], "started_at": ordered[0]["start_ns"] / 1e9,
            "ended_at": None, "latency_ms": None, "status": "incomplete", "error": None,
            "input_preview": next((p for p in (preview(s["inputs"]) for s in asked) if p), None),
            "output_preview": None, "output_state": None, "tenant": first("tenant"), "app": first("app"),
            "model": first("model"), "prompt_version": first("prompt_version"), **aggregate(spans)}

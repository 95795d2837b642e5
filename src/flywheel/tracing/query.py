"""Read traces back: the latest traces, and one trace with its span tree."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from flywheel.errors import UserError
from flywheel.store import Store
from flywheel.store.schema import spans as spans_t
from flywheel.store.schema import traces as traces_t
from flywheel.store.schema import writer_drops
from flywheel.tracing.store_sink import WRITER_KIND, aggregate, preview


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
    """Traces with spans stored but no trace row (their root never ended), started at or after `since`."""
    has_row = select(traces_t.c.trace_id).where(traces_t.c.trace_id == spans_t.c.trace_id).exists()
    q = select(spans_t.c.trace_id).where(~has_row).distinct()
    if since is not None:
        q = q.where(spans_t.c.start_ns >= int(since * 1e9))
    ids = list(conn.scalars(q.limit(10_000)))
    out: list[dict[str, Any]] = []
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        members: dict[str, list[dict[str, Any]]] = {}
        for r in conn.execute(select(spans_t).where(spans_t.c.trace_id.in_(chunk))
                              .order_by(spans_t.c.start_ns)).mappings():
            members.setdefault(r["trace_id"], []).append(dict(r))
        out.extend(_incomplete(tid, spans) for tid, spans in members.items())
    return out


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

    return {"trace_id": trace_id, "name": top["name"], "kind": top["kind"], "started_at": ordered[0]["start_ns"] / 1e9,
            "ended_at": None, "latency_ms": None, "status": "incomplete", "error": None,
            "input_preview": next((p for p in (preview(s["inputs"]) for s in ordered) if p), None),
            "output_preview": None, "output_state": None, "tenant": first("tenant"), "app": first("app"),
            "model": first("model"), "prompt_version": first("prompt_version"), **aggregate(spans)}

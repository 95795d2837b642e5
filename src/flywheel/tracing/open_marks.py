"""`open_traces` marks: a row per trace whose spans are stored without its trace row (its root has not ended: still
running, or its process was killed), so incomplete traces of any age are listed without scanning every span.

Written by the span writer (store_sink) and the OTLP import in the transaction that stores the spans; deleted in
the transaction that writes the trace row (`close_open`). A mark the writers could not delete at once — a late
span of a trace another process ended (`mark_open` checks), two processes racing, spans deleted by hand — is
skipped by the readers and swept by `sweep_stale_marks` (each span writer runs it on its first batch, then every
few minutes).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, delete, select

from flywheel.store.schema import open_traces as open_traces_t
from flywheel.store.schema import spans as spans_t
from flywheel.store.schema import traces as traces_t


def mark_open(conn: Connection, traces: list[tuple[str, float]]) -> None:
    """Record (trace id, started_at) pairs as open: spans stored, no trace row yet (a trace marked already keeps
    its row). `close_open` removes them when their trace rows are written. A trace whose row is there already (a
    late span of a trace another process ended: `serve --workers N`, the OTLP receiver) is left unmarked."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    conn.exec_driver_sql(f"INSERT INTO open_traces (trace_id, started_at) VALUES ({mark}, {mark}) "
                         "ON CONFLICT (trace_id) DO NOTHING", traces)
    ids = [tid for tid, _ in traces]
    o = open_traces_t.c
    ended = select(traces_t.c.trace_id).where(traces_t.c.trace_id == o.trace_id).exists()
    for i in range(0, len(ids), 500):
        conn.execute(delete(open_traces_t).where(o.trace_id.in_(ids[i:i + 500]), ended))


def sweep_stale_marks(conn: Connection, limit: int = 1000) -> int:
    """Delete up to `limit` marks that no longer mark an incomplete trace: those of traces whose rows are written
    (left when two processes race: one marks the trace as the other writes its row and `close_open`, before the
    mark commits), and those of traces whose spans were deleted (by hand: nothing in flywheel deletes spans).
    Readers skip both anyway; this keeps the table small. Returns how many were deleted."""
    stale = open_traces_t.alias("stale")
    ended = select(traces_t.c.trace_id).where(traces_t.c.trace_id == stale.c.trace_id).exists()
    spanned = select(spans_t.c.span_id).where(spans_t.c.trace_id == stale.c.trace_id).exists()
    ids = select(stale.c.trace_id).where(ended | ~spanned).limit(limit)
    return int(conn.execute(delete(open_traces_t).where(open_traces_t.c.trace_id.in_(ids))).rowcount or 0)


def close_open(conn: Connection, trace_ids: Iterable[str]) -> None:
    """The traces' rows are written: they are open no more."""
    ids = list(trace_ids)
    for i in range(0, len(ids), 500):
        conn.execute(delete(open_traces_t).where(open_traces_t.c.trace_id.in_(ids[i:i + 500])))

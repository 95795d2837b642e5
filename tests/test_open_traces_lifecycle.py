"""The life of an `open_traces` mark (a trace whose spans are stored without its root: still running, or killed),
on SQLite and PostgreSQL:

1. A late span of a trace another writer (another `serve --workers` process) already ended leaves no mark; a
   mark left by two writers racing, or of a trace whose spans were deleted by hand, is swept by the span writer;
   a trace with its row, or without spans, is never listed incomplete.
2. `flywheel store copy` carries the marks, either direction: an incomplete run stays listed in the new store.
3. The listing finds an incomplete trace from its mark and reads its spans by trace id.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from flywheel.cli import main
from flywheel.store import Store
from flywheel.store.schema import open_traces
from flywheel.store.schema import spans as spans_t
from flywheel.tracing import tracer
from flywheel.tracing.open_marks import mark_open
from flywheel.tracing.search import TraceQuery, search_traces
from flywheel.tracing.store_sink import StoreSink, attach_store
from flywheel.tracing.tracer import make_span

DONE = "d0" * 16
KILLED = "ab" * 16
ROOT, STEP, LATE = "01" * 8, "02" * 8, "03" * 8


def _span(trace_id: str, span_id: str, parent_id: str | None, name: str, start: float):
    ns = int(start * 1e9)
    return make_span(span_id=span_id, trace_id=trace_id, parent_id=parent_id, name=name, kind="other",
                     start_ns=ns, end_ns=ns + 10**9, inputs={"topic": "tides"}, outputs="notes",
                     output_state="ok", error=None, attributes={"flywheel.app": "digest"})


def _ingest(store: Store, *records) -> None:
    """Spans stored by a span writer of its own: a process of `serve --workers N` (or the OTLP receiver in one),
    knowing nothing of the traces other processes wrote."""
    detach = attach_store(store)
    try:
        for r in records:
            tracer.ingest(r)
        tracer.flush()
    finally:
        detach()


def _marks(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.scalars(select(open_traces.c.trace_id).order_by(open_traces.c.trace_id)))


def _incomplete(store: Store) -> list[str]:
    return [r["trace_id"] for r in search_traces(store, TraceQuery(status="incomplete")).rows]


# ------------------------------------------------------------------------------ 1. stale marks


def test_a_late_span_from_another_process_leaves_no_mark(store_url):
    start = time.time() - 600
    with Store.open(store_url) as store:
        _ingest(store, _span(DONE, ROOT, None, "workflow digest", start), _span(DONE, STEP, ROOT, "step", start + 1))
        assert _marks(store) == []
        _ingest(store, _span(DONE, LATE, ROOT, "late step", start + 2))  # another process: the trace ended there
        assert _marks(store) == []
        assert _incomplete(store) == []
        assert [r["status"] for r in search_traces(store, TraceQuery(app="digest")).rows] == ["ok"]


def test_a_mark_left_by_racing_writers_is_swept_and_never_listed(store_url):
    """Two processes racing (a mark committed after the trace row and its `close_open`): the mark is left, the
    trace is not listed incomplete, and the next span writer to start removes it."""
    start = time.time() - 600
    with Store.open(store_url) as store:
        _ingest(store, _span(DONE, ROOT, None, "workflow digest", start))
        with store.begin() as conn:  # the racing writer's mark, as it lands after the root's transaction
            conn.execute(open_traces.insert(), [{"trace_id": DONE, "started_at": start}])
        _ingest(store, _span(KILLED, STEP, ROOT + "ff", "step", start))  # (the killed run: marked, and kept)
        assert _incomplete(store) == [KILLED]
        assert _marks(store) == [KILLED]


def test_a_killed_trace_deleted_by_hand_is_not_listed_and_its_mark_is_swept(store_url):
    """Nothing in flywheel deletes spans, but an operator may (privacy erasure, by SQL): the deleted trace is not
    listed, and its mark does not stay behind for good."""
    start = time.time() - 600
    with Store.open(store_url) as store:
        _ingest(store, _span(KILLED, STEP, ROOT, "step", start), _span(KILLED[::-1], LATE, ROOT, "step", start))
        assert sorted(_incomplete(store)) == [KILLED, KILLED[::-1]]
        with store.begin() as conn:
            conn.execute(spans_t.delete().where(spans_t.c.trace_id == KILLED))
        assert _incomplete(store) == [KILLED[::-1]]
        _ingest(store, _span(DONE, ROOT, None, "workflow digest", start))  # a span writer starts: sweeps
        assert _marks(store) == [KILLED[::-1]]


def test_a_sink_sweeps_again_only_after_a_while(store_url, monkeypatch):
    start = time.time() - 600
    with Store.open(store_url) as store:
        sink = StoreSink(store, lambda s: s)
        calls: list[int] = []
        sweep = StoreSink._sweep
        monkeypatch.setattr(StoreSink, "_sweep", lambda self, conn: calls.append(1) or sweep(self, conn))
        for i in range(3):
            sink.submit(_span(f"{i:032x}", f"{i + 1:016x}", None, "q", start))
            sink.flush()
        assert calls == [1]  # the first batch only (not one full scan per batch)
        sink._swept -= StoreSink.SWEEP_EVERY_S + 1
        sink.submit(_span(DONE, ROOT, None, "q", start))
        sink.flush()
        assert calls == [1, 1]


def test_racing_writers_on_postgresql_never_make_an_ended_trace_incomplete(pg_fresh_url):
    """The interleaving itself, on PostgreSQL: writer B marks the trace (its late span) while writer A writes the
    root; A's `close_open` cannot see B's uncommitted mark, B commits after A."""
    start = time.time() - 600
    with Store.open(pg_fresh_url) as store:
        with store.engine.connect() as b, b.begin():
            mark_open(b, [(DONE, start + 1)])  # B: a late span's mark (no trace row yet, as B sees it)
            _ingest(store, _span(DONE, STEP, ROOT, "step", start + 1),  # A: the trace, its row, close_open
                    _span(DONE, ROOT, None, "workflow digest", start))
        assert _marks(store) == [DONE]  # B committed after A: its mark is left, yet the trace is not incomplete
        assert _incomplete(store) == []
        _ingest(store, _span(KILLED, LATE, ROOT + "ff", "step", start))
        assert _marks(store) == [KILLED]


# ------------------------------------------------------------------------------ 2. store copy


@pytest.mark.parametrize("direction", ["sqlite_to_store", "store_to_sqlite"])
def test_store_copy_keeps_an_incomplete_run_listed(store_url, tmp_path: Path, direction):
    sqlite = f"sqlite:///{tmp_path / 'other' / 'flywheel.db'}"
    src, dst = (sqlite, store_url) if direction == "sqlite_to_store" else (store_url, sqlite)
    (tmp_path / "other").mkdir()
    start = time.time() - 3 * 86400  # days ago: older than any listing window
    with Store.open(src) as store:
        _ingest(store, _span(KILLED, STEP, ROOT, "step fetch", start),
                _span(DONE, ROOT + "ee", None, "workflow digest", start + 5))
        assert _marks(store) == [KILLED]
    out = CliRunner().invoke(main, ["store", "copy", src, dst, "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["tables"]["open_traces"] == 1
    with Store.open(dst) as store:
        assert _marks(store) == [KILLED]
        assert _incomplete(store) == [KILLED]
        rows = search_traces(store, TraceQuery(app="digest")).rows
        assert [(r["trace_id"], r["status"]) for r in rows] == [(DONE, "ok"), (KILLED, "incomplete")]


# ------------------------------------------------------------------------------ 3. the listing's query shape


def test_the_listing_reads_marks_by_start_and_spans_by_trace_id(store_url):
    from sqlalchemy import event

    seen: list[str] = []

    def log(conn, cursor, statement, params, context, many):
        seen.append(" ".join(statement.split()).lower())

    start = time.time() - 3600
    with Store.open(store_url) as store:
        _ingest(store, _span(KILLED, STEP, ROOT, "step fetch", start))
        event.listen(store.engine, "before_cursor_execute", log)
        try:
            assert _incomplete(store) == [KILLED]
        finally:
            event.remove(store.engine, "before_cursor_execute", log)
    on_marks = [s for s in seen if "from open_traces" in s]
    assert on_marks and all("order by open_traces.started_at desc" in s for s in on_marks), on_marks
    on_spans = [s for s in seen if "from spans" in s]
    assert on_spans and all("spans.trace_id in" in s for s in on_spans), on_spans

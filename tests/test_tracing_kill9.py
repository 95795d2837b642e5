"""kill -9 in the middle of writing spans: the SQLite store stays consistent and loses at most ~the last second."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

from sqlalchemy import func, select

from flywheel.store import Store
from flywheel.store.db import current_revisions, script_heads
from flywheel.store.schema import spans, traces
from flywheel.tracing import list_traces
from flywheel.tracing.query import dropped_spans

CHILD = r"""
import sys, threading, time
from flywheel.store import Store
from flywheel.tracing import attach_store, tracer

store = Store.open(sys.argv[1])
attach_store(store)
threads = int(sys.argv[2])
done = [0] * threads  # traces whose root has ended (been handed to the writer), per producer thread


def produce(t):
    i = 0
    while True:
        with tracer.span("request", kind="app", inputs={"question": f"q{t}-{i}"}) as root:
            for j in range(3):
                with tracer.span(f"step{j}", kind="llm", **{"gen_ai.usage.input_tokens": 10,
                                                            "gen_ai.usage.output_tokens": 2}) as sp:
                    sp.set(outputs="x" * 200)
            root.set(outputs={"n": i})
        done[t] += 1
        i += 1


for t in range(threads):
    threading.Thread(target=produce, args=(t,), daemon=True).start()
while True:  # report progress: spans ended so far, at what time
    print(sum(done) * 4, time.time(), flush=True)
    time.sleep(0.02)
"""

RUN_S = 3.0  # how long the child writes before it is killed


def _run_and_kill(url: str, threads: int) -> tuple[list[tuple[int, float]], float]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, url, str(threads)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    reports: list[tuple[int, float]] = []
    first = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            fields = line.split()
            if len(fields) != 2:  # the last line, cut in half by the kill
                continue
            n, at = fields
            reports.append((int(n), float(at)))
            if int(n):
                first.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert first.wait(60), f"child never traced anything: {proc.stderr.read() if proc.poll() else ''}"
        time.sleep(RUN_S)  # lets the child run; nothing is asserted about this duration
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.time()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    reader.join(10)
    assert proc.returncode == -signal.SIGKILL
    return reports, killed_at


def test_kill_9_under_load_loses_at_most_one_second_of_spans_and_leaves_a_consistent_store(tmp_path):
    db = tmp_path / "trace.db"
    url = f"sqlite:///{db}"
    reports, killed_at = _run_and_kill(url, threads=4)  # producers faster than the writer: back-pressure

    raw = sqlite3.connect(db)  # plain sqlite3 first: recovers the WAL exactly as any reader would
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()

    with Store.open(url) as store, store.engine.connect() as conn:
        assert current_revisions(store.engine) == script_heads()
        stored_spans = conn.scalar(select(func.count()).select_from(spans))
        stored = {r.trace_id: r for r in conn.execute(select(traces))}
        per_trace = dict(conn.execute(select(spans.c.trace_id, func.count()).group_by(spans.c.trace_id)).all())
        incomplete = [t for t in list_traces(store, last=10_000) if t["status"] == "incomplete"]
        dropped = dropped_spans(store)

    # the child's own rate over its last second of reports, and how many spans had ended when it was killed
    n_last, t_last = reports[-1]
    window = [(n, at) for n, at in reports if at >= t_last - 1.0]
    rate = (n_last - window[0][0]) / (t_last - window[0][1])  # spans per second
    ended = n_last + rate * max(0.0, killed_at - t_last)
    lost = ended - stored_spans
    assert rate > 100, "the child wrote too little for the test to mean anything"
    assert lost <= rate * 1.0, f"lost {lost:.0f} spans = {lost / rate:.2f} s of spans at {rate:.0f} spans/s"
    # a trace row is committed together with its spans; a trace is only short of spans the writer dropped
    # (and counted) when it stayed behind for longer than its back-pressure wait
    short = 0
    for tid, row in stored.items():
        assert row.span_count == per_trace.get(tid)
        if row.span_count < 4:
            short += 1
        else:
            assert (row.input_tokens, row.output_tokens) == (30, 6)
    assert short <= dropped
    # traces whose root never ended (at most one in flight per producer thread) are listed as incomplete
    orphans = set(per_trace) - set(stored)
    assert len(orphans) <= 4 + dropped
    assert {t["trace_id"] for t in incomplete} == orphans
    assert all(t["span_count"] == per_trace[t["trace_id"]] for t in incomplete)


EXIT_CHILD = r"""
import sys
from flywheel.store import Store
from flywheel.tracing import attach_store, tracer

store = Store.open(sys.argv[1], max_delay_s=30.0)  # nothing would be committed by time alone
attach_store(store)
for i in range(500):
    with tracer.span("request", kind="app", inputs={"i": i}):
        with tracer.span("step", kind="llm"):
            pass
# no flush, no close: the interpreter's exit must write everything queued
"""


def test_a_clean_exit_without_close_loses_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'exit.db'}"
    done = subprocess.run([sys.executable, "-c", EXIT_CHILD, url], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    with Store.open(url) as store, store.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(traces)) == 500
        assert conn.scalar(select(func.count()).select_from(spans)) == 1000

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

CHILD = r"""
import sys, time
from flywheel.store import Store
from flywheel.tracing import attach_store, tracer

store = Store.open(sys.argv[1])
attach_store(store)
i = 0
while True:
    with tracer.span("request", kind="app", inputs={"i": i}) as root:
        for j in range(3):
            with tracer.span(f"step{j}", kind="llm", **{"gen_ai.usage.input_tokens": 10,
                                                        "gen_ai.usage.output_tokens": 2}) as sp:
                sp.set(outputs="x" * 200)
        root.set(outputs={"n": i})
    print(root.trace_id, time.time(), flush=True)  # the root has ended (queued) at this time
    i += 1
    time.sleep(0.002)
"""

RUN_S = 2.5  # how long the child writes before it is killed
GRACE_S = 1.0  # spans that ended longer ago than this before the kill must be in the store


def test_kill_9_leaves_a_consistent_store_missing_at_most_the_last_second(tmp_path):
    db = tmp_path / "trace.db"
    url = f"sqlite:///{db}"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    ended: list[tuple[str, float]] = []
    first = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            tid, at = line.split()
            ended.append((tid, float(at)))
            first.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert first.wait(60), f"child never traced anything: {proc.stderr.read() if proc.poll() else ''}"
        time.sleep(RUN_S)
        killed_at = time.time()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    reader.join(10)
    assert proc.returncode == -signal.SIGKILL

    raw = sqlite3.connect(db)  # plain sqlite3 first: recovers the WAL exactly as any reader would
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()

    with Store.open(url) as store, store.engine.connect() as conn:
        assert current_revisions(store.engine) == script_heads()
        stored = {r.trace_id: r for r in conn.execute(select(traces))}
        per_trace = dict(conn.execute(select(spans.c.trace_id, func.count()).group_by(spans.c.trace_id)).all())

    must_have = [tid for tid, at in ended if at < killed_at - GRACE_S]
    assert len(must_have) > 50, "the child wrote too little for the test to mean anything"
    missing = [tid for tid in must_have if tid not in stored]
    assert not missing, f"{len(missing)} of {len(must_have)} traces ended > {GRACE_S}s before the kill are lost"
    # no partial trace: a trace row is committed together with all of its spans
    for tid, row in stored.items():
        assert row.span_count == 4 and per_trace.get(tid) == 4
        assert (row.input_tokens, row.output_tokens) == (30, 6)
    # spans without a trace row can only be the few in flight (their root not yet committed)
    orphans = set(per_trace) - set(stored)
    assert len(orphans) <= 2


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

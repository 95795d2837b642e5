"""The background writer under load: a queue bounded by time, back-pressure, and drops that are counted in the
store. The store's slowness is simulated with an injected clock and a gate, never with sleeps."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from flywheel.store import Store
from flywheel.store.db import schema_diff
from flywheel.store.schema import writer_drops
from flywheel.store.writer import Writer


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SlowStore:
    """A writer handler that 'takes' 0.1 s per item on the fake clock and can be held shut by a gate."""

    def __init__(self, clock: FakeClock):
        self.clock = clock
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.written: list[int] = []

    def __call__(self, conn, payloads: list[int]) -> None:
        self.entered.set()
        assert self.gate.wait(30), "test gate never opened"
        self.clock.now += 0.1 * len(payloads)
        self.written.extend(payloads)


@pytest.fixture
def store(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'w.db'}") as s:
        yield s


def _writer(store: Store, clock: FakeClock, **kw) -> tuple[Writer, SlowStore]:
    writer = Writer(store.engine, batch_rows=10, max_delay_s=30.0, max_backlog_s=0.5, clock=clock, **kw)
    slow = SlowStore(clock)
    writer.register("slow", slow)
    return writer, slow


def _fill_until_blocked(writer: Writer, slow: SlowStore) -> int:
    """Learn the rate from one batch, then hold the store shut with one item in flight; returns the next id."""
    for i in range(10):
        assert writer.put("slow", i)
    assert writer.flush(30)
    assert writer.rate == pytest.approx(10.0)  # 10 items in 1.0 s of (fake) store time
    assert writer.queue_limit == 5  # 0.5 s of work at that rate
    slow.gate.clear()
    slow.entered.clear()
    writer.put("slow", 10)
    threading.Thread(target=writer.flush, args=(30,), daemon=True).start()  # sends item 10 in now
    assert slow.entered.wait(30)  # the writer is stuck inside the store with item 10
    return 11


def test_queue_is_bounded_by_time_and_drops_are_counted_in_the_store(store):
    clock = FakeClock()
    writer, slow = _writer(store, clock, block_s=0.0)  # no waiting: drop at once when full
    try:
        nxt = _fill_until_blocked(writer, slow)
        accepted = [writer.put("slow", nxt + i) for i in range(25)]
        assert accepted == [True] * 5 + [False] * 20  # 5 queued (0.5 s of work), the rest dropped
        assert writer.drops == {"slow": 20}
        slow.gate.set()
        assert writer.flush(30)
        assert slow.written == list(range(nxt + 5))  # everything accepted was written, in order
        writer.put("slow", 99)  # the next batch records the drop count
        assert writer.flush(30)
        with store.engine.connect() as conn:
            rows = conn.execute(select(writer_drops)).mappings().all()
        assert [(r["kind"], r["reason"], r["count"]) for r in rows] == [("slow", "queue_full", 20)]
    finally:
        slow.gate.set()
        writer.close()


def test_a_full_queue_blocks_the_producer_until_there_is_room(store):
    clock = FakeClock()
    writer, slow = _writer(store, clock, block_s=60.0)
    try:
        nxt = _fill_until_blocked(writer, slow)
        for i in range(5):
            assert writer.put("slow", nxt + i)
        outcome: list[bool] = []
        producer = threading.Thread(target=lambda: outcome.append(writer.put("slow", 1000)))
        producer.start()
        producer.join(0.2)  # not a timing assertion: the producer may only go on once the store moves
        assert outcome == [] and producer.is_alive()
        slow.gate.set()  # the store catches up: the producer gets room instead of losing its span
        producer.join(30)
        assert outcome == [True] and writer.drops == {}
        assert writer.flush(30) and slow.written[-1] == 1000
    finally:
        slow.gate.set()
        writer.close()


def test_a_writer_never_waits_for_itself(store):
    clock = FakeClock()
    writer = Writer(store.engine, batch_rows=1, max_delay_s=30.0, max_backlog_s=0.5, block_s=60.0, clock=clock,
                    max_queue=1)
    results: list[bool] = []

    def handler(conn, payloads):
        clock.now += 1.0
        if payloads == ["first"]:  # a handler enqueueing more work while the queue is full: no deadlock
            results.extend([writer.put("h", "x"), writer.put("h", "y")])

    writer.register("h", handler)
    try:
        writer.put("h", "first")
        assert writer.flush(30)
        assert results == [True, False] and writer.drops == {"h": 1}
    finally:
        writer.close()


def test_writes_after_close_are_counted(store):
    writer = Writer(store.engine)
    writer.close()
    assert writer.put("tracing.spans", object()) is False
    assert writer.drops == {"tracing.spans": 1}


def test_the_drops_table_matches_its_migration(store):
    assert not [d for d in schema_diff(store, ["writer_drops"])]

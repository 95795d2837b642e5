"""The background writer: one thread per store, fed by a queue, committing in batches.

Callers only enqueue (a few hundred nanoseconds); conversion and SQL happen on the writer thread. A batch is
committed when it holds `batch_rows` items or `max_delay_s` after its first item arrived, whichever comes first;
when a backlog builds up, batches grow (up to about 0.15 s of work) so the writer keeps up. Each
batch is one transaction (the database is never left half-written).

Bounded loss (the policy): the queue is bounded by TIME, not only by count. The writer measures how many items
per second it writes, and the queue may hold at most `max_backlog_s` (0.3 s) of that work. A producer that
finds it full waits up to `block_s` (1 s) for room — back-pressure on the traced code — and if there is
still none the item is dropped and counted: per kind in `Writer.drops`, and in the store's `writer_drops`
table (written with the next batch), so lost spans are never silent. So at any load a `kill -9` loses at most
about one second of work (queue + the batch in flight + `max_delay_s`), and a normal exit drains within
`EXIT_DRAIN_S` (2 s). `flush()` blocks until everything queued before it is committed.

Two kinds of work:
- `submit(table, row)`: a plain insert into a table of `flywheel.store.schema.metadata` (executemany per batch);
- `put(kind, payload)` with a handler registered by `register(kind, handler)`: `handler(connection, payloads)`
  runs inside the batch transaction (the tracing sink uses it to convert spans and upsert trace rows); it may
  return a callable, called once that transaction has committed (to update in-memory state safely).
Order is kept within one kind/table; inside a batch, groups are written in order of their first item.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, Table

log = logging.getLogger("flywheel.store.writer")

Handler = Callable[[Connection, list[Any]], Callable[[], None] | None]
_STOP = object()
_DROPS = "writer:drops"  # a no-op item: wakes the writer to record drop counts
EXIT_DRAIN_S = 2.0  # at interpreter exit, give the writer this long to commit what is queued


class _Flush:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class BatchWorker:
    """A daemon thread that drains a queue in batches and hands each batch to `process(items)`.

    Generic on purpose: the store writer and the OTLP exporter both use it. `process` must not raise;
    if it does, the error is logged and the worker keeps going.
    """

    POLL_S = 0.05  # while collecting a batch, look at the queue this often
    BATCH_WORK_S = 0.15  # under a backlog, batches grow to about this much work (the loss of a kill mid-batch)
    RATE_ALPHA = 0.3  # weight of the newest batch in the measured write rate

    def __init__(self, process: Callable[[list[Any]], None], *, name: str, batch_items: int = 100,
                 max_delay_s: float = 0.2, max_queue: int = 200_000, flush_at_exit: bool = True,
                 max_backlog_s: float | None = None, block_s: float = 0.0, max_batch_items: int = 5_000,
                 initial_limit: int = 500, clock: Callable[[], float] = time.perf_counter):
        self._process = process
        self.name = name
        self.batch_items = batch_items
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self.max_backlog_s = max_backlog_s  # None: bounded by `max_queue` only
        self.block_s = block_s
        self.max_batch_items = max(batch_items, max_batch_items)
        self.clock = clock
        self.rate: float | None = None  # items/s the worker processes (measured on full batches)
        self.limit = min(initial_limit, max_queue) if max_backlog_s is not None else max_queue
        self.dropped = 0  # items refused because the queue was full or the worker closed
        self.dropped_full = 0
        self.blocked = 0  # puts that had to wait for room
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._room = threading.Condition()
        self._waiting = 0
        self._last_end: float | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False
        self._flush_at_exit = flush_at_exit
        if flush_at_exit:
            atexit.register(self._at_exit)

    # ------------------------------------------------------------------ caller side (hot path)
    def put(self, item: Any) -> bool:
        """Enqueue one item; False (and counted in `dropped`) when closed, or when the queue stayed full for
        `block_s`."""
        if self._closed:
            self.dropped += 1
            return False
        if self._thread is None or self._pid != os.getpid():
            self._start()
        if self._q.qsize() >= self.limit and not self._wait_for_room():
            self.dropped += 1
            self.dropped_full += 1
            if self.dropped_full in (1, 1000, 100_000):
                log.warning("%s: writer behind (queue of %d items = %.2f s of work), dropped %d so far",
                            self.name, self.limit, self.max_backlog_s or 0.0, self.dropped_full)
            return False
        self._q.put(item)
        if self._q.qsize() >= self.batch_items:
            self._wake.set()
        return True

    def _wait_for_room(self) -> bool:
        """Back-pressure: wait up to `block_s` for the worker to make room. Never on the worker itself."""
        if self.block_s <= 0 or threading.current_thread() is self._thread:
            return False
        self.blocked += 1
        self._wake.set()
        with self._room:
            self._waiting += 1
            try:
                return self._room.wait_for(lambda: self._q.qsize() < self.limit, timeout=self.block_s)
            finally:
                self._waiting -= 1

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Block until everything queued before this call is processed. True when done within `timeout`."""
        thread = self._thread
        if thread is None or not thread.is_alive() or self._pid != os.getpid():
            return self._q.empty()
        if threading.current_thread() is thread:  # called from a handler: cannot wait for ourselves
            return False
        marker = _Flush()
        self._q.put(marker)
        self._wake.set()
        return marker.done.wait(timeout)

    def close(self, timeout: float | None = 30.0) -> bool:
        """Process what is queued, then stop the thread. Later `put`s are dropped."""
        with self._lock:
            if self._closed:
                return True
            self._closed = True
        if self._flush_at_exit:
            atexit.unregister(self._at_exit)
        thread = self._thread
        if thread is None or not thread.is_alive() or self._pid != os.getpid():
            return True
        self._q.put(_STOP)
        self._wake.set()
        thread.join(timeout)
        return not thread.is_alive()

    @property
    def closed(self) -> bool:
        return self._closed

    def pending(self) -> int:
        return self._q.qsize()

    # ------------------------------------------------------------------ worker side
    def _start(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self._pid != os.getpid():  # forked: the parent's thread and queue are not ours
                self._q = queue.SimpleQueue()
                self._thread = None
                self._pid = os.getpid()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        q = self._q
        while True:
            first = q.get()
            batch: list[Any] = []
            markers: list[_Flush] = []
            stop = self._take(first, batch, markers)
            deadline = time.monotonic() + self.max_delay_s
            # Under a backlog take several batches' worth at once (whole multiples of `batch_items`, so a
            # partial remainder still waits for its delay), up to about BATCH_WORK_S of work.
            ready = (q.qsize() + 1) // self.batch_items * self.batch_items
            most = max(self.batch_items, min(self._batch_cap(), ready))
            # Collect the batch by polling, not by waking up per item: a wake-up per enqueued span would cost
            # the traced threads a GIL hand-off each. `put` wakes us early when a batch is full, flush/close too.
            while True:
                while not stop and len(batch) < most:
                    try:
                        item = q.get_nowait()
                    except queue.Empty:
                        break
                    stop = self._take(item, batch, markers)
                remaining = deadline - time.monotonic()
                if stop or markers or len(batch) >= self.batch_items or remaining <= 0:
                    break
                self._wake.wait(min(remaining, self.POLL_S))
                self._wake.clear()
            if self._waiting:  # the batch left the queue: producers waiting for room may go on
                with self._room:
                    self._room.notify_all()
            if batch:
                started = self.clock()
                # under a backlog the time since the previous batch ended is the real cost of this one
                # (taking items, converting, waiting for the GIL, committing): throughput, not just SQL time
                since = started if self._last_end is None or len(batch) < self.batch_items else self._last_end
                try:
                    self._process(batch)
                except Exception:  # the worker must survive anything a batch does
                    log.exception("%s: batch of %d items failed", self.name, len(batch))
                self._last_end = self.clock()
                self._measured(len(batch), self._last_end - since)
            for m in markers:
                m.done.set()
            if stop:
                self._drain_after_stop()
                return

    def _batch_cap(self) -> int:
        """Items to take into the next batch: everything waiting, up to about BATCH_WORK_S of work."""
        if self.rate is None:  # not measured yet: modest batches until the first full one tells the rate
            return min(self.max_batch_items, 10 * self.batch_items)
        return max(self.batch_items, min(self.max_batch_items, int(self.rate * self.BATCH_WORK_S)))

    def _measured(self, n: int, seconds: float) -> None:
        """Update the write rate from a batch (only full ones: a lone item's commit says little about
        throughput), the queue bound derived from it, and wake producers waiting for room."""
        if n >= self.batch_items and seconds > 0:
            sample = n / seconds
            self.rate = sample if self.rate is None else self.rate + self.RATE_ALPHA * (sample - self.rate)
            if self.max_backlog_s is not None:
                self.limit = max(1, min(self.max_queue, int(self.rate * self.max_backlog_s)))
        if self._waiting:
            with self._room:
                self._room.notify_all()

    @staticmethod
    def _take(item: Any, batch: list, markers: list) -> bool:
        if item is _STOP:
            return True
        if isinstance(item, _Flush):
            markers.append(item)
        else:
            batch.append(item)
        return False

    def _drain_after_stop(self) -> None:
        """Release flushers that queued after the stop marker (their items were dropped as closed)."""
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Flush):
                item.done.set()

    def _at_exit(self) -> None:
        try:
            self.close(timeout=EXIT_DRAIN_S)
        except Exception:
            log.exception("%s: flush at exit failed", self.name)


class Writer:
    """The store's background writer (one thread). Thread-safe; `submit`/`put` wait at most `block_s`, and only
    when the writer is `max_backlog_s` behind (see the module docstring for the policy)."""

    OUTAGE_RETRY_S = 30.0  # how long a batch is held while PostgreSQL is unreachable (a restart takes seconds)

    def __init__(self, engine: Engine, *, batch_rows: int = 100, max_delay_s: float = 0.2,
                 max_queue: int = 200_000, name: str = "flywheel-store-writer", max_backlog_s: float = 0.3,
                 block_s: float = 1.0, clock: Callable[[], float] = time.perf_counter):
        self.engine = engine
        self._handlers: dict[str, Handler] = {}
        self._tables: dict[str, Table] = {}
        self.errors = 0  # items that could not be written (logged)
        self._outage_since: float | None = None  # monotonic start of the store outage being waited out
        self._outage_dropping = False
        self.drops: dict[str, int] = {}  # kind → items dropped (queue full or closed), since start
        self._unrecorded: dict[tuple[str, str], int] = {}  # (kind, reason) → drops not yet in `writer_drops`
        self._drops_lock = threading.Lock()
        self._worker = BatchWorker(self._write, name=name, batch_items=batch_rows, max_delay_s=max_delay_s,
                                   max_queue=max_queue, max_backlog_s=max_backlog_s, block_s=block_s, clock=clock)

    # ------------------------------------------------------------------ API
    def register(self, kind: str, handler: Handler) -> None:
        """`handler(connection, payloads)` writes a group of payloads put under `kind`, inside the batch
        transaction. It runs on the writer thread; conversion work belongs there, not in the caller."""
        self._handlers[kind] = handler

    def put(self, kind: str, payload: Any) -> bool:
        if self._worker.put((kind, payload)):
            return True
        self.count_dropped(kind, 1, "closed" if self._worker.closed else "queue_full")
        return False

    def submit(self, table: str | Table, row: dict[str, Any]) -> bool:
        """Queue one row for insertion into `table` (a name in the store's metadata, or a Table)."""
        if isinstance(table, Table):
            self._tables.setdefault(table.name, table)
            name = table.name
        else:
            name = table
        return self.put("table:" + name, row)

    def count_dropped(self, kind: str, n: int, reason: str) -> None:
        """Count `n` items of `kind` lost before they reached the writer; recorded in `writer_drops` with the
        next batch (producers elsewhere, e.g. the tracer's early buffer, report theirs here too)."""
        if n <= 0:
            return
        with self._drops_lock:
            self.drops[kind] = self.drops.get(kind, 0) + n
            self._unrecorded[(kind, reason)] = self._unrecorded.get((kind, reason), 0) + n
        if reason != "queue_full" and not self._worker.closed:
            self._worker.put((_DROPS, None))  # make sure a batch comes to record it

    def flush(self, timeout: float | None = 30.0) -> bool:
        return self._worker.flush(timeout)

    def close(self, timeout: float | None = 30.0) -> bool:
        if self._unrecorded and not self._worker.closed:
            self._worker.put((_DROPS, None))
        return self._worker.close(timeout)

    @property
    def closed(self) -> bool:
        return self._worker.closed

    @property
    def dropped(self) -> int:
        return self._worker.dropped

    @property
    def rate(self) -> float | None:
        """Items per second the writer has been measured to write (None before its first full batch)."""
        return self._worker.rate

    @property
    def queue_limit(self) -> int:
        """The queue's current bound: `max_backlog_s` of work at the measured rate."""
        return self._worker.limit

    def pending(self) -> int:
        return self._worker.pending()

    def _record_drops(self) -> None:
        with self._drops_lock:
            pending, self._unrecorded = self._unrecorded, {}
        if not pending:
            return
        from flywheel.store.schema import writer_drops

        now = time.time()
        rows = [{"at": now, "kind": kind[:100], "reason": reason, "count": n} for (kind, reason), n in pending.items()]
        try:
            with self.engine.begin() as conn:
                conn.execute(writer_drops.insert(), rows)
        except Exception:
            log.exception("store writer: could not record %d dropped items", sum(pending.values()))
            with self._drops_lock:  # kept for the next batch: counts are not lost with the connection
                for key, n in pending.items():
                    self._unrecorded[key] = self._unrecorded.get(key, 0) + n

    # ------------------------------------------------------------------ writer thread
    def _write(self, batch: list[tuple[str, Any]]) -> None:
        if self._unrecorded:
            self._record_drops()
        groups: dict[str, list[Any]] = {}
        for kind, payload in batch:
            if kind != _DROPS:
                groups.setdefault(kind, []).append(payload)
        if not groups:
            return
        try:
            with self.engine.begin() as conn:
                after = [self._apply(conn, kind, payloads) for kind, payloads in groups.items()]
            self._committed(after)
            self._outage_since, self._outage_dropping = None, False
            return
        except Exception as exc:  # noqa: BLE001 - retried item by item below
            if self._outlast_outage(groups, exc):
                return
            log.warning("store writer: batch of %d failed (%s); retrying item by item", len(batch), exc)
        # Isolate the bad items: each one in its own transaction, so one bad row costs one row.
        for kind, payloads in groups.items():
            for p in payloads:
                try:
                    with self.engine.begin() as conn:
                        after = [self._apply(conn, kind, [p])]
                    self._committed(after)
                except Exception:
                    self.errors += 1
                    log.exception("store writer: dropped one %s item", kind)

    def _outlast_outage(self, groups: dict[str, list[Any]], exc: Exception) -> bool:
        """PostgreSQL lost (stopped, restarting): hold the batch and retry it whole, with backoff, for up to
        OUTAGE_RETRY_S, instead of dropping every item with a traceback each. True when handled: written once
        the store is back, or dropped and counted in `writer_drops` (reason `store_unavailable`) when it is not.
        False for any other error (isolated item by item as before); SQLite keeps that behaviour."""
        from flywheel.store.outage import store_outage

        why = store_outage(exc)
        if why is None or self.engine.dialect.name != "postgresql":
            return False
        n = sum(len(p) for p in groups.values())
        if self._outage_since is None:  # one window per outage: later batches do not each wait it out again
            self._outage_since = time.monotonic()
            log.warning("store writer: the store is unavailable (%s); holding %d items, retrying for up to %.0f s",
                        why, n, self.OUTAGE_RETRY_S)
        delay, deadline = 0.25, self._outage_since + self.OUTAGE_RETRY_S
        while (left := deadline - time.monotonic()) > 0:
            pause_until = time.monotonic() + min(delay, left)
            while not self._worker.closed and time.monotonic() < pause_until:
                time.sleep(0.05)
            if self._worker.closed:  # closing (Ctrl-C, exit): do not hold the shutdown for the store
                break
            delay = min(delay * 2, 4.0)
            try:
                with self.engine.begin() as conn:
                    after = [self._apply(conn, kind, payloads) for kind, payloads in groups.items()]
            except Exception as again:  # noqa: BLE001 - still down, or another error
                if store_outage(again) is None:
                    return False
                continue
            self._committed(after)
            self._outage_since, self._outage_dropping = None, False
            log.warning("store writer: the store is back; wrote the %d held items", n)
            return True
        for kind, payloads in groups.items():
            self.count_dropped(kind, len(payloads), "store_unavailable")
        if not self._outage_dropping:  # once per outage; the counts go to writer_drops
            self._outage_dropping = True
            log.error("store writer: the store is still unavailable (%s)%s; dropping what cannot be written until "
                      "it is back (counted in writer_drops)", why, " at close" if self._worker.closed else "")
        return True

    def _apply(self, conn: Connection, kind: str, payloads: list[Any]) -> Callable[[], None] | None:
        if kind.startswith("table:"):
            conn.execute(self._table(kind[6:]).insert(), payloads)
            return None
        handler = self._handlers.get(kind)
        if handler is None:
            raise LookupError(f"no writer handler registered for {kind!r}")
        return handler(conn, payloads)

    @staticmethod
    def _committed(callbacks: list[Callable[[], None] | None]) -> None:
        for cb in callbacks:
            if cb is not None:
                try:
                    cb()
                except Exception:
                    log.exception("store writer: after-commit callback failed")

    def _table(self, name: str) -> Table:
        table = self._tables.get(name)
        if table is None:
            from flywheel.store.schema import metadata

            table = metadata.tables.get(name)
            if table is None:
                raise LookupError(f"unknown table {name!r}; known: {sorted(metadata.tables)}")
            self._tables[name] = table
        return table

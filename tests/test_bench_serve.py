"""`flywheel bench serve`: the JSON it prints, and how it finds the LiteLLM proxy command."""

from __future__ import annotations

import json
import sys

from click.testing import CliRunner

from flywheel.bench.serve import litellm_bin
from flywheel.cli import main


def test_bench_serve_json_without_litellm():
    result = CliRunner().invoke(main, ["bench", "serve", "--requests", "20", "--concurrency", "2", "--no-litellm",
                                       "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert {"workers", "overhead_p50_ms", "overhead_p99_ms", "rps", "failed", "litellm_overhead_p50_ms",
            "litellm_rps"} <= set(out)
    assert out["failed"] == 0 and out["workers"] == 1 and out["rps"] > 0
    assert out["overhead_p50_ms"] is not None and out["litellm_rps"] is None
    assert out["litellm"] == "skipped: --no-litellm"


def test_litellm_command_is_found_by_env_then_path_then_a_venv_beside(tmp_path, monkeypatch):
    fake = tmp_path / "litellm-here"
    fake.write_text("#!/bin/sh\n", encoding="utf-8")
    monkeypatch.setenv("FLYWHEEL_LITELLM_BIN", str(fake))
    assert litellm_bin() == str(fake)
    monkeypatch.setenv("FLYWHEEL_LITELLM_BIN", str(tmp_path / "missing"))
    assert litellm_bin() is None  # named but absent: not silently another one
    monkeypatch.delenv("FLYWHEEL_LITELLM_BIN")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "nowhere" / ".venv"))
    assert litellm_bin() is None
    venv_bin = tmp_path / ".venv-litellm" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "litellm").write_text("#!/bin/sh\n", encoding="utf-8")
    assert litellm_bin() == str(venv_bin / "litellm")

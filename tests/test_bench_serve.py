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


def test_a_litellm_proxy_that_cannot_start_is_reported_and_flywheel_still_measured(tmp_path, monkeypatch):
    # `pip install litellm` without the [proxy] extra: the command exists but exits at start-up
    broken = tmp_path / "litellm"
    broken.write_text("#!/bin/sh\necho \"ImportError: backoff is not installed\" >&2\nexit 1\n", encoding="utf-8")
    broken.chmod(0o755)
    monkeypatch.setenv("FLYWHEEL_LITELLM_BIN", str(broken))
    result = CliRunner().invoke(main, ["bench", "serve", "--requests", "10", "--concurrency", "2", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["rps"] > 0 and out["failed"] == 0 and out["litellm_rps"] is None
    assert out["litellm"].startswith("failed: ") and "backoff is not installed" in out["litellm"]


def test_sigterm_mid_run_stops_the_servers_the_bench_started(tmp_path):
    import os
    import signal
    import subprocess
    import time
    from pathlib import Path

    import pytest

    bench = subprocess.Popen([sys.executable, "-m", "flywheel", "bench", "serve", "--requests", "1000000",
                              "--no-litellm", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, "TMPDIR": str(tmp_path)})
    children_file = Path(f"/proc/{bench.pid}/task/{bench.pid}/children")
    if not children_file.exists():
        bench.kill()
        pytest.skip("needs Linux /proc")
    children: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(tmp_path.glob("fw-bench-serve-*/flywheel.yaml")):
        time.sleep(0.2)
    while time.monotonic() < deadline and len(children) < 2:  # fake-llm and flywheel serve are up
        children = [int(c) for c in children_file.read_text().split()]
        time.sleep(0.2)
    assert len(children) >= 2
    bench.send_signal(signal.SIGTERM)
    bench.communicate(timeout=60)
    try:
        for child in children:
            for _ in range(300):  # the bench waits for its servers, so they are gone when it has exited
                if not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text():
                    break
                time.sleep(0.1)
            else:
                raise AssertionError(f"server {child} still runs after the bench was stopped")
        assert not list(tmp_path.glob("fw-bench-serve-*"))
    finally:
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass

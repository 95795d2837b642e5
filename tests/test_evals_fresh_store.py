"""A run against a store that does not exist yet: created on a background thread while the cases run.

(`RunStore.open`, what `flywheel eval` uses: a fresh checkout or CI job should not wait for the store to be
created and migrated before its first model call, and must still end with every result stored.)
"""
# ruff: noqa: F811 - pytest fixtures imported from test_evals_support are redefined as parameters

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_evals_support import llm, write_project, write_suite  # noqa: F401 - fixtures

from flywheel.apps.runtime import Runtime
from flywheel.cli import main
from flywheel.evals.records import RunStore
from flywheel.evals.runner import RunOptions, arun_suite, run_suite
from flywheel.evals.suite import load_suite


def suite_text(n: int) -> str:
    cases = "\n".join(
        f"  - id: c{i}\n    vars: {{question: 'capital {i}?'}}\n"
        "    checks: [{contains: Paris}, {max_words: 20}, {not-contains: London}]"
        for i in range(n)
    )
    return f"name: capitals\ntarget: model:small\nprompt: 'Q: {{{{question}}}}'\ncases:\n{cases}\n"


def test_first_run_creates_the_store_meanwhile_and_stores_everything(tmp_path: Path, llm) -> None:
    llm.add(r"capital", "Paris.")
    project = write_project(tmp_path, llm)
    write_suite(tmp_path / "evals" / "s.yaml", suite_text(20))
    with Runtime(project, tracing=False) as rt:
        assert RunStore.open(rt).fresh  # no database file yet
    assert not (tmp_path / ".flywheel" / "flywheel.db").exists()  # ... and merely asking created none

    result = CliRunner().invoke(main, ["--project", str(tmp_path), "eval", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["suites"][0]
    with Runtime(project, tracing=False) as rt:
        runs = RunStore.open(rt)
        assert not runs.fresh
        row = runs.get(summary["run_id"])
        assert row["status"] == "finished" and row["pass_rate"] == 1.0
        assert sorted(r.case_id for r in runs.load_results(row["id"])) == sorted(f"c{i}" for i in range(20))


def test_cases_finished_before_an_interrupt_are_kept_while_the_store_was_opening(tmp_path: Path, llm) -> None:
    llm.latency = 0.05
    llm.add(r"capital", "Paris.")
    project = write_project(tmp_path, llm)
    suite = load_suite(write_suite(tmp_path / "evals" / "s.yaml", suite_text(12)), project)
    opts = RunOptions(concurrency=2, progress=False)

    async def interrupted(rt: Runtime) -> None:
        task = asyncio.create_task(arun_suite(suite, rt, store=RunStore.open(rt), options=opts))
        while len(llm.requests) < 5:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with Runtime(project, tracing=False) as rt:
        asyncio.run(interrupted(rt))
    sent = len(llm.requests)
    with Runtime(project, tracing=False) as rt:
        summary = run_suite(suite, rt, store=RunStore.open(rt), options=opts)
    assert 3 <= summary.resumed < 12 and summary.executions == 12 and summary.passed == 12
    assert len(llm.requests) - sent == 12 - summary.resumed  # finished cases did not run again


def test_a_store_that_cannot_be_created_is_reported_before_any_case_runs(tmp_path: Path, llm) -> None:
    llm.latency = 0.02
    llm.add(r"capital", "Paris.")
    write_project(tmp_path, llm, store="sqlite:////proc/flywheel-nowhere/flywheel.db")
    write_suite(tmp_path / "evals" / "s.yaml", suite_text(400))
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "eval", "--no-progress"])
    assert result.exit_code == 2
    assert "cannot create the folder /proc/flywheel-nowhere" in result.stderr
    assert "Traceback" not in result.output
    assert not llm.requests  # reported before any model call

"""Eval results that mean what they say: no response cache unless asked, runs never left half-written, no secret
in a stored row or a report, everything read from the Answer."""
# ruff: noqa: F811 - pytest fixtures imported from test_evals_support are redefined as parameters

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_evals_support import llm, project, runtime, write_project, write_suite  # noqa: F401 - fixtures

from flywheel.cli import main
from flywheel.config import Project
from flywheel.errors import UserError
from flywheel.evals.records import RunStore
from flywheel.evals.runner import RunOptions, run_suite
from flywheel.evals.suite import load_suite
from flywheel.types import Answer

QUIET = RunOptions(concurrency=2, progress=False)
SECRET = "sk-proj-Q7f3kLm9Xv2Bn8Rt5Wy1Zp4Hc6Jd0Ks"


def run(root: Path, *args: str) -> object:
    return CliRunner().invoke(main, ["--project", str(root), *args], catch_exceptions=False)


def chat_project(root: Path, llm) -> Project:
    """The fake-LLM project plus a chat app `support` on alias `small`, with the exact response cache on."""
    write_project(root, llm)
    with (root / "flywheel.yaml").open("a", encoding="utf-8") as fh:
        fh.write("cache: {exact: true}\napps:\n  support: {kind: chat, model: small}\n")
    return Project.load(root)


FLAKY_SUITE = """\
name: flaky
target: app:support
cases:
  - id: capital
    vars: {question: "Capital of France?"}
    checks: [{contains: Paris}, {max_words: 10}, {cost: 0.01}]
"""


def test_repeat_finds_a_flaky_app_even_with_the_cache_configured(tmp_path: Path, llm) -> None:
    chat_project(tmp_path, llm)
    answers = iter(["Paris.", "Lyon.", "Paris.", "Lyon.", "Paris.", "Lyon."])
    llm.add(r"France", lambda body: next(answers))
    write_suite(tmp_path / "evals" / "flaky.yaml", FLAKY_SUITE)
    result = run(tmp_path, "eval", "evals/flaky.yaml", "--repeat", "3", "--json", "--results")
    summary = json.loads(result.stdout)["suites"][0]
    assert summary["flaky"] == ["capital"] and summary["by_case"][0]["passes"] == 2
    assert len(llm.requests) == 3  # every repeat really ran: the cache was bypassed
    errors = [c for r in summary["results"] for c in r["checks"] if c["error"]]
    assert errors == []  # the cost check had a cost on every repeat
    # --cache opts in: the second and third repeats come from the cache (the model is not called again)
    before = len(llm.requests)
    cached = run(
        tmp_path,
        "eval",
        "evals/flaky.yaml",
        "--repeat",
        "3",
        "--json",
        "--cache",
        "--fresh",
        "--concurrency",
        "1",
    )
    assert cached.exit_code in (0, 1) and len(llm.requests) - before == 1


def test_a_prompt_variable_missing_from_a_case_is_reported_at_the_case_before_any_run(
    tmp_path: Path, llm, project
) -> None:
    suite = write_suite(
        tmp_path / "evals" / "vars.yaml",
        """\
        name: vars
        target: model:small
        prompt: "Q: {{question}} in {{country}}"
        cases:
          - id: ok
            vars: {question: "Capital?", country: France}
            checks: [{contains: Paris}, {max_words: 5}, {not-contains: x}]
          - id: missing
            vars: {question: "Capital?"}
            checks: [{contains: Paris}, {max_words: 5}, {not-contains: x}]
        """,
    )
    result = run(tmp_path, "eval", str(suite), "--no-progress")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{suite}:9" in result.stderr and "country" in result.stderr and f"{suite}:3" in result.stderr
    assert llm.requests == []
    listed = json.loads(run(tmp_path, "eval", "--list", "--json").stdout)
    assert [r for r in listed if r["status"] == "running"] == []


class NoInputApp:
    def run(self, question: str, tenant: str | None = None, **_: object) -> Answer:
        return Answer(text="Paris.", cost_usd=0.0)


def test_a_run_that_errors_is_marked_failed_with_the_reason_and_resumes(
    tmp_path: Path, llm, project, runtime
) -> None:
    runtime.app = lambda name, cache=False: NoInputApp()
    text = """\
    target: app:docs_qa
    cases:
      - id: a
        vars: {question: "Capital?"}
        checks: [{contains: Paris}, {max_words: 5}, {not-contains: x}]
      - id: b
        vars: {question: "", other: 1, more: 2}
        checks: [{contains: Paris}, {max_words: 5}, {not-contains: x}]
    """
    suite = load_suite(write_suite(tmp_path / "evals" / "s.yaml", text), project)
    with pytest.raises(UserError, match="no input"):
        run_suite(suite, runtime, store=runtime.store, options=RunOptions(concurrency=1, progress=False))
    runs = RunStore(runtime.store)
    (row,) = runs.list()
    assert row["status"] == "failed" and "no input" in row["error"] and row["finished_at"] is not None
    # the same suite again resumes the failed run (its finished case is not run again) and fails the same way
    with pytest.raises(UserError):
        run_suite(suite, runtime, store=runtime.store, options=RunOptions(concurrency=1, progress=False))
    assert [r["id"] for r in runs.list()] == [row["id"]]


def test_secrets_never_reach_eval_rows_or_reports(tmp_path: Path, llm, project) -> None:
    (tmp_path / "leaky.py").write_text(
        f"def answer(question, api_key):\n    return 'Your key {SECRET} works; ' + question\n",
        encoding="utf-8",
    )
    write_suite(
        tmp_path / "evals" / "leak.yaml",
        f"""\
        target: leaky:answer
        cases:
          - id: leak
            vars: {{question: "is my key {SECRET} valid?", api_key: "{SECRET}"}}
            reference: "Never repeat {SECRET}."
            checks: [{{not-contains: works}}, {{max_words: 3}}, {{equals: "no"}}]
        """,
    )
    html = tmp_path / "report.html"
    result = run(tmp_path, "eval", "evals/leak.yaml", "--json", "--results", "--html", str(html))
    assert result.exit_code == 1
    data = json.loads(result.stdout)["suites"][0]["results"][0]
    assert "[REDACTED]" in data["output"] and data["checks"][0]["passed"] is False  # checks saw the real text
    outputs = [result.stdout, html.read_text(encoding="utf-8")]
    for f in (tmp_path / ".flywheel").glob("flywheel.db*"):
        outputs.append(f.read_bytes().decode("latin-1"))
    assert len(outputs) >= 3 and not [o for o in outputs if SECRET in o]

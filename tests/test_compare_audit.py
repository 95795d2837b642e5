# ruff: noqa: F811 - the shared fixtures imported from test_evals_support are redefined as parameters
"""`flywheel compare RUN_A RUN_B` as a user gets it wrong: runs of two suites (whose case ids coincide), a case
edited between the runs, and a judge alias that answers without a verdict."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from test_evals_support import CAPITALS_SUITE, llm, write_project, write_suite  # noqa: F401 - fixtures

from flywheel.cli import main


def run(root: Path, *args: str) -> object:
    return CliRunner().invoke(main, ["--project", str(root), *args], catch_exceptions=False)


def eval_run(root: Path, suite: Path) -> str:
    result = run(root, "eval", str(suite), "--json", "--no-progress")
    return json.loads(result.stdout)["suites"][0]["run_id"]


def test_runs_of_two_suites_are_refused_even_when_their_case_ids_match(tmp_path: Path, llm) -> None:
    write_project(tmp_path, llm)
    llm.add(r"France|Italy|Spain|Peru", "Some capital.", model="fake-small")
    llm.add(r"response_a", "Fine.\nVerdict: A", model="fake-judge")
    capitals = eval_run(tmp_path, write_suite(tmp_path / "evals" / "capitals.yaml", CAPITALS_SUITE % 0.5))
    other = CAPITALS_SUITE.replace("name: capitals", "name: other").replace("France", "Spain")
    other_id = eval_run(
        tmp_path, write_suite(tmp_path / "evals" / "other.yaml", (other % 0.5).replace("Italy", "Peru"))
    )
    judged_before = sum(r["model"] == "fake-judge" for r in llm.requests)
    result = run(tmp_path, "compare", capitals[:8], other_id[:8], "--judge", "judge")
    assert result.exit_code == 2, result.output
    assert "suite `capitals`" in result.output and "suite `other`" in result.output
    assert "Traceback" not in result.output
    assert sum(r["model"] == "fake-judge" for r in llm.requests) == judged_before  # nothing judged


def test_a_case_whose_question_changed_between_runs_is_not_paired(tmp_path: Path, llm) -> None:
    write_project(tmp_path, llm)
    llm.add(r"France|Italy|Spain", "Some capital.", model="fake-small")
    llm.add(r"response_a", "Fine.\nVerdict: tie", model="fake-judge")
    path = tmp_path / "evals" / "capitals.yaml"
    first = eval_run(tmp_path, write_suite(path, CAPITALS_SUITE % 0.5))
    second = eval_run(
        tmp_path, write_suite(path, (CAPITALS_SUITE % 0.5).replace("Capital of Italy?", "Spain?"))
    )
    result = run(tmp_path, "compare", first[:8], second[:8], "--judge", "judge", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [p["case_id"] for p in report["pairs"]] == ["france"]
    asked = [r["messages"][-1]["content"] for r in llm.requests if r["model"] == "fake-judge"]
    assert asked and not any("Spain" in text or "Italy" in text for text in asked)


def test_a_judge_that_gives_no_verdict_is_named_in_a_warning(tmp_path: Path, llm) -> None:
    write_project(tmp_path, llm)
    llm.add(r"France|Italy", "Some capital.", model="fake-small")
    llm.add(r".", "I would rather not say.", model="fake-judge")
    path = write_suite(tmp_path / "evals" / "capitals.yaml", CAPITALS_SUITE % 0.5)
    first, second = eval_run(tmp_path, path), eval_run(tmp_path, path)
    result = run(tmp_path, "compare", first[:8], second[:8], "--judge", "judge", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["errors"] == 2 and report["judged"] == 0
    warning = next(w for w in report["warnings"] if "no verdict" in w)
    assert "2 of 2 pair(s)" in warning and "I would rather not say." in warning and "`judge`" in warning
    text = run(tmp_path, "compare", first[:8], second[:8], "--judge", "judge")
    assert "got no verdict" in text.output

"""`flywheel eval` / `flywheel compare` end to end: exit codes, JSON, HTML report, matrix, regression."""
# ruff: noqa: F811 - pytest fixtures imported from test_evals_support are redefined as parameters

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_evals_support import CAPITALS_SUITE, llm, project, write_suite  # noqa: F401 - fixtures

from flywheel.apps.runtime import Runtime
from flywheel.cli import main
from flywheel.store import Store
from flywheel.tracing import attach_store, tracer
from flywheel.types import Answer

SUITE = CAPITALS_SUITE


def run(root: Path, *args: str) -> object:
    return CliRunner().invoke(main, ["--project", str(root), *args], catch_exceptions=False)


def test_exit_codes_follow_the_threshold(tmp_path: Path, llm, project) -> None:
    llm.add(r"France", "Paris.")
    llm.add(r"Italy", "Milan.")
    write_suite(tmp_path / "evals" / "ok.yaml", SUITE % 0.5)
    write_suite(tmp_path / "evals" / "strict.yaml", SUITE % 1.0)
    passing = run(tmp_path, "eval", "evals/ok.yaml", "--json", "--fresh")
    assert passing.exit_code == 0, passing.output
    data = json.loads(passing.stdout)
    assert data["ok"] is True and data["suites"][0]["pass_rate"] == 0.5
    failing = run(tmp_path, "eval", "evals/strict.yaml", "--no-progress")
    assert failing.exit_code == 1
    assert "FAIL" in failing.stdout and "italy" in failing.stdout and "contains" in failing.stdout
    both = run(tmp_path, "eval", "--json")  # every suite in evals/
    assert both.exit_code == 1 and [s["suite"] for s in json.loads(both.stdout)["suites"]] == ["capitals"] * 2


def test_user_errors_exit_2_with_file_and_line(tmp_path: Path, project) -> None:
    bad = write_suite(
        tmp_path / "evals" / "bad.yaml", "target: model:small\ncases:\n  - checks: [{contians: x}]\n"
    )
    result = run(tmp_path, "eval", str(bad))
    assert result.exit_code == 2
    assert (
        f"{bad}:3" in result.stderr and "unknown check" in result.stderr and "Traceback" not in result.output
    )
    assert run(tmp_path, "eval", "nope.yaml").exit_code == 2
    assert run(tmp_path, "eval", str(bad), "--models", "small,gpt9").exit_code == 2


def test_html_report_with_charts_cases_and_diff(tmp_path: Path, llm, project) -> None:
    llm.add(r"France", "Paris.")
    llm.add(r"Italy", "Rome.")
    write_suite(tmp_path / "evals" / "s.yaml", SUITE % 0.5)
    assert run(tmp_path, "eval", "--no-progress").exit_code == 0
    llm.reset()
    llm.add(r"France", "London, surely.")
    llm.add(r"Italy", "Rome.")
    report = tmp_path / "out" / "report.html"
    result = run(tmp_path, "eval", "--no-progress", "--html", str(report))
    assert result.exit_code == 0 and report.is_file()
    html = report.read_text(encoding="utf-8")
    assert (
        html.startswith("<!doctype html>")
        and "<script" not in html
        and "http" not in html.split("</style>")[1]
    )
    assert html.count("<svg") >= 3  # pass rate by check, latency, cost
    assert "Pass rate by check" in html and "Latency" in html and "Cost per case" in html
    assert "france" in html and "London, surely." in html and "not-contains" in html
    assert "Diff against run" in html and "pass → fail" in html


def test_model_matrix_marks_the_cheapest_model_meeting_the_threshold(tmp_path: Path, llm, project) -> None:
    llm.add(r"France", "London.", model="fake-small")
    llm.add(r"France", "Paris.", model="fake-strong")
    llm.add(r"Italy", "Rome.")
    write_suite(tmp_path / "evals" / "s.yaml", SUITE % 1.0)
    result = run(tmp_path, "eval", "--models", "small,strong", "--json")
    assert result.exit_code == 0, result.output
    matrix = json.loads(result.stdout)["suites"][0]["matrix"]
    rows = {r["model"]: r for r in matrix["models"]}
    assert rows["small"]["pass_rate"] == 0.5 and rows["strong"]["pass_rate"] == 1.0
    assert rows["strong"]["cost_usd"] > rows["small"]["cost_usd"] > 0
    assert matrix["cheapest_meeting_threshold"] == "strong"
    table = run(tmp_path, "eval", "--models", "small,strong")
    assert "cheapest model meeting the threshold: strong" in table.stdout


def test_compare_two_stored_runs(tmp_path: Path, llm, project) -> None:
    llm.add(r"France", "Paris.")
    llm.add(r"Italy", "Rome.")
    write_suite(tmp_path / "evals" / "s.yaml", SUITE % 0.5)
    first = json.loads(run(tmp_path, "eval", "--json").stdout)["suites"][0]["run_id"]
    llm.reset()
    llm.add(r"<response_a>\nParis", "A names the right city.\nVerdict: A", model="fake-judge")
    llm.add(r"<response_b>\nParis", "B names the right city.\nVerdict: B", model="fake-judge")
    llm.add(r"Verdict", "Same.\nVerdict: tie", model="fake-judge")
    llm.add(r"France", "Lyon.")
    llm.add(r"Italy", "Rome.")
    second = json.loads(run(tmp_path, "eval", "--json").stdout)["suites"][0]["run_id"]
    assert first != second
    result = run(tmp_path, "compare", first[:8], second[:8], "--judge", "judge", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["wins"], report["ties"], report["losses"]) == (1, 1, 0)
    assert report["position_consistency"] == 1.0
    text = run(
        tmp_path, "compare", first[:8], second[:8], "--judge", "judge", "--html", str(tmp_path / "p.html")
    )
    assert "win rate" in text.stdout and (tmp_path / "p.html").read_text().count("france") >= 1
    assert run(tmp_path, "compare", first[:8], "--judge", "judge").exit_code == 2
    assert run(tmp_path, "compare", first[:8], second[:8], "--judge", "nope").exit_code == 2


class NewApp:
    async def arun(self, question: str, tenant: str | None = None, **_: object) -> Answer:
        return Answer(text=f"New answer to {question}: Paris [1].")


def test_compare_against_stored_traces(tmp_path: Path, llm, project, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.open(project.store_url)
    detach = attach_store(store)  # the project itself has tracing off; these stand for served traffic
    try:
        for i in range(4):
            with tracer.span(
                "docs_qa",
                kind="app",
                inputs={"question": f"Question {i}?"},
                **{"flywheel.app": "docs_qa", "flywheel.tenant": "acme"},
            ) as sp:
                sp.set(outputs={"text": f"Old answer {i}.", "citations": []})
        tracer.flush()
    finally:
        detach()
        store.close()
    monkeypatch.setattr(Runtime, "app", lambda self, name="docs_qa", cache=True: NewApp())
    llm.add(r"<response_a>\nNew answer", "A cites a source.\nVerdict: A", model="fake-judge")
    llm.add(r"<response_b>\nNew answer", "B cites a source.\nVerdict: B", model="fake-judge")
    result = run(tmp_path, "compare", "--against-traces", "3", "--judge", "judge", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["traces_sampled"] == 3 and report["wins"] == 3 and report["a"] == "current"
    questions = [m["content"] for r in llm.requests for m in r["messages"] if "<question>" in m["content"]]
    assert all("Question" in q for q in questions) and len(questions) == 6
    unknown = run(tmp_path, "compare", "--against-traces", "3", "--judge", "judge", "--app", "other")
    assert unknown.exit_code == 2 and "--app 'other': no such app" in unknown.stderr
    with (tmp_path / "flywheel.yaml").open("a", encoding="utf-8") as f:
        f.write("apps:\n  helper: {kind: chat, model: small}\n")
    empty = run(tmp_path, "compare", "--against-traces", "3", "--judge", "judge", "--app", "helper")
    assert empty.exit_code == 2 and "no stored traces" in empty.stderr

"""Comparisons stored and shown: regression on any app kind (traced replays with the stored context),
`compare --show`, statistics that do not overstate, and word-level diffs in the HTML report."""
# ruff: noqa: F811 - pytest fixtures imported from test_evals_support are redefined as parameters

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner
from test_evals_support import CAPITALS_SUITE, llm, write_project, write_suite  # noqa: F401 - fixtures

from flywheel.apps.runtime import Runtime
from flywheel.cli import main
from flywheel.config import Project
from flywheel.evals.pairwise import summarize_pairs
from flywheel.evals.stats import sign_test_p, wilson
from flywheel.evals.textdiff import diff_html
from flywheel.store import Store
from flywheel.tracing.query import get_trace, list_traces


def run(root: Path, *args: str) -> object:
    return CliRunner().invoke(main, ["--project", str(root), *args], catch_exceptions=False)


def traced_chat_project(root: Path, llm) -> Project:
    write_project(root, llm)
    cfg = root / "flywheel.yaml"
    text = cfg.read_text(encoding="utf-8").replace("tracing: {enabled: false}", "tracing: {enabled: true}")
    cfg.write_text(text + "apps:\n  support: {kind: chat, model: small}\n", encoding="utf-8")
    return Project.load(root)


def test_against_traces_replays_a_chat_app_with_its_tenant_traced_and_stored(tmp_path: Path, llm) -> None:
    project = traced_chat_project(tmp_path, llm)
    llm.add(r"Question", "Old answer.", model="fake-small")
    with Runtime(project) as rt:  # served production traffic, traced
        app = rt.app("support")
        served = [app.run(f"Question {i}?", "acme").trace_id for i in range(3)]
    llm.reset()
    llm.add(r"<response_a>\nNew", "A is newer.\nVerdict: A", model="fake-judge")
    llm.add(r"<response_b>\nNew", "B is newer.\nVerdict: B", model="fake-judge")
    llm.add(r"Question", "New answer.", model="fake-small")
    result = run(
        tmp_path, "compare", "--against-traces", "3", "--app", "support", "--judge", "judge", "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["wins"] == 3 and report["app"] == "support"
    asked = sorted(r["messages"][-1]["content"] for r in llm.requests if r["model"] == "fake-small")
    assert asked == ["Question 0?", "Question 1?", "Question 2?"]
    pairs = report["pairs"]
    assert {p["trace_id"] for p in pairs} == set(served) and {p["tenant"] for p in pairs} == {"acme"}
    assert all(p["answer_a"] == "New answer." and p["answer_b"] == "Old answer." for p in pairs)
    store = Store.open(project.store_url)
    try:
        for p in pairs:  # each replay is its own trace, linked to the one it replays
            replay = get_trace(store, p["replay_trace_id"])
            root = replay["spans"][0]
            assert root["kind"] == "eval" and root["attributes"]["flywheel.replay_of"] == p["trace_id"]
            assert [c["name"] for c in root["children"]] == ["support"]
        app_traces = [t for t in list_traces(store, last=50, app="support") if t["kind"] == "app"]
        assert sorted(t["trace_id"] for t in app_traces) == sorted(served)  # replays are not "production"
    finally:
        store.close()
    shown = run(tmp_path, "compare", "--show", report["comparison_id"][:8], "--json")
    assert shown.exit_code == 0, shown.output
    stored = json.loads(shown.stdout)
    assert stored["kind"] == "regression" and stored["wins"] == 3 and len(stored["pairs"]) == 3
    first = stored["pairs"][0]
    assert first["question"].startswith("Question") and first["answer_a"] == "New answer."
    assert first["verdicts"] == ["A", "B"] and first["reasons"] == ["A is newer.", "B is newer."]
    text = run(tmp_path, "compare", "--show", "latest")
    assert text.exit_code == 0 and "win rate" in text.stdout
    assert run(tmp_path, "compare", "--show", "ffffffff").exit_code == 2


def test_pairwise_comparison_of_runs_is_stored_with_an_html_diff(tmp_path: Path, llm) -> None:
    write_project(tmp_path, llm)
    suite = CAPITALS_SUITE.replace(
        'vars: {question: "Capital of France?"}',
        'vars: {question: "Capital of France?"}\n    reference: "The capital of France is Paris."',
    )
    write_suite(tmp_path / "evals" / "s.yaml", suite % 0.5)
    llm.add(r"France", "The capital of France is Paris.")
    llm.add(r"Italy", "Rome.")
    first = json.loads(run(tmp_path, "eval", "--json").stdout)["suites"][0]
    assert first["pass_rate_ci95"] == list(wilson(1.0, 2))  # Wilson over cases, never zero width
    llm.reset()
    llm.add(r"Verdict", "Both fine.\nVerdict: tie", model="fake-judge")
    llm.add(r"France", "The capital city of France is Paris.")
    llm.add(r"Italy", "Rome.")
    report_path = tmp_path / "run.html"
    second = run(tmp_path, "eval", "--json", "--html", str(report_path))
    html = report_path.read_text(encoding="utf-8")
    assert "The capital of France is Paris." in html  # the reference
    assert re.search(r"<ins>\s?city\s?</ins>", html) and "Wilson" in html
    second_id = json.loads(second.stdout)["suites"][0]["run_id"]
    pair_html = tmp_path / "pairs.html"
    result = run(
        tmp_path,
        "compare",
        first["run_id"][:8],
        second_id[:8],
        "--judge",
        "judge",
        "--json",
        "--html",
        str(pair_html),
    )
    report = json.loads(result.stdout)
    assert report["ties"] == 2 and report["win_rate"] == 0.5
    assert report["win_rate_bootstrap95"] is None  # all ties: a bootstrap would claim zero width
    lo, hi = report["win_rate_ci95"]
    assert lo < 0.5 < hi and report["sign_test_p"] == 1.0
    assert any("only 2 judged pair" in w for w in report["warnings"])
    html = pair_html.read_text(encoding="utf-8")
    assert re.search(r"<ins>\s?city\s?</ins>", html) and "Capital of France?" in html and "Both fine." in html
    stored = json.loads(run(tmp_path, "compare", "--show", report["comparison_id"], "--json").stdout)
    assert stored["kind"] == "pairwise" and stored["run_a"] == first["run_id"]
    assert {p["case_id"] for p in stored["pairs"]} == {"france", "italy"}
    by_case = {p["case_id"]: p for p in stored["pairs"]}  # pairs are judged concurrently: any order
    assert by_case["france"]["reference"] == "The capital of France is Paris."
    # the terminal report ends with the command that shows it again; copied as printed, it runs
    text = run(tmp_path, "compare", first["run_id"][:8], second_id[:8], "--judge", "judge").stdout
    printed = re.search(r"\(flywheel (compare --show \S+)\)", text)
    assert printed, text
    again = run(tmp_path, *printed.group(1).split())
    assert again.exit_code == 0 and "win rate" in again.stdout, again.output


def test_statistics() -> None:
    assert wilson(0.5, 10) == (0.2366, 0.7634)
    assert wilson(1.0, 5)[1] == 1.0 and wilson(1.0, 5)[0] < 0.6
    assert sign_test_p(9, 2) == 0.06543 and sign_test_p(0, 0) == 1.0 and sign_test_p(3, 3) == 1.0
    pair = {
        "outcome": "tie",
        "len_a": 3,
        "len_b": 3,
        "verdicts": ["tie", "tie"],
        "consistent": True,
        "flagged": False,
        "judge_cost_usd": 0.0,
    }
    many = summarize_pairs(
        [pair] * 40, a="a", b="b", judge="j", judge_model="m", max_length_diff=None, length_action="flag"
    )
    lo, hi = many["win_rate_ci95"]
    assert hi - lo > 0.1 and not any("judged pair" in w for w in many["warnings"])


def test_diff_is_word_level_and_by_character_for_chinese() -> None:
    assert (
        diff_html("Set the version key.", "Set the model key.")
        == "Set the <del>version</del><ins>model</ins> key."
    )
    assert diff_html("我喜欢苹果", "我喜欢香蕉") == "我喜欢<del>苹果</del><ins>香蕉</ins>"
    assert diff_html("<b>", "<i>") == "&lt;<del>b</del><ins>i</ins>&gt;"


def test_the_evals_tables_match_their_migrations(tmp_path: Path) -> None:
    from flywheel.store.db import schema_diff

    store = Store.open(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        tables = ["eval_runs", "eval_results", "eval_comparisons", "eval_comparison_pairs"]
        assert schema_diff(store, tables) == []
    finally:
        store.close()

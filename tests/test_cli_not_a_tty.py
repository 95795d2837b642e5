"""Output piped into a file, a CI log or `less` (not a terminal: CliRunner, capsys) is never cut with "…" nor
wrapped at 80 columns, even with a narrow COLUMNS exported; `flywheel skew` prints readable values, not dicts."""
# ruff: noqa: F811 - pytest fixtures imported from test_evals_support are redefined as parameters

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_evals_support import CAPITALS_SUITE, llm, write_project, write_suite  # noqa: F401 - fixtures

from flywheel.cli import main

LONG = "small-model-with-a-rather-long-alias-name-v2"


def run(root: Path, *args: str, columns: str | None = None):
    """Not a terminal, and COLUMNS unset unless given (a developer's shell may export it)."""
    return CliRunner().invoke(main, ["--project", str(root), *args], env={"COLUMNS": columns, "LINES": None})


@pytest.fixture
def evals_project(tmp_path: Path, llm) -> Path:
    write_project(tmp_path, llm)
    config = tmp_path / "flywheel.yaml"
    text = config.read_text(encoding="utf-8")
    alias = (f'  {LONG}: {{provider: openai_compat, base_url: "{llm.base_url}", model: fake-small, max_retries: 0, '
             "price: {input: 1.0, output: 2.0}}\n")
    config.write_text(text.replace("models:\n", "models:\n" + alias, 1), encoding="utf-8")
    llm.add(r"France", "London.", model="fake-small")
    llm.add(r"France", "Paris.", model="fake-strong")
    llm.add(r"Italy", "Rome.")
    write_suite(tmp_path / "evals" / "capitals.yaml", CAPITALS_SUITE % 0.9)
    return tmp_path


def _line_with(text: str, needle: str) -> str:
    return next(line for line in text.splitlines() if needle in line)


@pytest.mark.parametrize("columns", [None, "200"])  # a file or pipe; `watch` and some shells set COLUMNS
def test_model_matrix_piped_keeps_every_header_and_value_whole(evals_project: Path, columns) -> None:
    doc = json.loads(run(evals_project, "eval", "--no-progress", "--models", f"{LONG},strong", "--json").stdout)
    rows = {r["model"]: r for r in doc["suites"][0]["matrix"]["models"]}
    res = run(evals_project, "eval", "--no-progress", "--models", f"{LONG},strong", columns=columns)
    assert res.exit_code == 0, res.output
    assert "…" not in res.stdout
    header = _line_with(res.stdout, "pass rate")
    for col in ("model", "pass rate", "passed", "cost", "cost/case", "p50", "p95", "errors"):
        assert col in header
    row = _line_with(res.stdout, LONG)  # the alias, its pass rate and its cost on one unbroken line
    assert f"{100 * rows[LONG]['pass_rate']:.1f}%" in row and f"{rows[LONG]['passed']}/2" in row
    assert f"${rows[LONG]['cost_usd']:.6f}" in row


def test_run_headline_and_failure_reasons_are_not_wrapped(evals_project: Path) -> None:
    res = run(evals_project, "eval", "--no-progress")
    assert res.exit_code == 1, res.output  # 1 of 2 passes, threshold 90%
    headline = _line_with(res.stdout, "run ")
    assert "passed = 50.0% (95% interval" in headline and headline.endswith("threshold 90.0%)")
    assert "did not find 'Paris'; not-contains: negated: found 'London'" in _line_with(res.stdout, "france")


def test_strategies_table_piped_is_whole(evals_project: Path) -> None:
    res = run(evals_project, "eval", "--no-progress", "--strategies", "none,self_consistency:3")
    assert res.exit_code == 1, res.output
    assert "…" not in res.stdout
    header = _line_with(res.stdout, "strategy")
    for col in ("pass rate", "95% CI", "passed", "cost", "p50", "p95", "errors"):
        assert col in header
    assert "%–" in _line_with(res.stdout, "self_consistency:3")  # the interval, both ends


def test_judge_calibrate_heading_is_one_line(capsys, monkeypatch) -> None:
    from flywheel.cli.judge import _render

    monkeypatch.delenv("COLUMNS", raising=False)
    side = {"kappa": 0.5, "tpr": 1.0, "tnr": 0.25, "confusion": {"tp": 4, "fn": 0, "fp": 3, "tn": 1}, "errors": 0}
    check = "evals/customer-support-refunds.yaml#promise-of-a-refund-within-thirty-days"
    report = {"check": check, "judge_model": "judge-model-2026-01", "n": 24, "n_train": 12, "n_heldout": 12,
              "seed": 8, "before": side, "after": side, "step": "few-shot", "train_disagreements": 3, "examples": 2,
              "proposed_criterion": None, "version": None, "adopted": False, "kappa_before": 0.5, "kappa_after": 0.5}
    _render(report, 0.6, "calibration-queue-of-december")
    out = capsys.readouterr().out
    heading = _line_with(out, check)
    assert "judged by judge-model-2026-01 on queue calibration-queue-of-december: 24 labelled item(s)" in heading
    assert heading.endswith("12 train / 12 held out (seed 8)")
    assert "…" not in out


@pytest.fixture(scope="module")
def skew_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import drift_support

    from flywheel.bench.drift import write_traces
    from flywheel.store import Store

    root = drift_support.write_project(tmp_path_factory.mktemp("skew_text"))
    records = drift_support.traffic({"billing": 0.6, "天气": 0.4}, 120, drift_support.START, drift_support.DAY,
                                    random.Random(5))
    (root / ".flywheel").mkdir()
    with Store.open(f"sqlite:///{root / '.flywheel' / 'flywheel.db'}") as store:
        write_traces(store, records)
    suite = drift_support.traffic({"billing": 1.0}, 10, drift_support.START, drift_support.DAY, random.Random(6))
    drift_support.write_suite(root, "billing", [r["question"] for r in suite])
    return root


def test_skew_prints_percentiles_and_shares_not_python_dicts(skew_project: Path) -> None:
    args = ("skew", "--suite", "billing", "--since", "2026-10-01", "--until", "2026-10-05")
    doc = json.loads(run(skew_project, *args, "--json").stdout)
    res = run(skew_project, *args)
    assert res.exit_code == 0, res.output
    assert "{" not in res.stdout and "'p10'" not in res.stdout
    q = doc["length"]["production"]
    assert f"production p10 {q['p10']} · p50 {q['p50']} · p90 {q['p90']} chars" in _line_with(res.stdout, "length:")
    language = _line_with(res.stdout, "language:")
    assert "suite en 100%" in language
    shares = ", ".join(f"{k} {v:.0%}" for k, v in doc["language"]["production"].items())
    assert f"production {shares}  PSI" in language


QUESTION = "How do I pin a model version so that a provider update never changes my answers overnight, in every app?"
ANSWER = "Set `version:` on the alias in flywheel.yaml; every app using that alias then calls the pinned version."


def test_traces_piped_shows_whole_questions_and_answers(tmp_path: Path) -> None:
    from flywheel.config import Project
    from flywheel.store import Store
    from flywheel.tracing import attach_store, tracer

    with Store.open(Project(tmp_path).store_url) as store:
        detach = attach_store(store)
        with tracer.span("docs_qa", kind="app", inputs={"question": QUESTION}) as app:
            app.set(outputs={"text": ANSWER})
        store.flush()
        detach()
    listed = run(tmp_path, "traces")
    assert listed.exit_code == 0, listed.output
    assert QUESTION in _line_with(listed.stdout, app.trace_id[:8])
    for col in ("name", "tokens", "cost $"):  # the wide layout's columns: there is room off a terminal
        assert col in listed.stdout.splitlines()[0]
    shown = run(tmp_path, "traces", "show", app.trace_id)
    assert shown.exit_code == 0, shown.output
    assert QUESTION in _line_with(shown.stdout, "in:") and ANSWER in _line_with(shown.stdout, "out:")
    assert "…" not in shown.stdout


def test_an_explicit_columns_is_still_the_width_off_a_terminal(evals_project: Path) -> None:
    """COLUMNS set (as `watch` does) is honoured: the matrix fits 60 columns, as before."""
    from rich.cells import cell_len

    res = run(evals_project, "eval", "--no-progress", "--models", f"{LONG},strong", columns="60")
    assert res.exit_code == 0, res.output
    assert max(cell_len(line) for line in res.stdout.splitlines()) <= 60


REASON = ("not allowed to write about that topic: the policy of the quarterly support digest says refunds, "
          "chargebacks and legal threats are handled by a person on the support team and never drafted by a model, "
          "see the handbook section 4.2")
STEPS_PY = f"""
from flywheel.workflows.steps import StepRefused

def draft(topic):
    return f"notes on {{topic}}"

def veto(draft):
    raise StepRefused("veto", {REASON!r})
"""
WORKFLOW = """\
name: quarterly-customer-support-escalations-digest
inputs: [topic]
steps:
  - id: draft
    python: jsteps:draft
  - id: veto
    python: jsteps:veto
"""


def test_workflow_runs_piped_keeps_the_name_and_reason_whole(tmp_path: Path, monkeypatch) -> None:
    import sys

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "jsteps", raising=False)
    (tmp_path / "flywheel.yaml").write_text("models: {}\n", encoding="utf-8")
    (tmp_path / "jsteps.py").write_text(STEPS_PY, encoding="utf-8")
    (tmp_path / "wf.yaml").write_text(WORKFLOW, encoding="utf-8")
    ran = run(tmp_path, "workflow", "run", "wf.yaml", "--input", "topic=refunds")
    assert "refused" in ran.output, ran.output
    listed = run(tmp_path, "workflow", "runs")
    assert listed.exit_code == 0, listed.output
    row = _line_with(listed.stdout, "refused")
    assert "quarterly-customer-support-escalations-digest" in row and row.endswith(REASON)

"""The terminal report prints suite names, model names, case ids, reasons and outputs as they are: brackets in
them are text, not rich markup (`capitals [chat.json]` lost its label; an output holding `[/]` raised)."""

from __future__ import annotations

import io
from types import SimpleNamespace

from rich.console import Console

from flywheel.evals.records import CaseRun
from flywheel.evals.report import render_matrix, render_run, render_strategies
from flywheel.evals.runner import RunSummary
from flywheel.types import CheckResult


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200, color_system=None), out


def test_run_report_keeps_brackets_in_names_reasons_and_outputs():
    bad = CaseRun(case_id="case [b]", repeat_index=0, passed=False, score=0.0, output="list [/] and [red]x[/red]",
                  checks=[CheckResult(passed=False, score=0.0, reason="expected [bold]", name="contains")])
    summary = RunSummary(run_id="r" * 32, suite="capitals [chat.json]", target="model:gpt [a]", model=None,
                         threshold=1.0, repeat=1, cases=1, executions=1, passed=0, pass_rate=0.0,
                         pass_rate_ci95=[None, None], meets_threshold=False, errors=0, resumed=0, cost_usd=0.0,
                         latency_ms={"p50": None, "p95": None, "mean": None}, wall_s=0.0,
                         by_check={"contains [x]": {"passed": 0, "total": 1, "pass_rate": 0.0, "errors": 0}},
                         by_case=[], flaky=[], versions={}, warnings=["prompt [v2] changed"], results=[bad])
    console, out = _console()
    render_run(console, summary)
    text = out.getvalue()
    for kept in ("capitals [chat.json]", "model:gpt [a]", "case [b]", "expected [bold]", "list [/] and [red]x[/red]",
                 "contains [x]"):  # suite warnings are not in the report: `flywheel eval` prints them on stderr
        assert kept in text, kept


def test_matrix_and_strategy_tables_keep_brackets():
    console, out = _console()
    row = {"model": "gpt [mini]", "pass_rate": 1.0, "passed": 1, "executions": 1, "cost_usd": 0.0,
           "cost_per_case": 0.0, "latency_ms": {"p50": 1.0, "p95": 1.0}, "errors": 0, "meets_threshold": True}
    render_matrix(console, "smoke [self_consistency:5]", [row], 0.5, "gpt [mini]")
    comparison = SimpleNamespace(
        suite="smoke [x]", threshold=0.5, strategies=["best_of [3]"], best="best_of [3]",
        rows=lambda: [{"strategy": "best_of [3]", "pass_rate": 1.0, "pass_rate_ci95": [0.5, 1.0], "passed": 1,
                       "executions": 1, "cost_usd": 0.0, "latency_ms": {"p50": 1.0, "p95": 1.0}, "errors": 0,
                       "meets_threshold": True}])
    render_strategies(console, comparison)
    text = out.getvalue()
    for kept in ("smoke [self_consistency:5]", "★ gpt [mini]", "smoke [x]", "★ best_of [3]"):
        assert kept in text, kept

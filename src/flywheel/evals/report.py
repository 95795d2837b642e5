"""Terminal reports (rich tables) for eval runs, model matrices and pairwise comparisons.

The self-contained HTML report lives in `report_html.py` (`write_html`).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flywheel.evals.runner import RunSummary


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f} ms"


def _ci(ci: list[float | None] | None) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "–"
    return f"{_pct(ci[0])}–{_pct(ci[1])}"


def usd(x: float | None) -> str:
    """Dollars with enough digits for per-call prices ($0.000012 is not $0.0000)."""
    if x is None:
        return "–"
    return f"${x:.4f}" if x == 0 or x >= 0.01 else f"${x:.6f}"


def judge_agreement(s: RunSummary, judges: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The run's judge agreement lines (`flywheel.evals.calibration_judges.apply_calibration`): given, or
    carried on the summary as `judges`."""
    return list(judges if judges is not None else getattr(s, "judges", None) or [])


def agreement_text(line: dict[str, Any]) -> str:
    """One judge's last measured agreement with people, e.g. `qa.yaml#refund κ 0.82 (v2, 40 held out)`."""
    if line.get("version") is None:
        return f"{line['check']}: never calibrated"
    kappa = "undefined" if line.get("kappa") is None else f"{line['kappa']:.2f}"
    return f"{line['check']}: κ {kappa} (v{line['version']}, {line.get('n_heldout') or 0} held out)"


def render_run(
    console: Console, s: RunSummary, *, show_cases: int = 20, judges: list[dict[str, Any]] | None = None
) -> None:
    """Headline, per-check pass rates, judge agreement with people, and the failing (or flaky) cases."""
    mark = "[green]PASS[/]" if s.meets_threshold else "[red]FAIL[/]"
    extra = f" · model {s.model}" if s.model else ""
    console.print(
        f"[bold]{escape(s.suite)}[/] ({escape(s.target)}{escape(extra)}) run {s.run_id[:8]}: {mark} "
        f"{s.passed}/{s.executions} passed = {_pct(s.pass_rate)} "
        f"(95% interval {_ci(s.pass_rate_ci95)} over {s.cases} cases; threshold {_pct(s.threshold)})"
    )
    console.print(
        f"  cost {usd(s.cost_usd)} · latency p50 {_ms(s.latency_ms['p50'])} p95 {_ms(s.latency_ms['p95'])}"
        f" · {s.wall_s:.1f} s"
        + (f" · resumed {s.resumed} result(s)" if s.resumed else "")
        + (f" · {s.errors} error(s)" if s.errors else "")
    )
    choice = s.multiple_choice
    if choice and choice["executions"]:  # which reading scored how many: a fallback means words, not a letter
        methods = ", ".join(f"{name} {n}" for name, n in choice["methods"].items())
        console.print(f"  multiple choice {choice['correct']}/{choice['executions']} correct = "
                      f"{_pct(choice['accuracy'])} (by {escape(methods)})")
    for line in judge_agreement(s, judges):
        console.print(f"  judge agreement {escape(agreement_text(line))}")
        if line.get("warning"):
            console.print(f"  [yellow]warning:[/] {escape(line['warning'])}")
    if s.by_check:
        t = Table(title="by check", title_justify="left", show_edge=False)
        for col in ("check", "passed", "total", "pass rate", "errors"):
            t.add_column(col, justify="left" if col == "check" else "right")
        for name, c in s.by_check.items():
            t.add_row(escape(name), str(c["passed"]), str(c["total"]), _pct(c["pass_rate"]), str(c["errors"] or ""))
        console.print(t)
    bad = [r for r in s.results if not r.passed]
    if s.repeat > 1:
        flaky = [c for c in s.by_case if c["flaky"]]
        if flaky:
            t = Table(title=f"flaky cases ({len(flaky)})", title_justify="left", show_edge=False)
            for col in ("case", "passes", "runs", "pass rate"):
                t.add_column(col)
            for c in flaky[:show_cases]:
                t.add_row(escape(c["id"]), str(c["passes"]), str(c["runs"]), _pct(c["pass_rate"]))
            console.print(t)
    if bad:
        t = Table(title=f"failed ({len(bad)})", title_justify="left", show_edge=False)
        for col in ("case", "#", "why", "output"):
            t.add_column(col, overflow="fold")
        for r in bad[:show_cases]:
            why = r.error or "; ".join(f"{c.name}: {c.reason}" for c in r.checks if not c.passed)
            t.add_row(escape(r.case_id), str(r.repeat_index), escape(why[:200]), escape((r.output or "")[:120]))
        console.print(t)
        if len(bad) > show_cases:
            console.print(f"  … and {len(bad) - show_cases} more (see --html or --json)")


def render_matrix(
    console: Console, suite: str, rows: list[dict[str, Any]], threshold: float, cheapest: str | None
) -> None:
    t = Table(title=f"{escape(suite)}: model matrix (threshold {_pct(threshold)})", title_justify="left")
    for col in ("model", "pass rate", "passed", "cost", "cost/case", "p50", "p95", "errors"):
        t.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
    for r in rows:
        model = escape(r["model"])
        name = (
            f"[green]★ {model}[/]"
            if r["model"] == cheapest
            else (model if r["meets_threshold"] else f"[red]{model}[/]")
        )
        t.add_row(
            name,
            _pct(r["pass_rate"]),
            f"{r['passed']}/{r['executions']}",
            usd(r["cost_usd"]),
            usd(r["cost_per_case"]),
            _ms(r["latency_ms"]["p50"]),
            _ms(r["latency_ms"]["p95"]),
            str(r["errors"] or ""),
        )
    console.print(t)
    if cheapest is None:
        console.print("[red]no model meets the threshold[/]")
    else:
        console.print(f"★ cheapest model meeting the threshold: [bold]{escape(cheapest)}[/]")


def render_pairwise(console: Console, report: dict[str, Any], *, show_cases: int = 30) -> None:
    a, b = escape(report["a"]), escape(report["b"])
    console.print(
        f"[bold]{a}[/] vs [bold]{b}[/] judged by {escape(report['judge'])} ({escape(report['judge_model'])}), "
        f"each pair twice with A/B swapped"
    )
    console.print(
        f"  wins {report['wins']} · ties {report['ties']} · losses {report['losses']}"
        f" · skipped {report['skipped']} · errors {report['errors']}"
    )
    if report["win_rate"] is not None:
        boot = report.get("win_rate_bootstrap95")
        console.print(
            f"  win rate of {a} {_pct(report['win_rate'])} over {report['judged']} pairs (ties count half; "
            f"95% Wilson {_ci(report.get('win_rate_wilson95'))}, bootstrap "
            f"{_ci(boot) if boot else '– (every pair the same outcome)'}) · exact sign test "
            f"p = {report.get('sign_test_p', 1.0):.3g} · judge position consistency "
            f"{_pct(report['position_consistency'])}"
        )
    lc = report["length"]
    if lc["longer_won_rate"] is not None:
        console.print(
            f"  the longer answer won {_pct(lc['longer_won_rate'])} of {lc['decisive_with_length_gap']} "
            f"decisive pairs · {lc['flagged']} pair(s) differ by more than "
            f"{lc['max_length_diff_pct'] if lc['max_length_diff_pct'] is not None else '–'}%"
        )
    for w in report.get("warnings", []):
        console.print(f"  [yellow]warning:[/] {escape(w)}")
    t = Table(show_edge=False)
    for col in ("case", "outcome", "order 1", "order 2", "len ratio", "flag", "reason"):
        t.add_column(col, overflow="fold")
    for p in report["pairs"][:show_cases]:
        t.add_row(
            escape(p["case_id"]),
            p["outcome"],
            p["verdicts"][0] or "–",
            p["verdicts"][1] or "–",
            f"{p['length_ratio']:.2f}",
            "length" if p["flagged"] else "",
            escape((p.get("reason") or "")[:100]),
        )
    console.print(t)
    if len(report["pairs"]) > show_cases:
        console.print(f"  … and {len(report['pairs']) - show_cases} more pairs (see --json)")


def render_strategies(console: Console, comparison: Any) -> None:
    """One row per sampling strategy of `flywheel eval --strategies`: pass rate with its interval, cost, latency."""
    t = Table(title=f"{escape(comparison.suite)}: strategies (threshold {_pct(comparison.threshold)})", title_justify="left",
              show_edge=False)
    widest = max(len(s) for s in comparison.strategies) + 2
    t.add_column("strategy", no_wrap=True, min_width=widest)  # the name never shrinks; cost/case is in --json
    for col in ("pass rate", "95% CI", "passed", "cost", "p50", "p95", "errors"):
        t.add_column(col, justify="right", no_wrap=True)
    for r in comparison.rows():
        strategy = escape(r["strategy"])
        name = strategy if r["meets_threshold"] else f"[red]{strategy}[/]"
        if r["strategy"] == comparison.best:
            name = f"[green]★ {strategy}[/]"
        t.add_row(name, _pct(r["pass_rate"]), _ci(r["pass_rate_ci95"]),
                  f"{r['passed']}/{r['executions']}", usd(r["cost_usd"]),
                  _ms(r["latency_ms"]["p50"]), _ms(r["latency_ms"]["p95"]), str(r["errors"] or ""))
    console.print(t)
    console.print(f"★ highest pass rate (ties: cheaper): [bold]{escape(comparison.best)}[/]")

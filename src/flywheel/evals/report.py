"""Terminal reports (rich tables) for eval runs, model matrices and pairwise comparisons.

The self-contained HTML report lives in `report_html.py` (`write_html`).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from flywheel.evals.runner import RunSummary

MIN_NAME_CELLS = 10  # a name cut narrower than this is not read as a name: the rows become a list
_UNLIMITED = 100_000


def _natural(console: Console, renderable: Any) -> int:
    """The width `renderable` takes when nothing limits it, in terminal cells."""
    return Measurement.get(console, console.options.update(max_width=_UNLIMITED), renderable).maximum


def fit_table(console: Console, table: Table, shrink: list[int], *, min_cells: int = MIN_NAME_CELLS) -> bool:
    """Make `table` fit `console.width` by cutting the cells of columns `shrink` (names) with "…", by display
    width (a Chinese character takes two cells), the widest first; every other column keeps every character.
    False when a name would be cut below `min_cells`, or two names would be cut alike: the caller prints its rows
    as a list instead."""
    excess = _natural(console, table) - console.width
    if excess <= 0:
        return True
    widths = {i: max(_natural(console, c) for c in (table.columns[i].header, *table.columns[i].cells)) for i in shrink}
    while excess > 0:
        widest = max(widths, key=widths.__getitem__)
        if widths[widest] <= min_cells:
            return False
        widths[widest] -= 1
        excess -= 1
    for i, width in widths.items():
        column = table.columns[i]
        names = [c.plain if isinstance(c, Text) else str(c) for c in column.cells]
        cut = [Text(n, end="") for n in names]
        for text in cut:
            text.truncate(width, overflow="ellipsis")
        if len({c.plain for c in cut}) < len(set(names)):  # two names cut alike: the rows could not be told apart
            return False
        column.min_width, column.max_width, column.no_wrap, column.overflow = None, width, True, "ellipsis"
    return True


def print_name(console: Console, text: str, style: str = "") -> None:
    """A name on a line of its own, cut with "…" to the console's width instead of wrapped (a list layout's head)."""
    console.print(Text(text, style=style), no_wrap=True, overflow="ellipsis")


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
    """One row per model; on a narrow terminal long aliases are cut with "…", and where even the numbers do not
    fit, a list: each model on its own line, its numbers under it."""
    console.print(Text(f"{suite}: model matrix (threshold {_pct(threshold)})", style="italic"))
    t = Table(show_edge=False)
    for col in ("model", "pass rate", "passed", "cost", "cost/case", "p50", "p95", "errors"):
        t.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
    for r in rows:
        t.add_row(Text(_marked(r["model"], cheapest), style=_style(r, r["model"] == cheapest)),
                  _pct(r["pass_rate"]), f"{r['passed']}/{r['executions']}", usd(r["cost_usd"]),
                  usd(r["cost_per_case"]), _ms(r["latency_ms"]["p50"]), _ms(r["latency_ms"]["p95"]),
                  str(r["errors"] or ""))
    if fit_table(console, t, [0]):
        console.print(t)
    else:
        for r in rows:
            print_name(console, _marked(r["model"], cheapest), _style(r, r["model"] == cheapest))
            console.print(f"  pass rate {_pct(r['pass_rate'])} ({r['passed']}/{r['executions']}) · "
                          f"p50 {_ms(r['latency_ms']['p50'])} · p95 {_ms(r['latency_ms']['p95'])}")
            console.print(f"  cost {usd(r['cost_usd'])} · {usd(r['cost_per_case'])} a case"
                          + (f" · [red]{r['errors']} error(s)[/]" if r["errors"] else ""))
    if cheapest is None:
        console.print("[red]no model meets the threshold[/]")
    else:
        console.print(f"★ cheapest model meeting the threshold: [bold]{escape(cheapest)}[/]")


def _marked(name: str, best: str | None) -> str:
    return f"★ {name}" if name == best else name


def _style(row: dict[str, Any], best: bool) -> str:
    return "green" if best else "" if row["meets_threshold"] else "red"


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
    """One row per sampling strategy of `flywheel eval --strategies`: pass rate with its interval, cost, latency
    (a list, each strategy on its own line, where a narrow terminal has no room for the table)."""
    console.print(Text(f"{comparison.suite}: strategies (threshold {_pct(comparison.threshold)})", style="italic"))
    t = Table(show_edge=False)
    t.add_column("strategy", no_wrap=True)  # cut with "…" only where the numbers would not fit; cost/case is in --json
    for col in ("pass rate", "95% CI", "passed", "cost", "p50", "p95", "errors"):
        t.add_column(col, justify="right", no_wrap=True)
    rows = comparison.rows()
    for r in rows:
        t.add_row(Text(_marked(r["strategy"], comparison.best), style=_style(r, r["strategy"] == comparison.best)),
                  _pct(r["pass_rate"]), _ci(r["pass_rate_ci95"]), f"{r['passed']}/{r['executions']}",
                  usd(r["cost_usd"]), _ms(r["latency_ms"]["p50"]), _ms(r["latency_ms"]["p95"]), str(r["errors"] or ""))
    if fit_table(console, t, [0]):
        console.print(t)
    else:
        for r in rows:
            print_name(console, _marked(r["strategy"], comparison.best), _style(r, r["strategy"] == comparison.best))
            console.print(f"  pass rate {_pct(r['pass_rate'])} ({r['passed']}/{r['executions']}, 95% CI "
                          f"{_ci(r['pass_rate_ci95'])})")
            console.print(f"  cost {usd(r['cost_usd'])} · p50 {_ms(r['latency_ms']['p50'])} · "
                          f"p95 {_ms(r['latency_ms']['p95'])}" + (f" · [red]{r['errors']} error(s)[/]" if r["errors"] else ""))
    console.print(f"★ highest pass rate (ties: cheaper): [bold]{escape(comparison.best)}[/]")

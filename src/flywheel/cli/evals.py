"""`flywheel eval` (suites, repeats, model matrix, HTML report) and `flywheel compare` (pairwise LLM judge).

Exit codes of `flywheel eval`: 0 every suite meets its threshold, 1 some suite is below it (CI-friendly),
2 a user error (bad suite, unknown check, unreachable store …), 130 interrupted (run again to resume).
Evals bypass the response cache unless `--cache`: `--repeat` then really runs every case again.
Every comparison `flywheel compare` makes is stored; `flywheel compare --show ID` prints one again.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

import click

from flywheel.cli import emit_json, main

if TYPE_CHECKING:
    from rich.console import Console

BELOW_THRESHOLD = 1


def _console() -> Console:
    from flywheel.cli.console import console  # only when rendering: `--json` never imports rich

    return console()


def _warn(text: str) -> None:
    click.secho(f"warning: {text}", fg="yellow", err=True)


@main.command("eval")
@click.argument("suites", nargs=-1)
@click.option(
    "--repeat",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Run every case N times; reports per-case pass rate and flags flaky cases.",
)
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1), help="Cases in flight.")
@click.option(
    "--timeout", "timeout_s", type=click.FloatRange(min=0.001), help="Seconds per case (default: suite)."
)
@click.option("--models", help="Comma-separated model aliases: run the suite once per model, side by side.")
@click.option(
    "--strategies",
    help="Comma-separated sampling strategies (none, self_consistency:5, best_of:3:judge, critique:2, "
    "ensemble:a+b+c): run the suite once per strategy, side by side.",
)
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False), help="Write a self-contained HTML report."
)
@click.option("--json", "as_json", is_flag=True, help="Print the summaries as JSON.")
@click.option("--results", is_flag=True, help="With --json: include every result (outputs, checks).")
@click.option("--fresh", is_flag=True, help="Start a new run instead of resuming an interrupted one.")
@click.option(
    "--cache", is_flag=True, help="Let app targets answer from the response cache (default: bypass)."
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--list", "list_runs", is_flag=True, help="List recent eval runs and exit.")
@click.pass_context
def eval_cmd(
    ctx: click.Context,
    suites: tuple[str, ...],
    repeat: int,
    concurrency: int,
    timeout_s: float | None,
    models: str | None,
    strategies: str | None,
    html_path: str | None,
    as_json: bool,
    results: bool,
    fresh: bool,
    cache: bool,
    no_progress: bool,
    list_runs: bool,
) -> None:
    """Run eval suites (default: every YAML file in evals/). Exit 1 when a suite is below its threshold."""
    from flywheel.apps.runtime import Runtime
    from flywheel.errors import UserError
    from flywheel.evals.matrix import arun_matrix, arun_strategies, parse_models, parse_strategy_list
    from flywheel.evals.records import RunStore
    from flywheel.evals.runner import RunOptions, arun_suite
    from flywheel.evals.suite import discover, load_suites

    project = ctx.obj.project
    if list_runs:
        with Runtime(project, tracing=False) as rt:
            _list(RunStore(rt.store).list(), as_json)
        return
    # validate all before running; a promptfoo config gives one suite per prompt
    loaded = [s for p in discover(list(suites), project) for s in load_suites(p, project)]
    for w in dict.fromkeys(w for suite in loaded for w in suite.warnings):
        _warn(w)
    model_list = parse_models(models, project.config.models) if models else None
    if model_list and strategies:
        raise UserError("give --models or --strategies, not both", hint="compare strategies for one model at a time")
    strategy_list = parse_strategy_list(strategies, project.config.models) if strategies else None
    options = RunOptions(
        concurrency=concurrency,
        repeat=repeat,
        timeout_s=timeout_s,
        resume=not fresh,
        cache=cache,
        progress=not no_progress and not as_json and sys.stderr.isatty(),  # a bar only where it shows
    )
    console = None if as_json else _console()
    outputs: list[dict[str, Any]] = []
    ok = True
    with Runtime(project, tracing=False) as rt:
        runs = RunStore.open(rt)  # a new store is created while the first suite runs
        from flywheel.evals.calibration_judges import calibrate_for_run

        judges = {suite.path: calibrate_for_run(suite, rt) for suite in loaded}  # calibrated judge prompts
        summaries, matrices = [], []
        try:
            for suite in loaded:
                if strategy_list:
                    comparison = asyncio.run(
                        arun_strategies(suite, rt, strategy_list, store=runs, options=options)
                    )
                    for run in comparison.runs:
                        run.judges = judges[suite.path]
                    ok = ok and any(s.meets_threshold for s in comparison.runs)  # as the matrix: one meets it
                    outputs.append(
                        {"strategies": comparison.to_dict(), "runs": [s.to_dict(results) for s in comparison.runs]}
                    )
                    if not as_json:
                        from flywheel.evals.report import render_strategies

                        assert console is not None
                        render_strategies(console, comparison)
                    summaries.extend(comparison.runs)
                elif model_list or len(suite.models) > 1:  # --models, or the providers of a promptfoo config
                    matrix = asyncio.run(
                        arun_matrix(suite, rt, model_list or suite.models, store=runs, options=options)
                    )
                    for run in matrix.runs:
                        run.judges = judges[suite.path]
                    matrices.append(matrix)
                    ok = ok and matrix.cheapest is not None
                    outputs.append(
                        {"matrix": matrix.to_dict(), "runs": [s.to_dict(results) for s in matrix.runs]}
                    )
                    if not as_json:
                        from flywheel.evals.report import render_matrix

                        assert console is not None
                        render_matrix(console, suite.name, matrix.rows(), suite.threshold, matrix.cheapest)
                    summaries.extend(matrix.runs)
                else:
                    summary = asyncio.run(arun_suite(suite, rt, store=runs, options=options))
                    summary.judges = judges[suite.path]
                    summaries.append(summary)
                    ok = ok and summary.meets_threshold
                    outputs.append(summary.to_dict(results))
                    if not as_json:
                        from flywheel.evals.report import render_run

                        assert console is not None
                        render_run(console, summary)
        except KeyboardInterrupt:
            click.secho(
                "interrupted: finished cases are saved; run the same command again to resume",
                fg="yellow",
                err=True,
            )
            sys.exit(130)
        if html_path:
            from flywheel.evals.report_html import write_html

            previous = {s.run_id: runs.previous(s.run_id, s.suite, s.model) for s in summaries}
            diffs = {rid: (prev, runs.load_results(prev["id"])) for rid, prev in previous.items() if prev}
            write_html(html_path, summaries, diffs=diffs, matrices=matrices)
            if console is not None:  # None exactly when as_json
                console.print(f"report: {html_path}")
    if as_json:
        emit_json({"ok": ok, "suites": outputs})
    if not ok:
        ctx.exit(BELOW_THRESHOLD)


def _list(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        emit_json(rows)
        return
    import datetime as dt

    from rich.table import Table
    from rich.text import Text

    from flywheel.evals.report import fit_table, print_name

    console = _console()
    t = Table(show_edge=False)
    errors = any(r.get("error") for r in rows)
    for col in ("run", "suite", "target", "model", "status", "pass rate", "started"):
        t.add_column(col, no_wrap=True)
    if errors:
        t.add_column("error", overflow="fold")
    listed = []
    for r in rows:
        started = dt.datetime.fromtimestamp(r["started_at"]).strftime("%Y-%m-%d %H:%M")
        rate = "–" if r["pass_rate"] is None else f"{100 * r['pass_rate']:.1f}%"
        error = (r.get("error") or "").splitlines()[0][:80] if r.get("error") else ""
        listed.append((r["id"][:12], r["suite"], r["target"], r["model"] or "", r["status"], rate, started, error))
        t.add_row(*[Text(c) for c in listed[-1][:7]], *([Text(error)] if errors else []))
    # names give way (cut with "…") to the ids, states, rates and dates; too narrow for that: a run a paragraph
    if fit_table(console, t, [1, 2, 3, 7] if errors else [1, 2, 3]):
        console.print(t)
        return
    for run_id, suite, target, model, status, rate, started, error in listed:
        print_name(console, f"{run_id}  {status}  {rate}  {started}  {model}".rstrip())
        print_name(console, f"  {suite} · {target}")
        if error:
            print_name(console, f"  error: {error}", "red")


@main.command()
@click.argument("runs", nargs=-1)
@click.option("--judge", help="Model alias of the judge.")
@click.option("--show", "show", metavar="ID", help="Print a stored comparison (id, unique prefix or latest).")
@click.option(
    "--against-traces",
    "against_traces",
    type=click.IntRange(1),
    help="Replay N sampled production traces through the current app and judge new vs served.",
)
@click.option("--app", default="docs_qa", show_default=True, help="App whose traces to replay.")
@click.option(
    "--max-length-diff", type=click.FloatRange(min=0), help="Flag/skip pairs whose lengths differ > PCT %."
)
@click.option("--length-action", type=click.Choice(["flag", "skip"]), default="flag", show_default=True,
              help="What --max-length-diff does to a pair: mark it in the report, or leave it unjudged.")
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1), help="Judge calls in flight.")
@click.option("--seed", default=0, show_default=True, help="Trace sampling seed.")
@click.option("--cache", is_flag=True, help="With --against-traces: replay through the response cache.")
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False), help="Write a self-contained HTML report."
)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.pass_obj
def compare(
    state: Any,
    runs: tuple[str, ...],
    judge: str | None,
    show: str | None,
    against_traces: int | None,
    app: str,
    max_length_diff: float | None,
    length_action: str,
    concurrency: int,
    seed: int,
    cache: bool,
    html_path: str | None,
    as_json: bool,
) -> None:
    """Pairwise LLM judge, both A/B orders: `compare RUN_A RUN_B` or `compare --against-traces N`; results
    are stored (`compare --show ID`)."""
    from flywheel.apps.runtime import Runtime
    from flywheel.cli.names import check_alias, check_app
    from flywheel.errors import UserError
    from flywheel.evals.comparisons import load_comparison, save_comparison
    from flywheel.evals.pairwise import compare_pairs, pairs_from_runs
    from flywheel.evals.records import RunStore
    from flywheel.evals.regression import against_traces as replay

    if show is not None:
        if runs or against_traces is not None:
            raise UserError("--show prints a stored comparison; give no run ids or --against-traces with it")
        with Runtime(state.project, tracing=False) as rt:
            report = load_comparison(rt.store, show)
        _render_comparison(report, html_path, as_json)
        return
    if not judge:
        raise UserError(
            "compare needs --judge ALIAS", hint="the model alias that judges, e.g. --judge strong"
        )
    if against_traces is None and len(runs) != 2:
        raise UserError(
            "compare needs two run ids, or --against-traces N",
            hint="list runs with `flywheel eval --list`; e.g. flywheel compare 3f2a 9c1d --judge strong",
        )
    if against_traces is not None and runs:
        raise UserError("give either two run ids or --against-traces, not both")
    # replays are traced (each its own trace, linked to the one it replays); a run-vs-run comparison is not
    with Runtime(state.project, tracing=against_traces is not None) as rt:
        check_alias(rt.gateway, judge, "--judge")
        if against_traces is not None:
            check_app(rt.project, app)
            report = asyncio.run(
                replay(
                    rt,
                    against_traces,
                    judge,
                    app=app,
                    seed=seed,
                    concurrency=concurrency,
                    max_length_diff=max_length_diff,
                    length_action=length_action,
                    cache=cache,
                )
            )
            report["comparison_id"] = save_comparison(rt.store, report, kind="regression", app=app)
        else:
            ra, rb, pairs = pairs_from_runs(RunStore(rt.store), runs[0], runs[1])
            report = asyncio.run(
                compare_pairs(
                    pairs,
                    rt.gateway,
                    judge,
                    a=ra["id"][:8],
                    b=rb["id"][:8],
                    max_length_diff=max_length_diff,
                    length_action=length_action,
                    concurrency=concurrency,
                )
            )
            report["comparison_id"] = save_comparison(
                rt.store, report, kind="pairwise", run_a=ra["id"], run_b=rb["id"]
            )
    _render_comparison(report, html_path, as_json)


def _render_comparison(report: dict[str, Any], html_path: str | None, as_json: bool) -> None:
    if html_path:
        from flywheel.evals.report_html import write_pairwise_html

        write_pairwise_html(html_path, report)
    if as_json:
        emit_json(report)
        return
    from rich.markup import escape

    from flywheel.evals.report import render_pairwise

    console = _console()
    render_pairwise(console, report)
    reasked = [p for p in report.get("pairs") or [] if (p.get("judge_calls") or 0) > 2]
    if reasked:  # each pair is judged twice (A/B swapped); more calls: a reply without a verdict was re-asked
        console.print(f"  judge re-asked in {len(reasked)} pair(s): " + ", ".join(
            f"{escape(str(p['case_id']))} ({p['judge_calls']} calls)" for p in reasked[:20])
            + (" …" if len(reasked) > 20 else ""))
    if report.get("comparison_id"):
        console.print(f"stored as comparison {report['comparison_id'][:12]} "
                      f"(flywheel compare --show {report['comparison_id'][:12]})")
    if html_path:
        console.print(f"report: {html_path}")

"""`flywheel route select|report|compare-shadow|train-router`: pick models by evals, measure A/B arms, judge shadow
outputs, train a query-level router.

Exit codes of `route select`: 0 an alias meets the bar (with --write: flywheel.yaml updated), 1 none does,
2 a user error.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from flywheel.cli import emit_json, main
from flywheel.errors import UserError

NONE_PASSES = 1


@main.group("route")
def route() -> None:
    """Model routes from evals: cheapest passing model, per-query router, A/B arm reports, shadow judging."""


def _fmt_ci(ci: Any) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "-"


@route.command("select")
@click.option("--suite", "suite_path", required=True, help="Eval suite (a YAML file or a name in evals/).")
@click.option("--models", required=True, help="Comma-separated candidate aliases, e.g. small,medium,large.")
@click.option(
    "--min-pass",
    type=click.FloatRange(0, 1),
    help="Pass rate an alias needs (default: the suite's threshold).",
)
@click.option("--route", "route_name", help="Route to set (default: the suite's name).")
@click.option(
    "--strict",
    is_flag=True,
    help="Require the 95 % Wilson lower bound, not the observed rate, to meet the bar.",
)
@click.option("--write", is_flag=True, help="Write `routes.<route>: {alias: …}` into flywheel.yaml.")
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1), help="Cases in flight.")
@click.option("--json", "as_json", is_flag=True, help="Print the selection as JSON.")
@click.pass_context
def select(
    ctx: click.Context,
    suite_path: str,
    models: str,
    min_pass: float | None,
    route_name: str | None,
    strict: bool,
    write: bool,
    concurrency: int,
    as_json: bool,
) -> None:
    """Run a suite on each model and pick, per route, the cheapest alias whose pass rate meets the bar."""
    from flywheel.apps.runtime import Runtime
    from flywheel.evals.matrix import arun_matrix, parse_models
    from flywheel.evals.records import RunStore
    from flywheel.evals.runner import RunOptions
    from flywheel.evals.suite import discover, load_suite
    from flywheel.loop.routing import select_routes, set_route_alias

    project = ctx.obj.project
    paths = discover([suite_path], project)
    if len(paths) != 1:
        raise UserError(f"--suite {suite_path} names {len(paths)} suites", hint="give one suite file")
    suite = load_suite(paths[0], project)
    candidates = parse_models(models, project.config.models)
    name = route_name or suite.name
    if name in project.config.models:
        raise UserError(
            f"route '{name}' would have the name of a model alias", hint="pass --route OTHER_NAME"
        )
    bar = suite.threshold if min_pass is None else min_pass
    options = RunOptions(concurrency=concurrency, resume=False, progress=False)
    with Runtime(project, tracing=False) as rt:
        runs = RunStore.open(rt)
        matrix = asyncio.run(arun_matrix(suite, rt, candidates, store=runs, options=options))
    selection = select_routes(matrix, route=name, min_pass=bar, by="lower" if strict else "rate")
    written = False
    if write and selection.chosen is not None:
        best = next(c for c in selection.candidates if c.alias == selection.chosen)
        note = (
            f"route select: suite {suite.name}, pass {best.pass_rate:.2f} {_fmt_ci(best.interval)}, "
            f"bar {bar:g}"
        )
        set_route_alias(project.config_path, name, selection.chosen, note)
        written = True
        old = project.config.routes.get(name)
        if old is not None and old.shadow == selection.chosen:
            click.echo(
                f"note: '{selection.chosen}' was the shadow of route {name}; now that it serves the route, "
                "its shadow copy is removed",
                err=True,
            )
    if as_json:
        emit_json({**selection.to_dict(), "written": written})
    else:
        _print_selection(selection, written, project.config_path)
    if selection.chosen is None:
        ctx.exit(NONE_PASSES)


def _print_selection(selection: Any, written: bool, path: Any) -> None:
    click.echo(
        f"route {selection.route} · suite {selection.suite} · bar: pass rate ≥ {selection.min_pass:g}"
        f"{' (Wilson lower bound)' if selection.by == 'lower' else ''}"
    )
    click.echo(
        f"{'alias':<16}{'pass':>7}  {'95% CI':<14}{'cases':>6}{'cost $':>12}{'$/case':>12}{'p50 ms':>9}  ok"
    )
    for c in selection.candidates:
        mark = "*" if c.alias == selection.chosen else ("yes" if c.meets else "no")
        click.echo(
            f"{c.alias:<16}{c.pass_rate:>7.2f}  {_fmt_ci(c.interval):<14}{c.executions:>6}"
            f"{c.cost_usd:>12.6f}{(c.cost_per_case or 0):>12.8f}{(c.latency_p50_ms or 0):>9.1f}  {mark}"
        )
    for w in selection.warnings:
        click.secho(f"warning: {w}", fg="yellow", err=True)
    if selection.chosen is None:
        click.echo("no alias meets the bar: the route is left as it was")
    else:
        click.echo(
            f"selected: {selection.chosen}"
            + (f" (written to {path})" if written else " (add --write to update flywheel.yaml)")
        )


@route.command("report")
@click.argument("route_name", required=False)
@click.option("--since", help="Only requests since: a duration ago (7d, 24h), a date, or Unix seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def report(state: Any, route_name: str | None, since: str | None, as_json: bool) -> None:
    """Per-arm volume, negative feedback, online-check pass rate, cost and latency, with significance tests."""
    from flywheel.loop.routing import route_report
    from flywheel.monitor.windows import parse_time
    from flywheel.store import Store

    config = state.project.config
    if route_name is not None and route_name not in config.routes:
        from flywheel.registry import unknown_name

        raise unknown_name("route", route_name, config.routes, hint="routes are defined under `routes:`")
    start = parse_time(since) if since else None
    with Store.open(state.project.store_url) as store:
        data = route_report(store, route_name, since=start)
    if as_json:
        emit_json(data)
        return
    if not data["routes"]:
        click.echo("no routed requests recorded yet" + (f" for route '{route_name}'" if route_name else ""))
        return
    for name, r in data["routes"].items():
        click.echo(f"route {name} (baseline arm: {r['baseline']})")
        click.echo(
            f"  {'arm':<14}{'requests':>9}{'neg. fb':>9}{'p':>9}{'online':>9}{'p':>9}{'cost $':>12}"
            f"{'p50 ms':>9}{'p95 ms':>9}"
        )
        for arm, m in r["arms"].items():
            click.echo(
                f"  {arm:<14}{m['requests']:>9}{_pct(m['negative_feedback_rate']):>9}"
                f"{_p(m.get('negative_feedback_p')):>9}{_pct(m['online_pass_rate']):>9}"
                f"{_p(m.get('online_pass_p')):>9}{m['cost_usd']:>12.6f}{_ms(m['latency_p50_ms']):>9}"
                f"{_ms(m['latency_p95_ms']):>9}"
            )
        for arm, s in r["shadow"].items():
            click.echo(
                f"  shadow {arm}: {s['requests']} copies, {s['errors']} failed, ${s['cost_usd']:.6f} "
                "(not in the served cost)"
            )
        for w in r["warnings"]:
            click.secho(f"  warning: {w}", fg="yellow")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _p(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


@route.command("compare-shadow")
@click.argument("route_name")
@click.option("--judge", required=True, help="Model alias of the judge.")
@click.option("--last", default=50, show_default=True, type=click.IntRange(1), help="Latest N shadow copies.")
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def compare_shadow_cmd(
    state: Any, route_name: str, judge: str, last: int, concurrency: int, as_json: bool
) -> None:
    """Judge a route's shadow outputs pairwise against the answers that were served (stored like `compare`)."""
    from flywheel.apps.runtime import Runtime
    from flywheel.evals.comparisons import save_comparison
    from flywheel.evals.shadow import compare_shadow
    from flywheel.registry import unknown_alias

    config = state.project.config
    if (
        route_name not in config.routes
    ):  # as `route report`: a typo is named, not reported as "no shadow outputs"
        from flywheel.registry import unknown_name

        raise unknown_name("route", route_name, config.routes, hint="routes are defined under `routes:`")
    if judge not in config.models:
        raise unknown_alias(judge, config.models, option="--judge")
    with Runtime(state.project, tracing=False) as rt:
        data = asyncio.run(
            compare_shadow(rt.store, rt.gateway, route_name, judge, last=last, concurrency=concurrency)
        )
        data["comparison_id"] = save_comparison(rt.store, data, kind="shadow", app=route_name)
    if as_json:
        emit_json(data)
        return
    from flywheel.cli.console import console as make_console
    from flywheel.evals.report import render_pairwise

    console = make_console()
    render_pairwise(console, data)
    counts = data["shadow"]
    console.print(
        f"shadow copies: {counts['shadow_calls']} · compared: {counts['paired']} · "
        f"failed or unpaired: {counts['failed_or_unpaired']}"
    )
    short = data["comparison_id"][:12]
    console.print(f"stored as comparison {short} (flywheel compare --show {short})")
    sys.stdout.flush()


@route.command("train-router")
@click.argument("route_name")
@click.option("--small", required=True, help="Alias of the cheap model the router prefers.")
@click.option("--strong", required=True, help="Alias of the strong model it falls back to.")
@click.option(
    "--suite",
    "suite_path",
    required=True,
    help="Eval suite (a YAML file or a name in evals/; with --runs the name of the suite the runs ran).",
)
@click.option(
    "--runs",
    help="Stored eval runs of the suite to learn from, the small model's then the strong "
    "model's (ids or prefixes: RUN_A,RUN_B); without it the suite runs on both models.",
)
@click.option(
    "--features",
    type=click.Choice(["tfidf", "embedding"]),
    default="tfidf",
    show_default=True,
    help="Hashed word + char n-gram TF-IDF of the query, or the local embedder's vectors.",
)
@click.option(
    "--target-quality",
    default=0.95,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True),
    help="Share of the strong model's pass rate the routed answers must keep (on the training part).",
)
@click.option("--heldout", default=0.3, show_default=True, type=float, help="Share of inputs held out.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the split.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to save the router in (default: routers/ROUTE next to flywheel.yaml).",
)
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1), help="Cases in flight.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def train_router_cmd(
    state: Any,
    route_name: str,
    small: str,
    strong: str,
    suite_path: str,
    runs: str | None,
    features: str,
    target_quality: float,
    heldout: float,
    seed: int,
    out_dir: Path | None,
    concurrency: int,
    as_json: bool,
) -> None:
    """Train a query-level router: small model unless a classifier predicts it fails the query, else strong."""
    from flywheel.apps.runtime import Runtime
    from flywheel.checks.trained import NAME_PATTERN
    from flywheel.evals.matrix import arun_matrix
    from flywheel.evals.records import RunStore
    from flywheel.evals.runner import RunOptions
    from flywheel.evals.suite import discover, load_suite
    from flywheel.loop.query_router import (
        ROUTERS_DIR,
        outcomes_from_runs,
        pair_outcomes,
        routes_yaml,
        save_router,
        train_router,
    )
    from flywheel.registry import unknown_alias

    project = state.project
    models = project.config.models
    if not NAME_PATTERN.match(route_name):
        raise UserError(f"invalid route name {route_name!r}", hint="letters, digits and _.- (at most 100)")
    if route_name in models:
        raise UserError(
            f"route '{route_name}' would have the name of a model alias", hint="pick another name"
        )
    for option, alias in (("--small", small), ("--strong", strong)):
        if alias not in models:
            raise unknown_alias(alias, models, option=option)
    if small == strong:
        raise UserError(
            f"--small and --strong are both '{small}'", hint="a router chooses between two aliases"
        )
    named = project.root / "evals" / f"{suite_path}.yaml"
    a_path = "/" in suite_path or suite_path.endswith((".yaml", ".yml")) or named.exists()
    suite = None  # stored runs are found by the suite's name: with --runs, no suite file is needed
    if a_path or not runs:
        paths = discover([str(named) if named.exists() else suite_path], project)
        if len(paths) != 1:
            raise UserError(f"--suite {suite_path} names {len(paths)} suites", hint="give one suite file")
        suite = load_suite(paths[0], project)
    suite_name = suite.name if suite is not None else suite_path
    warnings: list[str] = []
    with Runtime(project, tracing=False) as rt:
        store = RunStore.open(rt)
        if runs:
            refs = [r.strip() for r in runs.split(",") if r.strip()]
            cases, rows, warnings = outcomes_from_runs(
                store, refs, suite=suite_name, small=small, strong=strong
            )
            run_ids = [str(r["id"]) for r in rows]
        else:
            assert suite is not None
            options = RunOptions(concurrency=concurrency, resume=False, progress=False)
            matrix = asyncio.run(arun_matrix(suite, rt, [small, strong], store=store, options=options))
            cases = pair_outcomes(matrix.runs[0].results, matrix.runs[1].results)
            run_ids = [r.run_id for r in matrix.runs]
    if not cases:
        raise UserError(
            f"no case of suite '{suite_name}' has an outcome for both {small} and {strong}",
            hint="give runs of the same suite with --runs, or leave it out to run the suite",
        )
    fit = train_router(cases, features=features, target_quality=target_quality, heldout=heldout, seed=seed)
    folder = out_dir or project.root / ROUTERS_DIR / route_name
    meta = {"name": route_name, "small": small, "strong": strong, "suite": suite_name, "runs": run_ids}
    save_router(folder, fit, meta)
    shown = _relative(folder, project.root)
    yaml_text = routes_yaml(route_name, shown, small, strong, fit.threshold)
    data = {
        "route": route_name,
        "small": small,
        "strong": strong,
        "suite": suite_name,
        "runs": run_ids,
        **fit.report,
        "path": str(folder),
        "routes_yaml": yaml_text,
        "warnings": warnings,
    }
    if as_json:
        emit_json(data)
        return
    _print_router(data)


def _relative(folder: Path, root: Path) -> str:
    try:
        return str(folder.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(folder.resolve())


def _print_router(data: dict[str, Any]) -> None:
    held, cases = data["heldout"], data["cases"]
    click.echo(
        f"route {data['route']} · suite {data['suite']} · small {data['small']} · strong {data['strong']}"
    )
    click.echo(
        f"cases: {cases['total']} ({cases['train']} train, {cases['heldout']} held out; the small model "
        f"fails {cases['small_fails']}) · features {data['features']} · threshold {data['threshold']:g} "
        f"(picked on the training part for {data['target_quality']:.0%} of strong quality)"
    )
    rates = held["pass_rate"]
    click.echo(
        f"held out ({held['n']} cases): {held['small_share']:.0%} sent to small · pass rate routed "
        f"{rates['routed']:.2f} vs strong {rates['strong']:.2f}, small {rates['small']:.2f}"
    )
    kept, rand = held["quality_kept"], held["quality_kept_random_same_share"]
    saved = held["cost_saved"]
    click.echo(
        f"  strong quality kept: {'-' if kept is None else f'{kept:.1%}'} (random routing, same share: "
        f"{'-' if rand is None else f'{rand:.1%}'}) · cost saved vs all-strong: "
        f"{'-' if saved is None else f'{saved:.1%}'}"
    )
    for w in data["warnings"]:
        click.secho(f"warning: {w}", fg="yellow", err=True)
    click.echo(f"saved: {data['path']}\nadd to flywheel.yaml:\n")
    click.echo(data["routes_yaml"])

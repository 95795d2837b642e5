"""`flywheel judge calibrate|versions`: measure an LLM judge against human labels and improve it.

Exit codes: 0 done, 2 a user error (unknown check or queue, no labels), 3 the judge model is unreachable.
"""

from __future__ import annotations

from typing import Any

import click

from flywheel.cli import emit_json, main


@main.group("judge")
def judge() -> None:
    """Calibrate LLM judges against human review labels (agreement κ, few-shot examples, versioned prompts)."""


@judge.command("calibrate")
@click.argument("check")
@click.option("--queue", required=True, help="Review queue (name or id) whose human labels are the truth.")
@click.option(
    "--heldout", default=0.5, show_default=True, type=float, help="Share of items held out to measure."
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the train / held-out split.")
@click.option("--model", help="Judge model alias (default: the check's, the suite's judge, else `default`).")
@click.option(
    "--no-propose", is_flag=True, help="Only add few-shot examples; do not ask for a criterion edit."
)
@click.option("--max-examples", default=8, show_default=True, type=click.IntRange(0, 50))
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def calibrate_cmd(
    state: Any,
    check: str,
    queue: str,
    heldout: float,
    seed: int,
    model: str | None,
    no_propose: bool,
    max_examples: int,
    concurrency: int,
    as_json: bool,
) -> None:
    """Run judge CHECK over the queue's labelled items, report agreement on a held-out split, improve it."""
    from flywheel.apps.runtime import Runtime
    from flywheel.errors import UserError
    from flywheel.evals.calibration import calibrate, labelled_items
    from flywheel.evals.calibration_judges import resolve_judge

    project = state.project
    if not 0 < heldout < 1:
        raise UserError(f"--heldout must be between 0 and 1 (exclusive), got {heldout}")
    ref = resolve_judge(project, check)
    if model:
        if model not in project.config.models:
            from flywheel.registry import unknown_alias

            raise unknown_alias(model, project.config.models, option="--model")
        ref.model = model
    with Runtime(project, tracing=False) as rt:
        queue_id, items = labelled_items(rt.store, queue)
        report = calibrate(
            rt.store,
            rt.gateway,
            ref,
            items,
            queue_id=queue_id,
            heldout=heldout,
            seed=seed,
            propose=not no_propose,
            max_examples=max_examples,
            concurrency=concurrency,
        )
    if as_json:
        emit_json(report)
        return
    _render(report, project.config.review.min_judge_kappa, queue)


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def _render(r: dict[str, Any], min_kappa: float, queue: str) -> None:
    """`queue` as the user named it (the report holds the queue id, which they never typed)."""
    from rich.markup import escape
    from rich.table import Table

    from flywheel.cli.console import console as make_console
    from flywheel.text import safe_display

    console = make_console()
    console.print(  # the check's name may hold a criterion the user typed: shown as text, not markup
        f"[bold]{escape(safe_display(r['check']))}[/] judged by {r['judge_model']} on queue {queue}: "
        f"{r['n']} labelled item(s), {r['n_train']} train / {r['n_heldout']} held out (seed {r['seed']})"
    )
    t = Table(show_edge=False)
    for col in ("held out", "κ", "TPR", "TNR", "tp", "fn", "fp", "tn", "no verdict"):
        t.add_column(col, justify="left" if col == "held out" else "right")
    for name in ("before", "after"):
        a = r[name]
        cm = a["confusion"]
        t.add_row(
            name,
            _num(a["kappa"]),
            _num(a["tpr"]),
            _num(a["tnr"]),
            *(str(cm[k]) for k in ("tp", "fn", "fp", "tn")),
            str(a["errors"] or ""),
        )
    console.print(t)
    console.print(
        f"  step: {r['step']} · {r['train_disagreements']} train disagreement(s) · "
        f"{r['examples']} example(s) in the prompt"
    )
    if r.get("proposed_criterion"):
        console.print(f"  proposed criterion: {escape(safe_display(r['proposed_criterion']))}")
    if r["version"] is not None:
        console.print(f"  stored as version {r['version']} — {_adoption(r)}")
    kappa = r["kappa_after"] if r["adopted"] else r["kappa_before"]
    if kappa is None:
        console.print("  [yellow]warning:[/] κ could not be measured on the held-out part: label more items")
    elif kappa < min_kappa:
        console.print(
            f"  [yellow]warning:[/] κ {_num(kappa)} is below review.min_judge_kappa {min_kappa}: "
            "label more items or sharpen the criterion"
        )


def _adoption(r: dict[str, Any]) -> str:
    if r["adopted"]:
        return "adopted: the judge uses it from now on"
    if r["kappa_after"] is None:
        return (
            "not adopted: κ on the held-out part is undefined (people and the judge gave all its items one "
            "and the same verdict); label more items"
        )
    if not r.get("prompt_changed", True):
        return "not adopted: the prompt did not change (measured only)"
    return "not adopted (κ did not improve)"


@judge.command("versions")
@click.argument("check")
@click.option("--json", "as_json", is_flag=True, help="Print the versions as JSON.")
@click.pass_obj
def versions_cmd(state: Any, check: str, as_json: bool) -> None:
    """List the calibrated versions of judge CHECK (newest last), with κ before and after each."""
    from flywheel.apps.runtime import Runtime
    from flywheel.evals.calibration_judges import resolve_judge
    from flywheel.evals.calibration_store import history

    ref = resolve_judge(state.project, check)
    with Runtime(state.project, tracing=False) as rt:
        rows = history(rt.store, ref.key)
        names = _queue_names(rt.store, {r["queue_id"] for r in rows if r["queue_id"]})
    for r in rows:  # people know a queue by its name; its id stays in the JSON for scripts
        r["queue"] = names.get(r["queue_id"], r["queue_id"])
    if as_json:
        emit_json([{k: v for k, v in r.items() if k != "metrics"} for r in rows])
        return
    if not rows:
        click.echo(f"{check}: never calibrated (flywheel judge calibrate {check} --queue Q)")
        return
    for r in rows:
        mark = "adopted" if r["adopted"] else "measured"
        click.echo(
            f"v{r['version']} {mark}: κ {_num(r['kappa_before'])} → {_num(r['kappa_after'])} "
            f"(n held out {r['n_heldout']}, queue {r['queue']}, {len(r['examples'] or [])} example(s))"
        )


def _queue_names(store: Any, ids: set[str]) -> dict[str, str]:
    """Queue id → name for the queues that still exist (a deleted queue keeps showing its id)."""
    from flywheel.errors import UserError
    from flywheel.feedback.queues import get_queue

    names = {}
    for queue_id in ids:
        try:
            names[queue_id] = get_queue(store, queue_id).name
        except UserError:
            continue
    return names

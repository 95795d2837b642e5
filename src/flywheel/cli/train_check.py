"""`flywheel train-check`: fit a cheap classifier on human review labels and register it as the check `trained`."""

from __future__ import annotations

from typing import Any

import click

from flywheel.cli import emit_json, main


@main.command("train-check")
@click.argument("name")
@click.option(
    "--queue",
    "--from-queue",
    "queue",
    required=True,
    help="Binary review queue (name or id) whose labels to learn.",
)
@click.option(
    "--features",
    default="tfidf",
    show_default=True,
    type=click.Choice(["tfidf", "embedding"]),
    help="Hashed word + char n-gram TF-IDF (CJK aware), or the local embedder's vectors.",
)
@click.option(
    "--heldout",
    default=0.3,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Share of the distinct inputs kept out of training to measure the classifier.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the train / held-out split.")
@click.option(
    "--judge",
    help="Compare with the judge whose feedback rows carry this name (default: any source=judge row).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def train_check(
    state: Any,
    name: str,
    queue: str,
    features: str,
    heldout: float,
    seed: int,
    judge: str | None,
    as_json: bool,
) -> None:
    """Train check NAME (logistic regression) on a review queue's pass / fail labels; use it as `trained: NAME`."""
    from flywheel.apps.runtime import Runtime
    from flywheel.loop.classifier import train_check as fit

    project = state.project
    with Runtime(project, tracing=False) as rt:
        embedder = rt.embedder if features == "embedding" else None
        report = fit(
            rt.store,
            project.root,
            name,
            queue,
            features=features,
            heldout=heldout,
            seed=seed,
            embedder=embedder,
            judge=judge,
        )
    if as_json:
        emit_json(report)
        return
    ex, held, vs = report["examples"], report["heldout"], report["judge"]
    click.echo(
        f"trained check {name} ({features}) on {ex['train']} item(s), measured on {ex['heldout']} held out"
    )
    for cls in ("fail", "pass"):
        m = held[cls]
        click.echo(
            f"  {cls:4}: precision {_f(m['precision'])}  recall {_f(m['recall'])}  F1 {_f(m['f1'])}"
            f"  (n={m['support']})"
        )
    click.echo(f"  κ with the human majority: {_f(held['kappa'])}")
    if vs.get("n"):
        click.echo(
            f"  vs the LLM judge on {vs['n']} item(s): agreement {_f(vs['agreement'])}, "
            f"κ {_f(vs['kappa_with_classifier'])} (judge vs humans κ {_f(vs['judge_kappa_with_humans'])})"
        )
        cost = vs.get("judge_cost_per_call_usd")
        click.echo(
            f"  cost per call: $0 vs the judge's ${cost:.6f}"
            if cost is not None
            else "  cost per call: $0 (the judge's cost was not recorded)"
        )
    else:
        click.echo("  no LLM judge verdicts on these items to compare with; cost per call: $0")
    for warning in report["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"saved {report['path']}; use it as `- trained: {name}` in a suite, a guard or monitor.online")


def _f(v: Any) -> str:
    return "—" if v is None else f"{v:.3f}"

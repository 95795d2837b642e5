"""`flywheel export`: reviewed production traces → SFT / DPO / OpenAI fine-tuning / Hugging Face / eval data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from flywheel.cli import emit_json, main


@main.command("export")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(["sft", "dpo", "eval", "openai-ft", "hf"]))
@click.argument("out", type=click.Path())
@click.option("--queue", help="Only this review queue (name or id; default: every queue).")
@click.option("--since", help="Only traces that started since: 24h, 7d, 2026-06-01, an ISO date-time or Unix seconds.")
@click.option("--app", help="Only traces of this app.")
@click.option("--verdict", default="pass", show_default=True, type=click.Choice(["pass", "fail"]),
              help="sft/hf: `pass` = passed answers and corrections, `fail` = corrections only; eval: which items.")
@click.option("--min-agreement", type=click.FloatRange(0, 1),
              help="Leave out items whose labels agree with their majority less than this share (e.g. 0.8).")
@click.option("--split", "train_share", default=0.9, show_default=True, type=click.FloatRange(0, 1, min_open=True),
              help="Train share; the rest is the holdout (no input on both sides). 1 = no holdout.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the train / holdout assignment.")
@click.option("--target", help="eval: target of a new suite (default: app:APP of the traces).")
@click.option("--keep-pii", "keep_pii", metavar="FIELD[,FIELD]",
              help="Fields whose own personal data is kept unmasked: sft/openai-ft/hf prompt, answer; dpo prompt, "
                   "chosen, rejected; eval input, context, served_answer, reference, reason; `reference` = the human "
                   "answer; all or none (default: review.keep_pii, else none). Secrets are always masked.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@click.pass_obj
def export(state: Any, fmt: str, out: str, queue: str | None, since: str | None, app: str | None, verdict: str,
           min_agreement: float | None, train_share: float, seed: int, target: str | None, keep_pii: str | None,
           as_json: bool) -> None:
    """Export reviewed traces as fine-tuning or eval data (sft, dpo, openai-ft, hf, eval) with a datasheet."""
    from flywheel.apps.runtime import Runtime
    from flywheel.cli.review import parse_when
    from flywheel.evals.promote_pii import fields_of, keep_fields
    from flywheel.loop.export import export as run_export

    project = state.project
    if keep_pii is not None:
        keep_fields(keep_pii, fields_of(fmt))  # a bad field name: exit 2 before opening anything
    path = Path(out)
    if not path.is_absolute():
        path = Path.cwd() / path
    with Runtime(project, tracing=False) as rt:
        result = run_export(rt.store, fmt, path, project=project, queue=queue, since=parse_when(since, "--since"),
                            app=app, verdict=verdict, min_agreement=min_agreement, train_share=train_share,
                            seed=seed, embedder=rt.embedder, target=target, keep_pii=keep_pii)
    if as_json:
        emit_json(result.to_dict())
        return
    counts = ", ".join(f"{v} {k}" for k, v in result.counts.items())
    click.echo(f"exported {fmt}: {counts}")
    for f in result.files:
        click.echo(f"  {f}")
    dropped = result.datasheet.get("dropped") or {}
    if any(dropped.values()):
        click.echo("  left out: " + ", ".join(f"{k} ({v})" for k, v in dropped.items() if v))
    for w in result.warnings:
        click.secho(f"  warning: {w}", fg="yellow", err=True)

"""`flywheel promote`: turn reviewed production traces into eval cases (a regression suite)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click

from flywheel.cli import emit_json, main


@main.command("promote")
@click.option("--queue", help="Review queue (name or id): its items whose human majority verdict is --verdict.")
@click.option("--verdict", default="fail", show_default=True, type=click.Choice(["fail", "pass"]),
              help="With --queue: promote the items the annotators failed, or those they passed.")
@click.option("--traces", help="Comma-separated trace ids (or unique prefixes).")
@click.option("--feedback", type=click.Choice(["negative"]), help="Traces with negative user feedback.")
@click.option("--app", help="With --feedback: only traces of this app.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1), help="With --feedback: traces.")
@click.option("--to", "to", required=True, type=click.Path(dir_okay=False), help="Suite file to create or append to.")
@click.option("--target", help="Target of a new suite (default: app:APP of the traces).")
@click.option("--judge", help="Model alias of the promoted cases' judge checks (a new suite's defaults.judge).")
@click.option("--keep-pii", "keep_pii", metavar="FIELD[,FIELD]",
              help="Case fields whose own personal data is kept unmasked: reference, input, context, served_answer, "
                   "reason, all or none (default: review.keep_pii, else none). Secrets are always masked.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@click.pass_obj
def promote(state: Any, queue: str | None, verdict: str, traces: str | None, feedback: str | None,
            app: str | None, limit: int, to: str, target: str | None, judge: str | None, keep_pii: str | None,
            as_json: bool) -> None:
    """Write eval cases from reviewed traces (--queue, --traces or --feedback negative) into suite --to."""
    from flywheel.apps.runtime import Runtime
    from flywheel.errors import UserError
    from flywheel.evals import promote_sources as sources_of
    from flywheel.evals.promote import write_suite
    from flywheel.evals.promote_pii import CASE_FIELDS, keep_fields

    project = state.project
    keep = None if keep_pii is None else keep_fields(keep_pii, CASE_FIELDS)  # a bad name: exit 2 before any work
    given = [x for x in (queue, traces, feedback) if x]
    if len(given) != 1:
        raise UserError("promote needs exactly one of --queue, --traces or --feedback negative",
                        hint="e.g. flywheel promote --queue daily --verdict fail --to evals/regressions.yaml")
    if judge and judge not in project.config.models:
        from flywheel.registry import unknown_alias

        raise unknown_alias(judge, project.config.models)
    path = suite_path(to, project.root)
    judge_alias = judge or _suite_judge(path) or "default"  # cases appended to a suite use its defaults.judge
    judged_by = project.config.models.get(judge_alias)
    if judged_by is not None and judged_by.provider == "extractive":
        click.secho(f"note: the cases' judge checks will use `{judge_alias}`, the offline extractive model, "
                    "which cannot judge; pass --judge ALIAS of a real model", fg="yellow", err=True)
    with Runtime(project, tracing=False) as rt:
        gone: list[str] = []
        if queue:
            found = sources_of.from_queue(rt.store, queue, verdict, missing=gone)
            if not found and gone:
                raise UserError(f"the {len(gone)} item(s) of queue {queue} with the human majority verdict "
                                f"{verdict} refer to traces no longer in the store: nothing to promote",
                                hint="a deleted trace has no input to replay; promote from a queue of stored traces")
            if not found:
                raise UserError(f"no item of queue {queue} has the human majority verdict {verdict}",
                                hint="see the labels with `flywheel review agreement --queue Q`")
        elif traces:
            ids = [t.strip() for t in traces.split(",") if t.strip()]
            if not ids:
                raise UserError("--traces needs at least one trace id")
            found = sources_of.from_traces(rt.store, ids)
        else:
            found = sources_of.from_feedback(rt.store, feedback or "negative", app=app, limit=limit)
        result = write_suite(project, path, found, target=target, judge=judge, embedder=rt.embedder, keep=keep)
    if as_json:  # the warnings are in it
        emit_json(result.to_dict() | {"skipped_missing": gone})
        return
    for w in result.warnings:
        click.secho(f"warning: {w}", fg="yellow", err=True)
    verb = "created" if result.created and result.written else "appended to"
    if result.written:
        click.echo(f"{verb} {shown_path(path)}: {len(result.written)} case(s) ({', '.join(result.written[:5])}"
                   f"{' …' if len(result.written) > 5 else ''})")
    else:
        click.echo(f"nothing new for {shown_path(path)}")
    if result.skipped_existing:
        click.echo(f"  skipped {len(result.skipped_existing)} trace(s) already in the suite (or near-duplicates)")
    if gone:
        click.echo(f"  skipped {len(gone)} item(s) whose trace is no longer in the store: "
                   f"{', '.join(t[:12] for t in gone[:5])}{' …' if len(gone) > 5 else ''}")
    for kept, dups in result.collapsed.items():
        click.echo(f"  {kept[:12]} stands for {len(dups)} near-duplicate(s): {', '.join(d[:12] for d in dups)}")
    if result.written:
        from flywheel.cli.app import command_prefix

        click.echo(f"run it: {command_prefix(state.project_dir)} eval {shlex.quote(shown_path(path))}")


def suite_path(given: str, root: Path) -> Path:
    """Where `--to` is: as `flywheel eval SUITE` finds a suite, relative to the current folder when the file is
    there, else to the project (a new suite is created in the project, where `flywheel eval` looks for suites)."""
    path = Path(given).expanduser()
    if path.is_absolute():
        return path
    here = Path.cwd() / path
    return here if here.is_file() else root / path


def shown_path(path: Path) -> str:
    """`path` as the user can paste it here: relative to the current folder when under it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def _suite_judge(path: Path) -> str | None:
    """The `defaults.judge` of the existing suite at `path` (None when there is none or it cannot be read: writing
    to it reports what is wrong)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    defaults = data.get("defaults") if isinstance(data, dict) else None
    alias = defaults.get("judge") if isinstance(defaults, dict) else None
    return alias if isinstance(alias, str) else None

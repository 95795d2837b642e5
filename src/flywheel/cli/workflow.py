"""`flywheel workflow run FILE.yaml --input k=v [--resume RUN_ID]` and `flywheel workflow show RUN_ID`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from flywheel.cli import emit_json, main
from flywheel.errors import UserError


@main.group("workflow")
def workflow() -> None:
    """Run YAML workflows (prompt, retrieve, tool, check, branch, map/reduce, plan steps); resume stopped runs."""


def parse_inputs(pairs: tuple[str, ...]) -> dict[str, Any]:
    """`k=v` pairs; `k=@path` reads the file's text; a value that is a JSON list or mapping is parsed."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--input {pair!r} is not NAME=VALUE", hint="e.g. --input question='How do I …?'")
        if value.startswith("@"):
            path = Path(value[1:])
            try:
                value = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UserError(f"--input {key}: cannot read {path}: {exc}", hint="give a UTF-8 text file") from None
        elif value.strip().startswith(("[", "{")):
            try:
                out[key.strip()] = json.loads(value)
                continue
            except ValueError:
                pass
        out[key.strip()] = value
    return out


@workflow.command("run")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--input", "-i", "inputs", multiple=True, metavar="NAME=VALUE",
              help="A workflow input (repeatable); NAME=@file reads a file; JSON lists/mappings are parsed.")
@click.option("--resume", "run_id", default=None, metavar="RUN_ID",
              help="Continue this run (`latest`: the newest unfinished run of this workflow): steps that finished "
                   "with the same inputs are not run again.")
@click.option("--tenant", default=None, help="Tenant for retrieve steps (default: default).")
@click.option("--json", "as_json", is_flag=True, help="Print the run (status, output, steps, cost) as JSON.")
@click.pass_obj
def run(state: Any, file: str, inputs: tuple[str, ...], run_id: str | None, tenant: str | None,
        as_json: bool) -> None:
    """Run the workflow in FILE; exit 1 when a check stopped it or a step refused."""
    from flywheel.apps.runtime import Runtime
    from flywheel.workflows import WorkflowRunner, WorkflowServices, load_workflow

    project = state.project
    path = Path(file)
    if not path.is_absolute() and not path.exists():
        path = project.root / path
    wf = load_workflow(path, root=project.root)
    given = parse_inputs(inputs)
    for name in given:  # a typed input the workflow does not declare is a typo, not something to ignore
        if wf.inputs is not None and name not in wf.inputs:
            from flywheel.registry import unknown_name

            raise unknown_name("input", name, wf.inputs, option="--input",
                               hint=f"workflow '{wf.name}' declares these under `inputs:` in {file}")
    with Runtime(project) as rt:
        services = WorkflowServices.of_runtime(rt, tenant=tenant)
        runner = WorkflowRunner(wf, services)
        if run_id == "latest":
            run_id = _latest(rt.store, wf.name, file)
        try:
            result = runner.run(given, run_id=run_id, resume=run_id is not None, tenant=tenant)
        except UserError:
            raise
        except KeyboardInterrupt:
            if not runner.run_id:
                raise
            step = f" at step '{runner.step_id}'" if runner.step_id else ""
            click.secho(f"interrupted{step}: finished steps are stored; resume with "
                        f"`flywheel workflow run {file} --resume {runner.run_id}`", fg="yellow", err=True)
            raise SystemExit(130) from None
        except Exception as exc:  # the user's step code (a tool, a python step) raised
            if not runner.step_id:
                raise  # before any step ran: a bug, with its traceback
            raise _step_failed(exc, runner, file) from None
    if as_json:
        emit_json(result.to_json())
    else:
        _print(result, file)
    if result.status != "done":
        raise SystemExit(1)


def _latest(store: Any, workflow: str, file: str) -> str:
    from flywheel.workflows.records import RunRecords

    found = RunRecords(store).latest_unfinished(workflow)
    if found is None:
        raise UserError(f"workflow '{workflow}' has no unfinished run to resume",
                        hint=f"start one with `flywheel workflow run {file} --input NAME=VALUE`")
    return found


def _step_failed(exc: Exception, runner: Any, file: str) -> UserError:
    """One line naming the step and where the user's code raised (exit 1, like a stopped run), not a traceback;
    the finished steps are stored, so the run resumes after the fix."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    at = ""
    if frames:
        last, cwd = Path(frames[-1].filename), Path.cwd()
        shown = last.relative_to(cwd) if last.is_relative_to(cwd) else last
        at = f" (at {shown}:{frames[-1].lineno} in {frames[-1].name})"
    step = f" at step '{runner.step_id}'" if runner.step_id else ""
    error = UserError(f"workflow run {runner.run_id} failed{step}: {type(exc).__name__}: {exc}{at}",
                      hint=f"fix it, then resume with `flywheel workflow run {file} --resume {runner.run_id}`")
    error.exit_code = 1
    return error


def _print(result: Any, file: str) -> None:
    from flywheel.text.display import safe_display
    from flywheel.workflows.steps import as_text

    if result.status == "done":
        click.echo(safe_display(as_text(result.output), multiline=True))
    else:
        click.secho(f"{result.status} at step '{result.stopped_by}': {safe_display(result.reason or '')}",
                    fg="yellow", err=True)
    marks = {"done": "ran", "reused": "reused", "skipped": "skipped"}
    line = ", ".join(f"{s.id} {marks.get(s.status, s.status)}" for s in result.steps)
    click.secho(f"\nsteps: {safe_display(line)}", dim=True)
    click.secho(f"run {result.run_id} · ${result.cost_usd:.6f} · trace {result.trace_id}", dim=True)
    if result.status != "done":
        click.secho(f"resume with `flywheel workflow run {file} --resume {result.run_id}`", dim=True)


@workflow.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run and its stored steps as JSON.")
@click.pass_obj
def show(state: Any, run_id: str, as_json: bool) -> None:
    """Show a workflow run: status, inputs, output and every finished step."""
    from flywheel.cli.prompts import _pad  # a Chinese step id takes two cells a character
    from flywheel.store import Store
    from flywheel.text.display import safe_display
    from flywheel.workflows.records import RunRecords, scrubbed
    from flywheel.workflows.steps import as_text

    with Store.open(state.project.store_url) as store:
        records = RunRecords(store)
        run_row = records.require(run_id)
        steps = records.steps_of(run_id)
    if as_json:
        emit_json({**run_row, "reason": scrubbed(run_row.get("reason")), "steps": steps})
        return
    click.secho(f"{run_row['workflow']} · run {run_id} · {run_row['status']}", bold=True)
    click.echo(f"inputs: {safe_display(as_text(run_row.get('inputs')))}")
    if run_row.get("reason"):
        click.echo(f"reason: {safe_display(scrubbed(run_row['reason']) or '')}")  # rows stored before scrubbing
    for s in steps:
        preview = safe_display(as_text(s["output"]))[:100]
        click.echo(f"  {_pad(safe_display(s['step_id']), 25)}{s['kind']:<9} ${s['cost_usd']:.6f}  {preview}")
    if run_row.get("output") is not None:
        click.echo(f"output: {safe_display(as_text(run_row['output']), multiline=True)}")

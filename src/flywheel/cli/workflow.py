"""`flywheel workflow run FILE.yaml --input k=v [--resume RUN_ID]`, `flywheel workflow show RUN_ID` and
`flywheel workflow runs`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from flywheel.cli import emit_json, main
from flywheel.errors import UserError


@main.group("workflow")
def workflow() -> None:
    """Run YAML workflows (prompt, retrieve, tool, check, branch, map/reduce, plan steps); resume failed,
    interrupted or killed runs."""


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
              help="Continue this failed, interrupted or killed run (`latest`: the newest such run of this "
                   "workflow): steps that finished with the same inputs are not run again.")
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
        elif run_id is not None:
            from flywheel.workflows.records import RunRecords

            run_id = RunRecords(rt.store).resolve(run_id)  # a prefix, as `workflow runs` shows ids
        if run_id is not None:
            _note_changes(rt.store, run_id, wf, file)
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

    records = RunRecords(store)
    found = records.latest_unfinished(workflow)
    if found is None:
        raise UserError(f"workflow '{workflow}' has no unfinished run to resume",
                        hint=f"start one with `flywheel workflow run {file} --input NAME=VALUE`")
    from flywheel.cli.traces import _when

    run = records.require(found)
    status = "killed" if run["status"] == "running" and _state(run, short=True) is None else run["status"]
    click.secho(f"resuming run {found} ({status}, {_when(run['updated_at'])})", dim=True, err=True)
    return found


def _note_changes(store: Any, run_id: str, wf: Any, file: str) -> None:
    """Say so when the workflow changed since the run started: its changed steps (and those after them) run
    again, the others are reused."""
    from flywheel.workflows.records import RESUMABLE, RunRecords

    row = RunRecords(store).get_run(run_id)  # a finished run is refused by the runner, without this note
    if row is not None and row["status"] in RESUMABLE and row["workflow"] == wf.name and row["version"] != wf.version:
        click.secho(f"{file} changed since run {run_id} started: steps whose settings, prompt files or "
                    "inputs changed run again; the others are reused", fg="yellow", err=True)


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


@workflow.command("show")
@click.argument("run_id")
@click.option("--step", "step_id", default=None, metavar="STEP_ID",
              help="Print this step's whole output, line breaks kept, under a line naming the step.")
@click.option("--json", "as_json", is_flag=True, help="Print the run and its stored steps, outputs whole, as JSON.")
@click.pass_obj
def show(state: Any, run_id: str, step_id: str | None, as_json: bool) -> None:
    """Show a workflow run: status, inputs, output and every finished step (a line each, cut to the terminal's
    width; `--step ID` prints one step's whole output, `--json` all of them)."""
    from flywheel.cli.console import output_width
    from flywheel.cli.prompts import _pad  # a Chinese step id takes two cells a character
    from flywheel.cli.traces import _clean, fit
    from flywheel.store import Store
    from flywheel.text.display import safe_display
    from flywheel.workflows.records import RESUMABLE, RunRecords, resume_command, scrubbed
    from flywheel.workflows.steps import as_text

    with Store.open(state.project.store_url) as store:
        records = RunRecords(store)
        run_row = records.require(run_id)  # the id, or a unique prefix of it
        run_id = run_row["run_id"]
        steps = records.steps_of(run_id)
    if step_id is not None:
        steps = _one_step(steps, step_id, run_id)
    if as_json:
        emit_json({**run_row, "reason": scrubbed(run_row.get("reason")), "steps": steps})
        return
    if step_id is not None:  # the whole text, its newlines kept, as the run's output is printed
        for s in steps:
            click.secho(f"{safe_display(s['step_id'])} · {s['kind']} · ${s['cost_usd']:.6f} · run {run_id}", bold=True)
            click.echo(safe_display(as_text(s["output"]), multiline=True))
        return
    trace = f" · trace {run_row['trace_id']}" if run_row.get("trace_id") else ""
    click.secho(f"{run_row['workflow']} · run {run_id} · {run_row['status']}{trace}", bold=True)
    click.echo(f"inputs: {safe_display(as_text(run_row.get('inputs')))}")
    state = _state(run_row)
    if state:
        click.echo(safe_display(state))
    elif run_row.get("reason"):
        click.echo(f"reason: {safe_display(scrubbed(run_row['reason']) or '')}")  # rows stored before scrubbing
    width = output_width()  # as `traces show`: cut to a terminal's width with "…", whole in a file or a pipe
    for s in steps:
        line = f"  {_pad(safe_display(s['step_id']), 25)}{s['kind']:<9} ${s['cost_usd']:.6f}  "
        click.echo(fit(line + _clean(as_text(s["output"])), width))
    if run_row.get("output") is not None:
        click.echo(f"output: {safe_display(as_text(run_row['output']), multiline=True)}")
    if run_row["status"] in RESUMABLE and not (state or "").startswith("being run"):
        click.secho(f"resume with {resume_command(run_row)}", dim=True)


def _one_step(steps: list[dict[str, Any]], step_id: str, run_id: str) -> list[dict[str, Any]]:
    """The stored rows of step `step_id` (one, or one per input when a resume ran it again with new inputs)."""
    found = [s for s in steps if s["step_id"] == step_id]
    if not found:
        from flywheel.registry import unknown_name

        raise unknown_name("step", step_id, [s["step_id"] for s in steps], option="--step",
                           hint=f"the steps run {run_id} finished are listed by `flywheel workflow show {run_id}`")
    return found


def _state(run: dict[str, Any], short: bool = False) -> str | None:
    """What a `running` run is doing: run by a live process, or left by one that is gone (killed, crashed); with
    `short`, None for the latter."""
    import time

    from flywheel.workflows.records import held_elsewhere

    if run["status"] != "running":
        return None
    busy = held_elsewhere(run, time.time())
    if busy is not None:
        return f"being run by {busy}"
    return None if short else "its process is gone (killed or crashed): it stopped mid-run"


@workflow.command("runs")
@click.option("--workflow", "name", default=None, help="Only runs of this workflow (its `name:`).")
@click.option("--last", default=20, show_default=True, type=click.IntRange(1, 10_000), help="How many runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@click.pass_obj
def runs(state: Any, name: str | None, last: int, as_json: bool) -> None:
    """List recent workflow runs (newest first) with their state: done, stopped, refused (finished), or failed,
    interrupted, running (resumable; a `running` run whose process is gone was killed)."""
    from flywheel.store import Store
    from flywheel.text.display import safe_display
    from flywheel.workflows.records import RunRecords, scrubbed

    with Store.open(state.project.store_url) as store:
        rows = RunRecords(store).recent(name, last)
    if as_json:
        emit_json([{**r, "reason": scrubbed(r.get("reason"))} for r in rows])
        return
    if not rows:
        of = f" of workflow '{name}'" if name else ""
        click.echo(f"no workflow runs{of} yet: start one with `flywheel workflow run FILE.yaml --input NAME=VALUE`")
        return
    from rich.cells import cell_len

    from flywheel.cli.console import UNLIMITED_WIDTH, output_width
    from flywheel.cli.prompts import _pad
    from flywheel.cli.traces import _when, fit

    # on a terminal a long name or reason is cut, with "…"; in a file, a pipe or a CI log it stays whole
    whole = output_width() >= UNLIMITED_WIDTH
    names = {r["run_id"]: safe_display(r["workflow"]) for r in rows}
    name_width = max(20, *map(cell_len, names.values())) if whole else 20
    click.echo(f"{'run':<32}  {'updated':<11}  {_pad('workflow', name_width + 2)}{'status':<11}  {'cost $':<9}  why")
    for r in rows:
        live = _state(r, short=True)
        status = r["status"] if r["status"] != "running" or live else "killed"  # its process is gone
        why = live or ("" if r["status"] == "running" else scrubbed(r.get("reason")) or "")
        line = (f"{r['run_id']:<32}  {_when(r['updated_at']):<11}  {_pad(fit(names[r['run_id']], name_width), name_width + 2)}"
                f"{status:<11}  {r['cost_usd']:<9.6f}  {safe_display(why)}")
        click.echo(line.rstrip() if whole else fit(line, 240).rstrip())

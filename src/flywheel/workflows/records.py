"""Runs and finished steps in the store (tables in store/schema_workflows.py).

Each finished step is written at once, in its own transaction (not through the background writer): a run
killed a moment later still finds it when resumed.

A run being run is held by one process: while `running`, its `reason` names the holder (`running: HOST:PID:…`)
and each finished step refreshes `updated_at`. Another process may take the run over only when the holder is gone
(a process of this host that no longer runs) or, for a holder on another host, after STALE_S without a finished
step; the take-over is a compare-and-set, so two processes resuming one run at once never both run it.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from flywheel.errors import UserError
from flywheel.protocols import StoreLike
from flywheel.store.leases import process_gone, worker_id
from flywheel.text.secrets import scrub_secrets

RESUMABLE = ("running", "interrupted", "failed")  # done, stopped and refused runs are finished
HOLDER = "running: "  # the `reason` of a running run: the process that runs it
STALE_S = 600.0  # a holder on another host with no finished step for this long is taken to be gone


def _tables(store: StoreLike) -> tuple[Any, Any]:
    from flywheel.store.schema_workflows import workflow_runs, workflow_steps

    return workflow_runs, workflow_steps


def _clean(value: Any) -> Any:
    """What a run stores: secrets scrubbed from text (inputs and outputs may quote a key)."""
    if isinstance(value, str):
        return scrub_secrets(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return scrub_secrets(str(value))


class RunRecords:
    def __init__(self, store: StoreLike):
        self.store = store
        self.runs, self.steps = _tables(store)

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(self.runs).where(self.runs.c.run_id == run_id)).mappings().first()
        return dict(row) if row is not None else None

    def start(self, run_id: str, workflow: str, version: str, source: str | None, inputs: dict[str, Any],
              tenant: str | None) -> None:
        """Create or take over the run for this process; a UserError when another process is running it."""

        now, holder = time.time(), HOLDER + worker_id()
        values = {"status": "running", "version": version, "inputs": _clean(inputs), "reason": holder,
                  "updated_at": now}
        run = self.get_run(run_id)
        if run is None:
            try:
                with self.store.engine.begin() as conn:
                    conn.execute(insert(self.runs).values(run_id=run_id, workflow=workflow, source=source,
                                                          tenant=tenant, created_at=now, **values))
                return
            except IntegrityError:  # created a moment ago by another process
                run = self.require(run_id)
        busy = held_elsewhere(run, now)
        if busy is None:
            c = self.runs.c
            same = [c.run_id == run_id, c.status == run["status"], c.updated_at == run["updated_at"],
                    c.reason.is_(None) if run["reason"] is None else c.reason == run["reason"]]
            with self.store.engine.begin() as conn:
                if conn.execute(update(self.runs).where(*same).values(**values)).rowcount == 1:
                    return
            busy = "another process started it a moment ago"
        raise UserError(f"workflow run '{run_id}' is being run by another process ({busy})",
                        hint=f"wait for it to finish (`flywheel workflow show {run_id}` shows its state): two "
                             "processes running one run would run its steps twice")

    def set_trace(self, run_id: str, trace_id: str) -> None:
        """The trace of the attempt now running (a killed run's trace is found from `flywheel workflow show`)."""
        with self.store.engine.begin() as conn:
            conn.execute(update(self.runs).where(self.runs.c.run_id == run_id).values(trace_id=trace_id))

    def finish(self, run_id: str, status: str, output: Any, reason: str | None, trace_id: str | None,
               cost_usd: float) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(update(self.runs).where(self.runs.c.run_id == run_id).values(
                status=status, output=_clean(output), reason=scrubbed(reason), trace_id=trace_id, updated_at=time.time(),
                cost_usd=self.runs.c.cost_usd + cost_usd))

    def finished_steps(self, run_id: str) -> dict[tuple[str, str], Any]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(self.steps.c.step_id, self.steps.c.input_hash, self.steps.c.output)
                                .where(self.steps.c.run_id == run_id)).all()
        return {(r.step_id, r.input_hash): r.output for r in rows}

    def save_step(self, run_id: str, step_id: str, input_hash: str, kind: str, output: Any, cost_usd: float,
                  latency_ms: float) -> None:
        now = time.time()
        try:
            with self.store.engine.begin() as conn:
                conn.execute(insert(self.steps).values(
                    run_id=run_id, step_id=step_id, input_hash=input_hash, kind=kind, output=_clean(output),
                    cost_usd=cost_usd, latency_ms=latency_ms, created_at=now))
                # the holder is alive (see STALE_S)
                conn.execute(update(self.runs).where(self.runs.c.run_id == run_id).values(updated_at=now))
        except IntegrityError:
            pass  # the same step with the same inputs finished twice (a run taken over): keep the first

    def steps_of(self, run_id: str) -> list[dict[str, Any]]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(self.steps).where(self.steps.c.run_id == run_id)
                                .order_by(self.steps.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def latest_unfinished(self, workflow: str) -> str | None:
        """The id of the newest run of `workflow` that did not finish (failed, interrupted, or killed while
        running), for `--resume latest`."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(self.runs.c.run_id)
                               .where(self.runs.c.workflow == workflow, self.runs.c.status.in_(RESUMABLE))
                               .order_by(self.runs.c.updated_at.desc()).limit(1)).first()
        return str(row.run_id) if row is not None else None

    def recent(self, workflow: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The newest runs first (of one workflow when given), without their inputs and outputs."""
        c = self.runs.c
        q = select(c.run_id, c.workflow, c.status, c.reason, c.cost_usd, c.trace_id, c.created_at, c.updated_at)
        if workflow is not None:
            q = q.where(c.workflow == workflow)
        with self.store.engine.connect() as conn:
            rows = conn.execute(q.order_by(c.updated_at.desc()).limit(limit)).mappings().all()
        return [dict(r) for r in rows]

    def resolve(self, run_id: str) -> str:
        """The run id `run_id` names: itself when stored, else the one run whose id starts with it (at least 6
        characters, as `flywheel workflow runs` and `traces` show them shortened); unchanged when none does."""
        if len(run_id) < 6 or self.get_run(run_id) is not None:
            return run_id
        c = self.runs.c
        pattern = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self.store.engine.connect() as conn:
            found = list(conn.scalars(select(c.run_id).where(c.run_id.like(pattern, escape="\\")).limit(3)))
        if len(found) > 1:
            raise UserError(f"run id prefix '{run_id}' matches {len(found)} workflow runs "
                            f"({', '.join(sorted(found)[:2])} …)", hint="give more characters of the run id")
        return found[0] if found else run_id

    def require(self, run_id: str) -> dict[str, Any]:
        run = self.get_run(self.resolve(run_id))
        if run is None:
            raise UserError(f"no workflow run '{run_id}' in the store",
                            hint="copy the run id printed by `flywheel workflow run`")
        return run


def not_resumable(run: dict[str, Any]) -> UserError | None:
    """Why `run` cannot be resumed (it finished: done, stopped by a check, refused), saying what to do instead;
    None for a run that can resume (failed, interrupted, killed)."""
    status, run_id = run["status"], run["run_id"]
    if status in RESUMABLE:
        return None
    if status == "done":
        what = ": it finished, there is nothing to resume"
    else:
        why = f" ({scrubbed(run.get('reason'))})" if run.get("reason") else ""
        what = f"{why}: a {status} run is finished, resuming it would end the same way"
    return UserError(f"workflow run '{run_id}' is {status}{what}; start a new run instead: {again(run)}",
                     hint=f"`flywheel workflow show {run_id}` shows its steps and output")


def again(run: dict[str, Any]) -> str:
    """How to start a new run like `run`: the command with its inputs (a long, multi-line or unprintable one
    elided)."""
    import shlex

    from flywheel.workflows.steps import as_text

    path = _file(run)
    if path is None:
        return f"run workflow '{run['workflow']}' without resuming"
    shown = []
    for name, value in (run.get("inputs") or {}).items():
        text = as_text(value)
        shown.append(shlex.quote(f"{name}={text}") if len(text) <= 60 and text.isprintable() else f"{name}=…")
    return " ".join(["`flywheel workflow run", shlex.quote(path), *(f"--input {s}" for s in shown)]) + "`"


def resume_command(run: dict[str, Any]) -> str:
    import shlex

    path = _file(run)
    if path is None:
        return f"`run(run_id={run['run_id']!r}, resume=True)` of workflow '{run['workflow']}'"
    return f"`flywheel workflow run {shlex.quote(path)} --resume {run['run_id']}`"


def _file(run: dict[str, Any]) -> str | None:
    """The workflow file of a run (its `source` is FILE:LINE), None for a workflow built in Python."""
    source = str(run.get("source") or "")
    if not source:
        return None
    path, _, line = source.rpartition(":")
    return path if path and line.isdigit() else source


def held_elsewhere(run: dict[str, Any], now: float) -> str | None:
    """Which process holds a `running` run while it may still be running it; None when the run can be taken."""
    import socket


    reason = run.get("reason") or ""
    if run["status"] != "running" or not reason.startswith(HOLDER):
        return None  # not running, or left `running` by a version that did not record its holder
    worker = reason[len(HOLDER):]
    if process_gone(worker):  # a process of this host that no longer runs (killed, crashed)
        return None
    host, pid = ([*worker.rsplit(":", 2), "?"])[:2]
    here = host == socket.gethostname()[:120]
    idle = now - float(run["updated_at"] or 0)
    if not here and idle >= STALE_S:
        return None
    return f"process {pid} on {'this host' if here else host}, updated {idle:.0f} s ago"


def scrubbed(reason: str | None) -> str | None:
    """A run's reason without credentials: a failed step's exception may quote a connection URL or an API key."""
    from flywheel.text.secrets import scrub_secrets, secret_env_values

    return scrub_secrets(reason, values=secret_env_values()) if reason else reason


def runs_of_traces(store: StoreLike, trace_ids: list[str]) -> dict[str, dict[str, Any]]:
    """trace id → the workflow run it traced, for traces whose steps name their run (a trace whose root span
    never ended, its process killed mid-run, shows the run's name and inputs from here)."""
    from flywheel.store.schema import spans

    if not trace_ids:
        return {}
    runs: dict[str, str] = {}
    with store.engine.connect() as conn:
        for row in conn.execute(select(spans.c.trace_id, spans.c.attributes)
                                .where(spans.c.trace_id.in_(trace_ids), spans.c.name.like("step %"))):
            run_id = (row.attributes or {}).get("flywheel.workflow.run_id")
            if isinstance(run_id, str) and run_id:
                runs.setdefault(row.trace_id, run_id)
    records = RunRecords(store)
    found = {trace: records.get_run(run_id) for trace, run_id in runs.items()}
    return {trace: run for trace, run in found.items() if run is not None}


def name_incomplete_runs(store: StoreLike, rows: list[dict[str, Any]]) -> None:
    """Trace list rows (`flywheel traces`, the dashboard): a workflow run killed mid-way never ended its root span,
    so its row has a step's name and inputs; give it the workflow's name and the run's inputs instead."""
    from flywheel.tracing.store_sink import preview

    incomplete = [r for r in rows if r.get("status") == "incomplete"]
    runs = runs_of_traces(store, [r["trace_id"] for r in incomplete])
    for r in incomplete:
        run = runs.get(r["trace_id"])
        if run is not None:
            r["name"], r["app"] = f"workflow {run['workflow']}", run["workflow"]
            r["input_preview"] = preview(run.get("inputs") or {})

"""Runs and finished steps in the store (tables in store/schema_workflows.py).

Each finished step is written at once, in its own transaction (not through the background writer): a run
killed a moment later still finds it when resumed.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from flywheel.errors import UserError
from flywheel.protocols import StoreLike
from flywheel.text.secrets import scrub_secrets


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
        now = time.time()
        with self.store.engine.begin() as conn:
            if conn.execute(select(self.runs.c.run_id).where(self.runs.c.run_id == run_id)).first() is None:
                conn.execute(insert(self.runs).values(
                    run_id=run_id, workflow=workflow, version=version, source=source, inputs=_clean(inputs),
                    status="running", tenant=tenant, created_at=now, updated_at=now))
            else:
                conn.execute(update(self.runs).where(self.runs.c.run_id == run_id).values(
                    status="running", version=version, inputs=_clean(inputs), updated_at=now))

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
        try:
            with self.store.engine.begin() as conn:
                conn.execute(insert(self.steps).values(
                    run_id=run_id, step_id=step_id, input_hash=input_hash, kind=kind, output=_clean(output),
                    cost_usd=cost_usd, latency_ms=latency_ms, created_at=time.time()))
        except IntegrityError:
            pass  # the same step with the same inputs finished twice (two resumes at once): keep the first

    def steps_of(self, run_id: str) -> list[dict[str, Any]]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(self.steps).where(self.steps.c.run_id == run_id)
                                .order_by(self.steps.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def latest_unfinished(self, workflow: str) -> str | None:
        """The id of the newest run of `workflow` that did not finish (stopped, failed, interrupted, or killed while
        running), for `--resume latest`."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(self.runs.c.run_id)
                               .where(self.runs.c.workflow == workflow, self.runs.c.status != "done")
                               .order_by(self.runs.c.updated_at.desc()).limit(1)).first()
        return str(row.run_id) if row is not None else None

    def require(self, run_id: str) -> dict[str, Any]:
        run = self.get_run(run_id)
        if run is None:
            raise UserError(f"no workflow run '{run_id}' in the store",
                            hint="copy the run id printed by `flywheel workflow run`")
        return run


def scrubbed(reason: str | None) -> str | None:
    """A run's reason without credentials: a failed step's exception may quote a connection URL or an API key."""
    from flywheel.text.secrets import scrub_secrets, secret_env_values

    return scrub_secrets(reason, values=secret_env_values()) if reason else reason

"""Eval runs and results in the store (tables `eval_runs`, `eval_results`): write, resume, read back."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select, update

from flywheel.errors import UserError
from flywheel.types import CheckResult


@dataclass
class CaseRun:
    """One execution of one case (a case runs `repeat` times)."""

    case_id: str
    repeat_index: int
    passed: bool
    score: float
    output: str | None
    checks: list[CheckResult] = field(default_factory=list)
    error: str | None = None
    input: str = ""
    vars: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None
    trace_id: str | None = None
    models: list[str] = field(default_factory=list)
    prompt_versions: list[str] = field(default_factory=list)

    def row(self, run_id: str) -> dict[str, Any]:
        return {
            "run_id": run_id,
            "case_id": self.case_id,
            "repeat_index": self.repeat_index,
            "passed": self.passed,
            "score": self.score,
            "input": self.input,
            "output": self.output,
            "reference": self.reference,
            "vars": self.vars,
            "error": self.error,
            "checks": [c.model_dump(mode="json") for c in self.checks],
            "latency_ms": self.latency_ms,
            "cost_usd": self.cost_usd,
            "trace_id": self.trace_id,
            "created_at": time.time(),
        }

    @classmethod
    def from_row(cls, row: Any) -> CaseRun:
        return cls(
            case_id=row["case_id"],
            repeat_index=row["repeat_index"],
            passed=bool(row["passed"]),
            score=row["score"],
            output=row["output"],
            error=row["error"],
            input=row["input"] or "",
            vars=row["vars"] or {},
            reference=row["reference"],
            latency_ms=row["latency_ms"],
            cost_usd=row["cost_usd"],
            trace_id=row["trace_id"],
            checks=[CheckResult.model_validate(c) for c in row["checks"] or []],
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["checks"] = [c.model_dump(mode="json") for c in self.checks]
        return d


class RunStore:
    """Reads and writes eval runs of one store. Results go through the store's batched background writer."""

    def __init__(self, store: Any):
        self.store = store
        self.runs = store.table("eval_runs")
        self.results = store.table("eval_results")

    def create(self, run_id: str, **fields: Any) -> None:
        with self.store.begin() as conn:
            conn.execute(
                self.runs.insert().values(id=run_id, status="running", started_at=time.time(), **fields)
            )

    def resumable(self, fingerprint: str) -> str | None:
        """The newest unfinished run with this fingerprint (same suite, versions and options)."""
        q = (
            select(self.runs.c.id)
            .where(self.runs.c.fingerprint == fingerprint, self.runs.c.status == "running")
            .order_by(self.runs.c.started_at.desc())
            .limit(1)
        )
        with self.store.connect() as conn:
            return conn.execute(q).scalar()

    def save(self, run_id: str, result: CaseRun) -> None:
        self.store.writer.submit(self.results, result.row(run_id))

    def flush(self) -> None:
        self.store.flush()

    def finish(self, run_id: str, pass_rate: float, summary: dict[str, Any]) -> None:
        self.flush()
        with self.store.begin() as conn:
            conn.execute(
                update(self.runs)
                .where(self.runs.c.id == run_id)
                .values(status="finished", finished_at=time.time(), pass_rate=pass_rate, summary=summary)
            )

    def load_results(self, run_id: str) -> list[CaseRun]:
        q = select(self.results).where(self.results.c.run_id == run_id).order_by(self.results.c.id)
        with self.store.connect() as conn:
            return [CaseRun.from_row(r) for r in conn.execute(q).mappings()]

    def get(self, ref: str) -> dict[str, Any]:
        """A run by id or unique id prefix (at least 4 characters), or `latest` / `previous`."""
        with self.store.connect() as conn:
            if ref in ("latest", "previous"):
                q = select(self.runs).order_by(self.runs.c.started_at.desc()).limit(2)
                rows = list(conn.execute(q).mappings())
                index = 0 if ref == "latest" else 1
                if len(rows) <= index:
                    raise UserError(f"there is no {ref} eval run", hint="run `flywheel eval` first")
                return dict(rows[index])
            if len(ref) < 4:
                raise UserError(
                    f"run id `{ref}` is too short", hint="give at least 4 characters of the run id"
                )
            rows = list(
                conn.execute(select(self.runs).where(self.runs.c.id.like(f"{ref}%")).limit(2)).mappings()
            )
        if not rows:
            raise UserError(f"no eval run `{ref}`", hint="list runs with `flywheel eval --list`")
        if len(rows) > 1:
            raise UserError(f"run id prefix `{ref}` is ambiguous", hint="give more characters of the run id")
        return dict(rows[0])

    def previous(self, run_id: str, suite: str, model: str | None) -> dict[str, Any] | None:
        """The finished run of the same suite (and model) that started before `run_id`, for report diffs."""
        with self.store.connect() as conn:
            before = conn.execute(select(self.runs.c.started_at).where(self.runs.c.id == run_id)).scalar()
        if before is None:
            return None
        q = (
            select(self.runs)
            .where(
                self.runs.c.suite == suite,
                self.runs.c.status == "finished",
                self.runs.c.started_at < before,
                self.runs.c.id != run_id,
            )
            .order_by(self.runs.c.started_at.desc())
            .limit(1)
        )
        q = q.where(self.runs.c.model.is_(None) if model is None else self.runs.c.model == model)
        with self.store.connect() as conn:
            row = conn.execute(q).mappings().first()
        return dict(row) if row else None

    def list(self, last: int = 20) -> list[dict[str, Any]]:
        q = select(self.runs).order_by(self.runs.c.started_at.desc()).limit(last)
        with self.store.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

"""Model matrix: run one suite once per model alias and put pass rate, cost and latency side by side.

The cheapest model that meets the suite's threshold is marked (lowest total cost; ties go to the lower
median latency). Models run one after another so their latencies do not disturb each other.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from flywheel.errors import UserError
from flywheel.evals.runner import RunOptions, RunSummary, arun_suite
from flywheel.evals.suite import Suite
from flywheel.registry import unknown_alias


@dataclass
class Matrix:
    suite: str
    threshold: float
    runs: list[RunSummary]

    @property
    def cheapest(self) -> str | None:
        ok = [s for s in self.runs if s.meets_threshold]
        if not ok:
            return None
        best = min(ok, key=lambda s: (s.cost_usd, s.latency_ms["p50"] or 0.0))
        return best.model

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "model": s.model,
                "run_id": s.run_id,
                "pass_rate": s.pass_rate,
                "pass_rate_ci95": s.pass_rate_ci95,
                "passed": s.passed,
                "executions": s.executions,
                "meets_threshold": s.meets_threshold,
                "cost_usd": s.cost_usd,
                "cost_per_case": round(s.cost_usd / s.executions, 8) if s.executions else None,
                "latency_ms": s.latency_ms,
                "errors": s.errors,
                "flaky": len(s.flaky),
            }
            for s in self.runs
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "threshold": self.threshold,
            "models": self.rows(),
            "cheapest_meeting_threshold": self.cheapest,
        }


def parse_models(value: str, known: dict[str, Any]) -> list[str]:
    models = [m.strip() for m in value.split(",") if m.strip()]
    if not models:
        raise UserError("--models is empty", hint="write --models small,strong")
    unknown = [m for m in models if m not in known]
    if unknown:
        raise unknown_alias(unknown[0], known, used_by="--models")
    return list(dict.fromkeys(models))


async def arun_matrix(
    suite: Suite, runtime: Any, models: list[str], *, store: Any = None, options: RunOptions | None = None
) -> Matrix:
    opts = options or RunOptions()
    runs = [await arun_suite(suite, runtime, store=store, options=replace(opts, model=m)) for m in models]
    return Matrix(suite.name, suite.threshold, runs)

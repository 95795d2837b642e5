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
        raise unknown_alias(unknown[0], known, option="--models")
    return list(dict.fromkeys(models))


async def arun_matrix(
    suite: Suite, runtime: Any, models: list[str], *, store: Any = None, options: RunOptions | None = None
) -> Matrix:
    opts = options or RunOptions()
    runs = [await arun_suite(suite, runtime, store=store, options=replace(opts, model=m)) for m in models]
    return Matrix(suite.name, suite.threshold, runs)


# ---------------------------------------------------------------- strategies side by side


class StrategyRuntime:
    """The runtime as one strategy's run sees it: its gateway answers with the strategy (judge calls of checks
    and guards pass through, see `StrategyGateway`), apps are built on that gateway; the rest is the runtime's."""

    def __init__(self, runtime: Any, spec: Any):
        from flywheel.gateway.strategies import StrategyGateway

        self._runtime = runtime
        self.gateway = StrategyGateway(runtime.gateway, spec)

    def app(self, name: str = "docs_qa", *, cache: bool = True) -> Any:
        from flywheel.apps.registry import build_app

        return build_app(self, name, cache=cache)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        if name == "_runtime":
            raise AttributeError(name)
        return getattr(self._runtime, name)


@dataclass
class StrategyComparison:
    suite: str
    threshold: float
    strategies: list[str]
    runs: list[RunSummary]

    @property
    def best(self) -> str | None:
        """Highest pass rate; ties go to the cheaper, then the faster strategy."""
        if not self.runs:
            return None
        ranked = sorted(zip(self.strategies, self.runs, strict=True),
                        key=lambda p: (-p[1].pass_rate, p[1].cost_usd, p[1].latency_ms["p50"] or 0.0))
        return ranked[0][0]

    def rows(self) -> list[dict[str, Any]]:
        rows = Matrix(self.suite, self.threshold, self.runs).rows()
        for row, strategy in zip(rows, self.strategies, strict=True):
            row["strategy"] = strategy
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "threshold": self.threshold, "strategies": self.rows(), "best": self.best}


def parse_strategy_list(value: str, known: dict[str, Any]) -> list[Any]:
    """`--strategies none,self_consistency:5` → specs; the aliases they name must exist."""
    from flywheel.gateway.strategies import parse_strategies

    specs = parse_strategies(value, where="--strategies")
    for spec in specs:
        for alias in spec.aliases_used():
            if alias not in known:
                raise unknown_alias(alias, known, used_by=f"--strategies {spec}")
    return specs


async def arun_strategies(
    suite: Suite, runtime: Any, specs: list[Any], *, store: Any = None, options: RunOptions | None = None
) -> StrategyComparison:
    """The suite once per strategy, one after another. A strategy's runs are stored under the suite name with
    the strategy appended (`smoke [self_consistency:5]`), so each resumes and compares with its own history;
    `none` is the plain run."""
    opts = options or RunOptions()
    # a workflow's model steps call the runtime's gateway, so they answer with the strategy like an app does
    if suite.target.kind not in ("app", "model", "workflow") and any(s.name != "none" for s in specs):
        raise UserError(
            f"--strategies needs an app:, model: or workflow: target; {suite.path} targets {suite.target.name}",
            where=suite.target.where,
            hint=("apply a strategy inside your function (flywheel.gateway.strategies), or drop --strategies"
                  if suite.target.kind == "python" else "drop --strategies"),
        )
    runs = []
    for spec in specs:
        if spec.name == "none":
            runs.append(await arun_suite(suite, runtime, store=store, options=opts))
        else:
            named = replace(suite, name=f"{suite.name} [{spec}]")
            runs.append(await arun_suite(named, StrategyRuntime(runtime, spec), store=store, options=opts))
    return StrategyComparison(suite.name, suite.threshold, [str(s) for s in specs], runs)

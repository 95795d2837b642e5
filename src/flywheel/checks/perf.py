"""Performance checks on what the call cost: `latency: 2000` (ms, at most) and `cost: 0.002` (USD, at most).

Both read the context (`ctx.latency_ms`, `ctx.cost_usd`), which the eval runner and the guards fill in.
When the value was not recorded the result is an error, never a silent pass.
"""

from __future__ import annotations

from typing import Any

from flywheel.checks.base import Check, CheckContext, register
from flywheel.types import CheckResult


class _AtMost(Check):
    field = ""
    unit = ""

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        if isinstance(arg, bool) or not isinstance(arg, int | float) or arg < 0:
            raise ValueError(f"{self.name} needs a number ≥ 0 ({self.unit}), got {arg!r}")
        self.limit = float(arg)

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        value = getattr(ctx, self.field)
        if value is None:
            return CheckResult(
                passed=False,
                score=0.0,
                reason=f"no {self.field} recorded for this output",
                error=f"{self.field} unknown",
            )
        ok = value <= self.limit
        score = 1.0 if ok else (self.limit / value if value else 0.0)
        return CheckResult(
            passed=ok,
            score=score,
            reason=f"{value:g} {self.unit} {'≤' if ok else '>'} {self.limit:g} {self.unit}",
            details={self.field: value},
        )


@register
class Latency(_AtMost):
    """latency: MS — the call took at most MS milliseconds."""

    name = "latency"
    field = "latency_ms"
    unit = "ms"


@register
class Cost(_AtMost):
    """cost: USD — the call cost at most USD dollars."""

    name = "cost"
    field = "cost_usd"
    unit = "USD"

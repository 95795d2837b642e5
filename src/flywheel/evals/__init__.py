"""Evals: YAML suites, the async runner, pairwise comparison, regression against traces, reports, pytest.

In a Python test, state expectations with the same checks the suites use:

    from flywheel.evals import assert_checks
    assert_checks(answer.text, [{"contains": "version"}, {"max_words": 120}, "not-is-json"])
"""

from __future__ import annotations

from typing import Any

from flywheel.checks.base import Check, CheckContext, from_entry
from flywheel.types import CheckResult


def assert_checks(
    output: str,
    checks: list[Any],
    *,
    input: str = "",
    reference: str | None = None,
    vars: dict[str, Any] | None = None,
    sources: list[str] | None = None,
    latency_ms: float | None = None,
    cost_usd: float | None = None,
    services: Any = None,
) -> list[CheckResult]:
    """Run checks (YAML-style entries or Check objects) on `output`; AssertionError listing every failure.

    Returns the results when all pass. A check that could not run (e.g. an LLM judge without a gateway)
    counts as failed, with its error in the message.
    """
    built = [c if isinstance(c, Check) else from_entry(c) for c in checks]
    ctx = CheckContext(
        input=input,
        vars=vars or {},
        reference=reference,
        sources=sources or [],
        latency_ms=latency_ms,
        cost_usd=cost_usd,
        services=services,
    )
    results = [c.run(output, ctx) for c in built]
    failed = [r for r in results if not r.passed]
    if failed:
        lines = [f"  - {r.name}: {r.error or r.reason}" for r in failed]
        preview = output if len(output) <= 200 else output[:199] + "…"
        raise AssertionError(
            f"{len(failed)} of {len(results)} checks failed on {preview!r}:\n" + "\n".join(lines)
        )
    return results


__all__ = ["assert_checks"]

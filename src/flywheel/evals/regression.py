"""Regression against production: replay the questions of N sampled stored traces through the current app
(with today's prompt, model and configuration) and judge, pairwise with position swap, the new answer (A)
against the answer that was served (B).

Traces are sampled at random (seeded) from the app's most recent successful traces. The replays run with
tracing off so they never become "production traces" themselves.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from flywheel.errors import UserError
from flywheel.evals.pairwise import Pair, compare_pairs
from flywheel.tracing.query import get_trace, list_traces

POOL_FACTOR = 10  # sample from the newest N × POOL_FACTOR traces


def served(trace: dict[str, Any]) -> tuple[str, str] | None:
    """(question, served answer) from a stored app trace's root span, or None when either is missing."""
    for root in trace.get("spans") or []:
        inputs, outputs = root.get("inputs"), root.get("outputs")
        question = inputs.get("question") if isinstance(inputs, dict) else inputs
        answer = outputs.get("text") if isinstance(outputs, dict) else outputs
        if isinstance(question, str) and question.strip() and isinstance(answer, str):
            return question, answer
    return None


def sample_traces(store: Any, n: int, app: str, seed: int = 0) -> list[dict[str, Any]]:
    pool = [t for t in list_traces(store, last=max(n * POOL_FACTOR, n), app=app) if t.get("status") == "ok"]
    if not pool:
        raise UserError(
            f"no stored traces of app '{app}' to replay",
            hint="serve some traffic first (`flywheel ask`, `flywheel serve`), or check --app",
        )
    chosen = random.Random(seed).sample(pool, min(n, len(pool)))
    out = []
    for row in chosen:
        trace = get_trace(store, row["trace_id"])
        if trace is not None:
            out.append(trace)
    return out


async def against_traces(
    runtime: Any,
    n: int,
    judge: str,
    *,
    app: str = "docs_qa",
    seed: int = 0,
    max_length_diff: float | None = None,
    length_action: str = "flag",
    concurrency: int = 8,
) -> dict[str, Any]:
    if n < 1:
        raise UserError("--against-traces needs a number of traces ≥ 1")
    runtime.gateway.resolve(judge)
    traces = sample_traces(runtime.store, n, app, seed)
    current = runtime.app(app)
    sem = asyncio.Semaphore(concurrency)

    async def replay(trace: dict[str, Any]) -> Pair | None:
        found = served(trace)
        if found is None:
            return None
        question, old = found
        async with sem:
            answer = await current.arun(question, trace.get("tenant"))
        return Pair(case_id=trace["trace_id"][:12], question=question, a=answer.text, b=old)

    pairs = [p for p in await asyncio.gather(*(replay(t) for t in traces)) if p is not None]
    if not pairs:
        raise UserError(
            f"none of the sampled traces of app '{app}' recorded both a question and an answer",
            hint="tracing must capture content (tracing.capture_content: true)",
        )
    report = await compare_pairs(
        pairs,
        runtime.gateway,
        judge,
        a="current",
        b="served",
        max_length_diff=max_length_diff,
        length_action=length_action,
        concurrency=concurrency,
    )
    report["traces_sampled"] = len(traces)
    report["app"] = app
    return report

"""Regression against production: replay N sampled stored traces through the current app (with today's
prompt, model and configuration) and judge, pairwise with position swap, the new answer (A) against the
answer that was served (B).

Works for every app kind: the replay carries the stored context of the trace — its input (`question`,
`message`, `input` … or the last user turn of `messages`, passed whole to apps that take `messages=`) and
its tenant. Traces are sampled at random (seeded) from the app's most recent successful traces whose root is
the app itself. Each replay is its own trace: an `eval.replay` span (kind `eval`, attribute
`flywheel.replay_of` = the original trace id) with the app's spans under it, so replays are inspectable but
never sampled as production traffic. The app runs without the response cache unless `cache=True`, so the
answer is today's, not yesterday's from the cache.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from dataclasses import dataclass
from typing import Any

from flywheel.errors import UserError
from flywheel.evals.pairwise import Pair, compare_pairs
from flywheel.tracing import tracer
from flywheel.tracing.query import get_trace, list_traces

INPUT_KEYS = ("question", "message", "input", "query", "prompt")
ANSWER_KEYS = ("text", "answer", "output", "content")
POOL_FACTOR = 10  # sample from the newest N × POOL_FACTOR traces


@dataclass
class Served:
    """What a stored trace says was asked and answered."""

    trace_id: str
    question: str
    answer: str
    tenant: str | None = None
    messages: list[dict[str, Any]] | None = None  # the conversation, when the app recorded one


def served(trace: dict[str, Any]) -> Served | None:
    """The stored context of an app trace's root span, or None when its input or answer is missing."""
    for root in trace.get("spans") or []:
        inputs, outputs = root.get("inputs"), root.get("outputs")
        question, messages = _input_of(inputs)
        answer = _first(outputs, ANSWER_KEYS)
        if question and answer is not None:
            attrs = root.get("attributes") or {}
            tenant = trace.get("tenant") or attrs.get("flywheel.tenant")
            return Served(trace["trace_id"], question, answer, tenant, messages)
    return None


def _first(value: Any, keys: tuple[str, ...]) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in keys:
            if isinstance(value.get(key), str):
                return value[key]
    return None


def _input_of(inputs: Any) -> tuple[str | None, list[dict[str, Any]] | None]:
    text = _first(inputs, INPUT_KEYS)
    messages = inputs.get("messages") if isinstance(inputs, dict) else None
    if not isinstance(messages, list):
        return (text if text and text.strip() else None), None
    turns = [m for m in messages if isinstance(m, dict) and isinstance(m.get("content"), str)]
    if not text:
        text = next((m["content"] for m in reversed(turns) if m.get("role") == "user"), None)
    return (text if text and text.strip() else None), turns or None


def sample_traces(store: Any, n: int, app: str, seed: int = 0) -> list[dict[str, Any]]:
    recent = list_traces(store, last=max(n * POOL_FACTOR, n), app=app)
    # the app's own traces: not replays (rooted in an `eval` span) or other calls that carry the app name
    pool = [t for t in recent if t.get("status") == "ok" and t.get("kind") == "app"]
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
    cache: bool = False,
) -> dict[str, Any]:
    if n < 1:
        raise UserError("--against-traces needs a number of traces ≥ 1")
    runtime.gateway.resolve(judge)
    traces = sample_traces(runtime.store, n, app, seed)
    current = runtime.app(app, cache=cache)
    takes_messages = "messages" in _parameters(current.arun)
    sem = asyncio.Semaphore(concurrency)

    async def replay(trace: dict[str, Any]) -> Pair | None:
        old = served(trace)
        if old is None:
            return None
        options = {"messages": old.messages} if takes_messages and old.messages else {}
        attrs = {"flywheel.replay_of": old.trace_id, "flywheel.app": app}
        if old.tenant:
            attrs["flywheel.tenant"] = old.tenant
        async with sem:
            with tracer.span("eval.replay", kind="eval", inputs={"question": old.question}, **attrs) as span:
                answer = await current.arun(old.question, old.tenant, **options)
                span.set(outputs={"text": answer.text})
        return Pair(
            case_id=old.trace_id[:12],
            question=old.question,
            a=answer.text,
            b=old.answer,
            tenant=old.tenant,
            trace_id=old.trace_id,
            replay_trace_id=span.trace_id,
        )

    pairs = [p for p in await asyncio.gather(*(replay(t) for t in traces)) if p is not None]
    if not pairs:
        raise UserError(
            f"none of the sampled traces of app '{app}' recorded both its input and its answer",
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


def _parameters(fn: Any) -> list[str]:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []

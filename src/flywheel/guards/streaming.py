"""Output guards on a stream: text is released one sentence at a time, after the sentence passed the guards.

Latency cost: the reader sees nothing until the first sentence is complete and checked, so time to first
token grows by (time to generate one sentence) + (guard time per sentence); after that each sentence waits
only for its own checks. Guards that need the whole answer (JSON Schema, word counts) don't belong here.
A failing guard stops the stream: the generator is closed (the upstream request is dropped) and the
policy message is appended. Re-ask and fallback can't rewrite text already shown, so on a stream they
stop it like `block`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator

from flywheel.checks.base import CheckContext
from flywheel.guards.policy import DEFAULT_BLOCK, GuardOutcome, GuardPipeline

# A sentence ends at . ! ? followed by space/end, at Chinese/Japanese sentence punctuation, or at a newline.
_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|[。！？；]+[”」』）]*|\n+")


def _split(buffer: str) -> tuple[list[str], str]:
    sentences, start = [], 0
    for m in _END.finditer(buffer):
        sentences.append(buffer[start:m.end()])
        start = m.end()
    return sentences, buffer[start:]


def _check(pipeline: GuardPipeline, sentence: str, ctx: CheckContext) -> tuple[str, str | None]:
    """(text to release, stop message or None)."""
    if not sentence.strip():
        return sentence, None
    outcome: GuardOutcome = pipeline.run(sentence, ctx)  # no regenerate: reask/fallback end as refrain
    if outcome.passed:
        return outcome.text, None
    return "", outcome.message or DEFAULT_BLOCK


def guard_stream(deltas: Iterable[str], pipeline: GuardPipeline, ctx: CheckContext | None = None) -> Iterator[str]:
    """Yield checked sentences from a stream of text deltas; stop with the policy message on a failure."""
    ctx = ctx or CheckContext()
    buffer = ""
    it = iter(deltas)
    try:
        for delta in it:
            buffer += delta
            sentences, buffer = _split(buffer)
            for sentence in sentences:
                text, stop = _check(pipeline, sentence, ctx)
                if stop:
                    yield "\n" + stop
                    return
                yield text
        if buffer:
            text, stop = _check(pipeline, buffer, ctx)
            yield stop if stop else text
    finally:
        close = getattr(it, "close", None)
        if close:
            close()


async def aguard_stream(deltas: AsyncIterable[str], pipeline: GuardPipeline,
                        ctx: CheckContext | None = None) -> AsyncIterator[str]:
    ctx = ctx or CheckContext()
    buffer = ""
    it = deltas.__aiter__()
    try:
        async for delta in it:
            buffer += delta
            sentences, buffer = _split(buffer)
            for sentence in sentences:
                text, stop = _check(pipeline, sentence, ctx)
                if stop:
                    yield "\n" + stop
                    return
                yield text
        if buffer:
            text, stop = _check(pipeline, buffer, ctx)
            yield stop if stop else text
    finally:
        aclose = getattr(it, "aclose", None)
        if aclose:
            await aclose()

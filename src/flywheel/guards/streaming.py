"""Output guards on a stream: text is released one sentence at a time, after the sentence passed the guards.

Latency cost: the reader sees nothing until the first sentence is complete and checked, so time to first
token grows by (time to generate one sentence) + (guard time per sentence); after that each sentence waits
for its own checks, run twice: on the sentence alone and on it with the last 1,000 released characters (so
a system prompt leaked one short sentence at a time is still caught). Guards that need the whole answer (JSON Schema, word counts) don't belong here.
A failing guard stops the stream: the generator is closed (the upstream request is dropped) and the
policy message is appended. Re-ask and fallback can't rewrite text already shown, so on a stream they
stop it like `block`.

An armoured block (`-----BEGIN RSA PRIVATE KEY-----` … `-----END …-----`) is one unit: its lines are held back
until the END line (or the end of the stream, or MAX_BLOCK characters) and checked together, so a key whose
body lines would each pass as a "sentence" is masked whole.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator

from flywheel.checks.base import CheckContext
from flywheel.guards.policy import DEFAULT_BLOCK, GuardOutcome, GuardPipeline
from flywheel.text import complete_sentences
from flywheel.types import GuardAction

# Sentences are released once complete (flywheel.text's splitter: "e.g. this" and "3.5" stay whole).
_split = complete_sentences


WINDOW = 1000  # characters of already released text checked again with each new sentence
MAX_BLOCK = 64_000  # an armoured block still open after this many characters is checked (and released) as is
_BLOCK_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{1,60}-----")
_BLOCK_END = re.compile(r"-----END [A-Z0-9 ]{1,60}-----")


def _units(sentences: list[str], held: str) -> tuple[list[str], str]:
    """The sentences to check one by one, with an armoured block joined into one; and the text of a block
    not yet closed (held back, `held` is the part of it from earlier deltas)."""
    out: list[str] = []
    block = held
    for sentence in sentences:
        if not block:
            begin = _BLOCK_BEGIN.search(sentence)
            if begin is None or _BLOCK_END.search(sentence, begin.end()):
                out.append(sentence)
            else:
                block = sentence
            continue
        block += sentence
        if _BLOCK_END.search(sentence) or len(block) > MAX_BLOCK:  # the END line is never split
            out.append(block)
            block = ""
    return out, block


def _check(pipeline: GuardPipeline, sentence: str, released: str, ctx: CheckContext,
           record: list[GuardAction]) -> tuple[str, str | None]:
    """(text to release, stop message or None). The sentence is checked alone (its redact / fix applies),
    then with the tail of what was already released, so a leak spread over short sentences is still caught."""
    if not sentence.strip():
        return sentence, None
    outcome: GuardOutcome = pipeline.run(sentence, ctx)  # no regenerate: reask/fallback end as refrain
    record.extend(outcome.actions)
    if not outcome.passed:
        return "", outcome.message or DEFAULT_BLOCK
    if released.strip():
        window = pipeline.run(released[-WINDOW:] + outcome.text, ctx)
        record.extend(window.actions)
        if not window.passed:
            return "", window.message or DEFAULT_BLOCK
    return outcome.text, None


class _Release:
    """Sentence buffer shared by the sync and async generators: feed deltas, get what may be shown."""

    def __init__(self, pipeline: GuardPipeline, ctx: CheckContext | None, record: list[GuardAction] | None):
        self.pipeline, self.ctx = pipeline, ctx or CheckContext()
        self.record: list[GuardAction] = [] if record is None else record
        self.buffer = self.released = self.held = ""
        self.stopped = False

    def feed(self, delta: str) -> list[str]:
        self.buffer += delta
        sentences, self.buffer = _split(self.buffer)
        units, self.held = _units(sentences, self.held)
        return self._release(units)

    def finish(self) -> list[str]:
        rest = self.held + self.buffer
        self.held = self.buffer = ""
        return self._release([rest] if rest else [])

    def _release(self, sentences: list[str]) -> list[str]:
        out = []
        for sentence in sentences:
            text, stop = _check(self.pipeline, sentence, self.released, self.ctx, self.record)
            if stop:
                self.stopped = True
                out.append(("\n" if self.released else "") + stop)
                break
            self.released += text
            out.append(text)
        return out


def guard_stream(deltas: Iterable[str], pipeline: GuardPipeline, ctx: CheckContext | None = None,
                 record: list[GuardAction] | None = None) -> Iterator[str]:
    """Yield checked sentences from a stream of text deltas; stop with the policy message on a failure.
    Every guard action taken is appended to `record` when given."""
    state = _Release(pipeline, ctx, record)
    it = iter(deltas)
    try:
        for delta in it:
            yield from state.feed(delta)
            if state.stopped:
                return
        yield from state.finish()
    finally:
        close = getattr(it, "close", None)
        if close:
            close()


async def aguard_stream(deltas: AsyncIterable[str], pipeline: GuardPipeline,
                        ctx: CheckContext | None = None, record: list[GuardAction] | None = None
                        ) -> AsyncIterator[str]:
    state = _Release(pipeline, ctx, record)
    it = deltas.__aiter__()
    try:
        async for delta in it:
            for piece in state.feed(delta):
                yield piece
            if state.stopped:
                return
        for piece in state.finish():
            yield piece
    finally:
        aclose = getattr(it, "aclose", None)
        if aclose:
            await aclose()

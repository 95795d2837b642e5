"""Output guards on a stream: text is released one sentence at a time, after the sentence passed the guards.

Latency cost: the reader sees nothing until the first sentence is complete and checked, so time to first
token grows by (time to generate one sentence) + (guard time per sentence); after that each sentence waits
for its own checks, run twice: on the sentence alone and on it with the last 1,000 released characters (so
a system prompt leaked one short sentence at a time is still caught). Guards that need the whole answer but
declare no answer scope (JSON Schema, word counts) don't belong here.
A failing guard stops the stream: the generator is closed (the upstream request is dropped) and the
policy message is appended. Re-ask and fallback can't rewrite text already shown, so on a stream they
stop it like `block`.

An armoured block (`-----BEGIN RSA PRIVATE KEY-----` … `-----END …-----`) is one unit: its lines are held back
until the END line (or the end of the stream, or MAX_BLOCK characters) and checked together, so a key whose
body lines would each pass as a "sentence" is masked whole.

Checks that judge the answer as a whole (`Check.scope == "answer"`: `language`) are never run on a sentence
alone — a Chinese answer holding the line `pip install flywheel.` or starting with "OK." is still Chinese. They
judge the answer so far (the last WINDOW released characters plus the sentences waiting): while they fail,
the new sentences are held back (nothing in the wrong language is shown) until more text makes them pass, or
HOLD characters are waiting (the stream stops), or the stream ends. At the end they judge the whole answer,
as a non-streamed answer is judged, so both give the same verdict; an answer-scope guard only passes or stops.
"""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator

from flywheel.checks.base import CheckContext
from flywheel.guards.policy import DEFAULT_BLOCK, Guard, GuardOutcome, GuardPipeline, check_windows, windows
from flywheel.text import complete_sentences
from flywheel.types import GuardAction

# Sentences are released once complete (flywheel.text's splitter: "e.g. this" and "3.5" stay whole).
_split = complete_sentences


WINDOW = 1000  # characters of already released text checked again with each new sentence
HOLD = 1000  # characters an answer-scope guard may hold back while it fails before the stream stops
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


def _answer_scope(guard: Guard) -> bool:
    return getattr(guard.check, "scope", "span") == "answer"


def _subset(pipeline: GuardPipeline, answer_scope: bool) -> GuardPipeline:
    """The pipeline's guards of one scope, in order (a copy: a subclass's recording keeps working)."""
    part = copy.copy(pipeline)
    part.guards = [g for g in pipeline.guards if _answer_scope(g) == answer_scope]
    return part


class _Release:
    """Sentence buffer shared by the sync and async generators: feed deltas, get what may be shown.
    `pending`: text that passed the sentence guards and waits for the answer-scope guards."""

    def __init__(self, pipeline: GuardPipeline, ctx: CheckContext | None, record: list[GuardAction] | None):
        self.sentence, self.answer = _subset(pipeline, False), _subset(pipeline, True)
        self.ctx = ctx or CheckContext()
        self.record: list[GuardAction] = [] if record is None else record
        self.buffer = self.released = self.held = self.pending = ""
        self.stopped = False

    def feed(self, delta: str) -> list[str]:
        self.buffer += delta
        sentences, self.buffer = _split(self.buffer)
        units, self.held = _units(sentences, self.held)
        return self._release(units)

    def finish(self) -> list[str]:
        rest = self.held + self.buffer
        self.held = self.buffer = ""
        out = self._release([rest] if rest else [])
        if not self.stopped and self.answer:
            out += self._settle(final=True)
        return out

    def _release(self, sentences: list[str]) -> list[str]:
        out: list[str] = []
        for sentence in sentences:
            text, stop = _check(self.sentence, sentence, self.released + self.pending, self.ctx, self.record)
            if stop:
                return out + self._stop(stop)
            self.pending += text
            out += self._settle(final=False)
            if self.stopped:
                break
        return out

    def _settle(self, final: bool) -> list[str]:
        """Release the pending text if the answer-scope guards pass on the answer so far; hold it while they
        fail (until HOLD characters wait, or the end: then their verdict stands)."""
        if not self.answer:
            return self._show()
        if not final and not self.pending.strip():
            return []  # nothing new to judge
        text = self.released + self.pending if final else self.released[-WINDOW:] + self.pending
        if not final and len(self.pending) <= HOLD and not self._passes(text):
            return []  # too little evidence yet ("OK." opening a Chinese answer): wait for more text
        outcome = self.answer.run(text, self.ctx)
        self.record.extend(outcome.actions)
        if not outcome.passed:
            return self._stop(outcome.message or DEFAULT_BLOCK)
        return self._show()

    def _passes(self, text: str) -> bool:
        """Whether every answer-scope check passes on `text`: a trial, with no span and no guard action (a
        failure here may not stand), so traces say only what was decided."""
        ctx = self.answer._context(self.ctx)
        return all(check_windows(g.check, windows(text, g.max_chars), ctx).passed for g in self.answer.guards)

    def _show(self) -> list[str]:
        text, self.pending = self.pending, ""
        self.released += text
        return [text] if text else []

    def _stop(self, message: str) -> list[str]:
        self.stopped, self.pending = True, ""
        return [("\n" if self.released else "") + message]


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

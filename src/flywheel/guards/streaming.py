"""Output guards on a stream: text is released one sentence at a time, after the sentence passed the guards.

Latency cost: the reader sees nothing until the first sentence is complete and checked, so time to first
token grows by (time to generate one sentence) + (guard time per sentence); after that each sentence waits
for its own checks, run twice: on the sentence alone and on it with the last 1,000 released characters (so
a system prompt leaked one short sentence at a time is still caught).
A failing guard stops the stream: the generator is closed (the upstream request is dropped) and the
policy message is appended. Re-ask and fallback can't rewrite text already shown, so on a stream they
stop it like `block`.

An armoured block (`-----BEGIN RSA PRIVATE KEY-----` … `-----END …-----`) is one unit: its lines are held back
until the END line (or the end of the stream, or MAX_BLOCK characters) and checked together, so a key whose
body lines would each pass as a "sentence" is masked whole.

Checks that judge the answer as a whole (`Check.scope == "answer"`: language, contains, max_words, is-json,
…) are never run on a sentence alone: at the end of the stream they judge the whole answer, as a
non-streamed answer is judged, so both give the same verdict (an answer-scope guard only passes or stops).
Before the end a guard acts only on what the answer so far already settles, so no verdict can differ:
- `settles == "fail"` (max_words, not-contains): judged on the answer so far after each sentence; a failure
  that more text cannot undo (`Check.settled`) stops the stream at once;
- `holds` (language): while it fails on the answer so far, new text is held back (not shown) until more text
  makes it pass, or the end gives the verdict; never stopped early, since a Chinese answer quoting a long
  English log is still Chinese once its Chinese follows;
- the rest (contains, min_words, is-json) wait for the end: a failure on part of the answer means nothing.
A log-only answer-scope guard is judged at the end only, so it logs what a non-streamed answer would.
A judge guard is span-scope (each sentence) unless its config says `scope: answer` (Guard.scope,
flywheel.guards.scope): then it settles nothing, so it is judged once, on the whole answer, at the end.
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
MAX_BLOCK = 64_000  # an armoured block still open after this many characters is checked (and released) as is
_FENCE = "```"
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
    """Judged on the whole answer: its check's scope, or a judge guard's `scope: answer` (flywheel.guards.scope)."""
    return (getattr(guard, "scope", None) or getattr(guard.check, "scope", "span")) == "answer"


def _subset(pipeline: GuardPipeline, guards: list[Guard]) -> GuardPipeline:
    """The pipeline with these of its guards, in order (a copy: a subclass's recording keeps working)."""
    part = copy.copy(pipeline)
    part.guards = guards
    return part


class _Release:
    """Sentence buffer shared by the sync and async generators: feed deltas, get what may be shown.
    `pending`: text that passed the sentence guards and waits for the answer-scope guards."""

    def __init__(self, pipeline: GuardPipeline, ctx: CheckContext | None, record: list[GuardAction] | None):
        guards = pipeline.guards
        self.sentence = _subset(pipeline, [g for g in guards if not _answer_scope(g)])
        self.answer = _subset(pipeline, [g for g in guards if _answer_scope(g)])
        acting = [g for g in self.answer.guards if g.on_fail != "log-only"]  # log-only: the end's verdict only
        self.stops = [g for g in acting if getattr(g.check, "settles", "") == "fail"]
        self.holds = [g for g in acting if getattr(g.check, "holds", False)]
        self.ctx = ctx or CheckContext()
        self.record: list[GuardAction] = [] if record is None else record
        self.buffer = self.released = self.held = self.pending = ""
        self.stopped = False
        self.fences = 0  # code fences (```) in the released text (counted for the holding guards)
        self.prose = ""  # the last WINDOW released characters outside code blocks (for the holding guards)
        self.tried = 0  # length of the answer so far when the holding guards last judged all of it
        self.quiet = [0] * len(self.stops)  # per stop guard: the answer so far may grow to this size unjudged

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
        """At the end: the answer-scope guards' verdict on the whole answer. Before: stop on a failure the answer
        so far settles; show the pending text unless a holding guard fails on the answer so far."""
        if not self.answer:
            return self._show()
        answer = self.released + self.pending
        if final:
            return self._verdict(self.answer, answer) or self._show()
        if not self.pending.strip():
            return []  # nothing new to judge
        ctx = self.answer._context(self.ctx)
        for i, guard in enumerate(self.stops):  # a trial first: no span, no guard action unless the failure stands
            if len(answer) <= self.quiet[i]:
                continue  # its verdict cannot have changed yet (max_words: fewer new characters than words left)
            result = check_windows(guard.check, windows(answer, guard.max_chars), ctx)
            self.quiet[i] = len(answer) + (guard.check.slack(result) if len(answer) <= guard.max_chars else 0)
            if not result.passed and guard.check.settled(result):
                stop = self._verdict(_subset(self.answer, [guard]), answer)
                if stop:
                    return stop
        if self.holds and not self._holding_passes(ctx):
            return []  # an answer so far in another language ("OK." opening a Chinese answer): wait for more
        return self._show()

    def _verdict(self, pipeline: GuardPipeline, text: str) -> list[str]:
        """Run (and record) `pipeline` on `text`: the stop message when it fails, else nothing."""
        outcome = pipeline.run(text, self.ctx)
        self.record.extend(outcome.actions)
        return [] if outcome.passed else self._stop(outcome.message or DEFAULT_BLOCK)

    def _holding_passes(self, ctx: CheckContext) -> bool:
        """Whether the holding guards pass on the answer so far: a trial (no span, no guard action: a failure here
        may not stand) on the released prose tail and the pending text, and when that fails, on all of it — at
        most once each time the answer grew by an eighth (or WINDOW characters), so a long answer costs linear
        time (meanwhile the text waits)."""
        def passes(text: str) -> bool:
            return all(check_windows(g.check, windows(text, g.max_chars), ctx).passed for g in self.holds)

        if len(self.pending) <= WINDOW:  # the cheap trial: at most 2 × WINDOW characters
            if passes(self._tail() + self.pending):
                return True
            if len(self.released) <= WINDOW:
                return False  # that was all of it
        size = len(self.released) + len(self.pending)
        if size < self.tried + max(WINDOW, self.tried // 8):
            return False  # judged all of it a moment ago: wait for more text
        self.tried = size
        return passes(self.released + self.pending)

    def _tail(self) -> str:
        """The last WINDOW released characters outside code blocks, then a fence when one is still open (so the
        pending code is left out as code: `flywheel.text.language.prose`): a long code block in a Chinese
        answer is read with the Chinese before it, not alone as English."""
        return self.prose + (_FENCE + "\n" if self.fences % 2 else "")

    def _show(self) -> list[str]:
        text, self.pending = self.pending, ""
        self.released += text
        if self.holds:
            parts = text.split(_FENCE)
            kept = "".join(part for k, part in enumerate(parts) if (self.fences + k) % 2 == 0)
            self.prose = (self.prose + kept)[-WINDOW:]
            self.fences += len(parts) - 1
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

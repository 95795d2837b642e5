"""Streaming through the gateway: retries and fallback before the first text, spans that span the stream.

`ChatStream` / `AsyncChatStream` are iterators of `StreamChunk`. Once exhausted, `.result` holds the
`ChatResult` (text, usage, cost, attempts, trace id) and `.text` the text so far.

A stream that fails before any text was delivered is retried and falls back exactly like a non-streaming
call. One that fails after text was delivered is resumed when the gateway has attempts left (`resume_streams`,
on by default): the next attempt (a retry, or the fallback) is read silently until it has reproduced the text
already delivered, and the stream goes on with what follows it — so a deterministic model behind a proxy that
cuts streams loses nothing. Tool-call pieces are resumed the same way: each call's id and name reach the caller
once, and its arguments continue where the delivered fragments stopped. If the new attempt departs from what the
caller already has (other text, another tool, other arguments), or no attempt is left, `StreamBrokenError` is
raised (recorded on the spans), since the caller cannot un-show text.

A stream answers one choice: a request with `n` > 1 is refused (UserError) when the stream is created.

The spans are opened in a private copy of the caller's context: a generator runs in its consumer's
context, so setting the current span there would leak it into the consumer's code between chunks.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Self, cast

from flywheel.errors import UserError
from flywheel.gateway.call import CallState, StreamBrokenError, inputs, top_attrs
from flywheel.gateway.providers.base import ProviderError, make_chunk
from flywheel.gateway.tools import merge_tool_deltas
from flywheel.tracing import tracer
from flywheel.types import ChatRequest, ChatResult, StreamChunk, Usage

if TYPE_CHECKING:
    from flywheel.gateway.gateway import Gateway

_END = object()


class _Attempt:
    """Text, usage and finish reason of the attempt in progress."""

    __slots__ = ("finish_reason", "logprobs", "parts", "thought", "thought_departed", "tool_calls", "usage")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.tool_calls: list[dict[str, Any]] = []
        self.logprobs: list[dict[str, Any]] = []
        self.thought: list[str] = []  # the model's reasoning pieces (StreamChunk.reasoning)
        self.thought_departed = False  # its thinking is not the one the consumer has (see _new_thought)

    def take(self, chunk: StreamChunk) -> None:
        if chunk.delta:
            self.parts.append(chunk.delta)
        if chunk.tool_calls:
            merge_tool_deltas(self.tool_calls, chunk.tool_calls)
        if chunk.logprobs:
            self.logprobs.extend(chunk.logprobs)
        if chunk.reasoning:
            self.thought.append(chunk.reasoning)
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.finish_reason:
            self.finish_reason = chunk.finish_reason

    @property
    def text(self) -> str:
        return "".join(self.parts)


class _StreamBase:
    """What the sync and async streams share: everything but pulling chunks, yielding and sleeping."""

    def __init__(self, gateway: Gateway, request: ChatRequest):
        if request.n != 1:
            raise UserError(f"a stream answers one choice; this request asks for n={request.n!r}",
                            hint="drop `n` to stream, or call chat/achat (not stream) for several choices")
        self.gateway = gateway
        self.request = request
        self.chain = gateway.chain(request.model)  # unknown alias fails here, before iteration
        self.result: ChatResult | None = None
        self.alias: Any = None  # the ModelAlias of the attempt in progress: who answers a stream closed early
        self._attempt: _Attempt | None = None
        self._ctx = contextvars.copy_context()
        self._top_token: Any = None
        self._delivered: list[str] = []  # text handed to the consumer, across attempts
        self._shown = 0  # its length
        self._calls: list[dict[str, Any]] = []  # tool calls as the consumer assembled them from its pieces
        self._thought: list[str] = []  # the reasoning handed to the consumer, across attempts
        self._thinker: _Attempt | None = None  # the attempt whose thinking the consumer is getting
        self._gen = self._run()

    def _run(self) -> Any:
        raise NotImplementedError

    @property
    def text(self) -> str:
        return self._attempt.text if self._attempt else ""

    @property
    def _sent(self) -> bool:
        """Whether the consumer has anything it cannot un-see: text or tool-call pieces."""
        return bool(self._shown or self._calls)

    def _open(self) -> CallState:
        top, self._top_token = self._ctx.run(tracer.start, "gateway.chat", "llm", inputs(self.request),
                                             **top_attrs(self.request))
        top.attributes["flywheel.stream"] = True
        return CallState(self.request, top, self._ctx)

    def _attempts(self, call: CallState) -> Iterator[tuple[Any, Any, float, _Attempt]]:
        """`call.attempts` with a fresh `_Attempt` for each."""
        for prov, alias, timeout in call.attempts(self.gateway, self.chain):
            self._attempt = attempt = _Attempt()
            self.alias = alias
            yield prov, alias, timeout, attempt

    def _failed(self, call: CallState, exc: Exception) -> float | None:
        """Record a failed attempt and return the backoff before the next one (None: go on to the next alias).
        Raises StreamBrokenError when text was delivered and resuming is off."""
        attempt = self._attempt
        partial = attempt.text if attempt and attempt.parts else ""
        err = call.fail(exc, partial)
        if self._sent and not self.gateway.resume_streams:
            raise self._broken(call)
        return call.backoff(err, self.gateway.retry)

    def _broken(self, call: CallState) -> StreamBrokenError:
        return StreamBrokenError(self.request.model, call.failures, "".join(self._delivered))

    def _exhausted(self, call: CallState) -> Exception:
        """No attempt left: a GatewayError, or StreamBrokenError when the caller already has some text."""
        if self._sent:
            call.close_top()
            return self._broken(call)
        return call.exhausted()

    def _to_show(self, call: CallState, attempt: _Attempt, chunk: StreamChunk) -> StreamChunk | None:
        """`chunk` as the consumer should get it: unchanged normally; while a resumed attempt is still
        re-producing the text and tool calls already delivered, only what goes beyond them (None: nothing new
        yet). Raises StreamBrokenError when the attempt departs from what was delivered."""
        shown = self._shown
        pieces = self._new_pieces(call, attempt, chunk.tool_calls) if chunk.tool_calls else None
        thought = self._new_thought(attempt) if chunk.reasoning else None
        before = len(attempt.text) - len(chunk.delta) if chunk.delta else len(attempt.text)
        if before >= shown:
            if chunk.delta:
                self._delivered.append(chunk.delta)
                self._shown += len(chunk.delta)
            if pieces is chunk.tool_calls and thought == chunk.reasoning:
                return chunk
            if not chunk.delta and not pieces and not thought and not chunk.finish_reason and chunk.usage is None:
                return None
            return make_chunk(chunk.delta, chunk.finish_reason, chunk.usage, pieces or None, chunk.logprobs,
                              thought)
        text = attempt.text
        delivered = "".join(self._delivered)
        if not delivered.startswith(text[:shown]) or (chunk.finish_reason and len(text) < shown):
            raise self._diverged(call, attempt, f"the {shown} characters already delivered")
        new = text[shown:]
        if new:
            self._delivered.append(new)
            self._shown += len(new)
        if not new and not chunk.finish_reason and chunk.usage is None and not pieces and not thought:
            return None
        return make_chunk(new, chunk.finish_reason, chunk.usage, pieces or None, reasoning=thought)

    def _new_thought(self, attempt: _Attempt) -> str | None:
        """Of the attempt's reasoning so far, what goes beyond the reasoning the consumer already has. A retried
        or resumed attempt thinks again: while it repeats the thinking already shown, nothing is shown twice, and
        beyond it the rest follows; once it thinks otherwise (another sample, a fallback model), none of its
        thinking is shown, so the consumer never gets two thoughts spliced into one."""
        if attempt.thought_departed:
            return None
        if attempt is self._thinker:  # the attempt whose thinking is being shown: its newest piece
            self._thought.append(attempt.thought[-1])
            return attempt.thought[-1]
        total, shown = "".join(attempt.thought), "".join(self._thought)
        common = min(len(total), len(shown))
        if total[:common] != shown[:common]:
            attempt.thought_departed = True
            return None
        if len(total) <= len(shown):
            return None
        new = total[len(shown):]
        self._thought.append(new)
        self._thinker = attempt
        return new

    def _new_pieces(self, call: CallState, attempt: _Attempt,
                    pieces: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Of a chunk's tool-call pieces (already folded into `attempt.tool_calls`), what the consumer lacks:
        `pieces` itself when all of it is new; for a call it already has, only the arguments beyond the
        delivered ones (a resumed attempt's id and name were delivered by the broken one)."""
        out: list[dict[str, Any]] = []
        for piece in pieces:
            index = piece.get("index", 0)
            if index >= len(self._calls):  # a call the consumer has not seen: all of it
                merge_tool_deltas(self._calls, [piece])
                out.append(piece)
                continue
            sent, mine = self._calls[index]["function"], attempt.tool_calls[index]["function"]
            if sent["name"] and mine["name"] and sent["name"] != mine["name"]:
                raise self._diverged(call, attempt, f"tool call {index} ({sent['name']}) already delivered")
            has, got = sent["arguments"], mine["arguments"]
            if not got.startswith(has) and not has.startswith(got):
                raise self._diverged(call, attempt, f"the arguments of tool call {index} already delivered")
            fn: dict[str, Any] = {}
            if mine["name"] and not sent["name"]:
                fn["name"] = mine["name"]
            if len(got) > len(has):
                fn["arguments"] = got[len(has):]
            new: dict[str, Any] = {"index": index}
            if piece.get("id") and not self._calls[index]["id"]:
                new.update(id=piece["id"], type="function")
            if fn or "id" in new:
                new["function"] = fn
                merge_tool_deltas(self._calls, [new])
                out.append(new)
        return pieces if out == pieces else out

    def _short(self, call: CallState, attempt: _Attempt) -> None:
        """An attempt that ended: StreamBrokenError when it delivered less than the consumer already has."""
        mine = attempt.tool_calls
        if len(attempt.text) < self._shown or len(mine) < len(self._calls) or any(
                len(m["function"]["arguments"]) < len(s["function"]["arguments"])
                for m, s in zip(mine, self._calls, strict=False)):
            raise self._diverged(call, attempt, "what was already delivered (it ended sooner)")

    def _diverged(self, call: CallState, attempt: _Attempt, what: str) -> StreamBrokenError:
        assert call.alias is not None
        call.fail(ProviderError(f"the new attempt departs from {what}", kind="stream_diverged"), attempt.text)
        return self._broken(call)

    def _succeed(self, call: CallState) -> None:
        a = self._attempt
        assert a is not None and call.alias is not None
        calls = [{**c, "id": sent["id"] or c["id"]} for c, sent in zip(a.tool_calls, self._calls, strict=False)]
        calls += a.tool_calls[len(calls):]  # the ids the consumer has, where a resumed attempt chose others
        self.result = call.succeeded(a.text, a.usage, call.alias.model, a.finish_reason, None, calls or None,
                                     None, a.logprobs or None, "".join(a.thought) or None)
        self._close(call, None)

    def _close(self, call: CallState, exc: BaseException | None) -> None:
        """End the call's spans. An attempt still open was cut short (the consumer stopped, or cancellation)."""
        span = call.span
        if span is not None:
            span.attributes["flywheel.stream.cancelled"] = True
            call.top.attributes["flywheel.stream.cancelled"] = True
            if self._attempt:
                span.outputs, span.has_output = self._attempt.text, True
            call.end_attempt()
        call.close_top()
        if exc is not None and not isinstance(exc, GeneratorExit | asyncio.CancelledError):
            call.top.record_error(exc)
        call.end(call.top, self._top_token)


class ChatStream(_StreamBase):
    """Sync stream of chunks: `for chunk in gw.stream(request)`."""

    def __iter__(self) -> Iterator[StreamChunk]:
        return self

    def __next__(self) -> StreamChunk:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> Iterator[StreamChunk]:
        call = self._open()
        request, ctx = self.request, self._ctx
        try:
            for prov, alias, timeout, attempt in self._attempts(call):
                chunks = ctx.run(prov.stream, alias, request, timeout)
                while True:
                    try:
                        chunk = ctx.run(next, chunks, _END)
                    except Exception as exc:  # noqa: BLE001 - classified by _failed
                        failure = exc
                        break
                    if chunk is _END:
                        self._short(call, attempt)  # a resumed attempt that ended too early
                        self._succeed(call)  # closes the call's span too
                        return
                    chunk = cast(StreamChunk, chunk)
                    attempt.take(chunk)
                    shown = self._to_show(call, attempt, chunk)
                    if shown is None:
                        continue
                    try:
                        yield shown
                    except GeneratorExit:
                        chunks.close()
                        raise
                delay = self._failed(call, failure)
                if delay is not None:
                    self.gateway.sleep(delay)
            raise self._exhausted(call)
        except BaseException as exc:
            self._close(call, exc)
            raise


class AsyncChatStream(_StreamBase):
    """Async stream of chunks: `async for chunk in gw.astream(request)` (or `async with … as s`)."""

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        return self

    async def __anext__(self) -> StreamChunk:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        await self._gen.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _run(self) -> AsyncIterator[StreamChunk]:
        call = self._open()
        request = self.request
        try:
            await call.aprepare(self.gateway, self.chain, stream=True)
            for prov, alias, timeout, attempt in self._attempts(call):
                chunks = prov.astream(alias, request, timeout)
                while True:
                    try:
                        chunk = await chunks.__anext__()
                    except StopAsyncIteration:
                        self._short(call, attempt)
                        self._succeed(call)
                        return
                    except Exception as exc:  # noqa: BLE001 - classified by _failed
                        failure = exc
                        break
                    attempt.take(chunk)
                    shown = self._to_show(call, attempt, chunk)
                    if shown is None:
                        continue
                    try:
                        yield shown
                    except GeneratorExit:
                        await chunks.aclose()
                        raise
                delay = self._failed(call, failure)
                if delay is not None:
                    await self.gateway.asleep(delay)
            raise self._exhausted(call)
        except BaseException as exc:
            self._close(call, exc)
            raise

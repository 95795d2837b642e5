"""Streaming through the gateway: retries and fallback before the first text, spans that span the stream.

`ChatStream` / `AsyncChatStream` are iterators of `StreamChunk`. Once exhausted, `.result` holds the
`ChatResult` (text, usage, cost, attempts, trace id) and `.text` the text so far. A stream that fails
after text was delivered raises `StreamBrokenError` (recorded on the attempt span), because
retrying would repeat text the caller already showed.

The spans are opened in a private copy of the caller's context: a generator runs in its consumer's
context, so setting the current span there would leak it into the consumer's code between chunks.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Self

from flywheel.gateway.gateway import CallState, StreamBrokenError, _inputs, _top_attrs
from flywheel.gateway.providers.base import ProviderError
from flywheel.tracing import tracer
from flywheel.types import ChatRequest, ChatResult, StreamChunk, Usage

if TYPE_CHECKING:
    from flywheel.gateway.gateway import Gateway

_END = object()


class _Attempt:
    """Text, usage and finish reason of the attempt in progress."""

    __slots__ = ("finish_reason", "parts", "usage")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None

    def take(self, chunk: StreamChunk) -> None:
        if chunk.delta:
            self.parts.append(chunk.delta)
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.finish_reason:
            self.finish_reason = chunk.finish_reason

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _as_provider_error(exc: Exception) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    return ProviderError(f"{type(exc).__name__}: {exc}")


class _StreamBase:
    def __init__(self, gateway: Gateway, request: ChatRequest):
        self.gateway = gateway
        self.request = request
        self.chain = gateway.chain(request.model)  # unknown alias fails here, before iteration
        self.result: ChatResult | None = None
        self._attempt: _Attempt | None = None
        self._ctx = contextvars.copy_context()

    @property
    def text(self) -> str:
        return self._attempt.text if self._attempt else ""

    def _open(self) -> tuple[CallState, Any]:
        top, token = self._ctx.run(tracer.start, "gateway.chat", "llm", _inputs(self.request),
                                   **_top_attrs(self.request))
        top.attributes["flywheel.stream"] = True
        return CallState(self.request, top), token

    def _fail(self, call: CallState, span: Any, token: Any, alias_name: str, err: ProviderError) -> None:
        """Record a failed attempt; raise StreamBrokenError if text had already been delivered."""
        attempt = self._attempt
        alias = self.gateway.models[alias_name]
        if attempt and attempt.parts:
            span.outputs, span.has_output = attempt.text, True
        call.failed(span, alias_name, alias, err)
        self._ctx.run(tracer.end, span, token)
        if attempt and attempt.parts:
            raise StreamBrokenError(self.request.model, call.failures, attempt.text)

    def _cancelled(self, call: CallState, span: Any, token: Any) -> None:
        span.attributes["flywheel.stream.cancelled"] = True
        call.top.attributes["flywheel.stream.cancelled"] = True
        if self._attempt:
            span.outputs, span.has_output = self._attempt.text, True
        self._ctx.run(tracer.end, span, token)

    def _succeed(self, call: CallState, span: Any, token: Any, alias_name: str) -> None:
        alias = self.gateway.models[alias_name]
        a = self._attempt
        assert a is not None
        self.result = call.succeeded(span, alias_name, alias, a.text, a.usage, alias.model, a.finish_reason, None)
        self._ctx.run(tracer.end, span, token)

    def _close(self, call: CallState, token: Any, exc: BaseException | None) -> None:
        call.close_top()
        if exc is not None and not isinstance(exc, GeneratorExit | asyncio.CancelledError):
            call.top.record_error(exc)
        self._ctx.run(tracer.end, call.top, token)


class ChatStream(_StreamBase):
    """Sync stream of chunks: `for chunk in gw.stream(request)`."""

    def __init__(self, gateway: Gateway, request: ChatRequest):
        super().__init__(gateway, request)
        self._gen = self._run()

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
        call, top_token = self._open()
        gw, request, ctx = self.gateway, self.request, self._ctx
        error: BaseException | None = None
        try:
            for alias_name in self.chain:
                alias = gw.models[alias_name]
                prov = gw._provider_or_error(alias_name)
                timeout = request.timeout or alias.timeout
                for retry in range(alias.max_retries + 1):
                    name, attrs = call.begin(alias_name, alias)
                    span, token = ctx.run(tracer.start, name, "llm", None, **attrs)
                    self._attempt = attempt = _Attempt()
                    failure: ProviderError | None = prov if isinstance(prov, ProviderError) else None
                    chunks = None if failure else ctx.run(prov.stream, alias, request, timeout)
                    while failure is None:
                        try:
                            chunk = ctx.run(next, chunks, _END)
                        except Exception as exc:  # noqa: BLE001 - classified below
                            failure = _as_provider_error(exc)
                            break
                        except BaseException:
                            self._cancelled(call, span, token)
                            raise
                        if chunk is _END:
                            break
                        attempt.take(chunk)
                        try:
                            yield chunk
                        except GeneratorExit:
                            chunks.close()
                            self._cancelled(call, span, token)
                            raise
                    if failure is None:
                        self._succeed(call, span, token, alias_name)
                        return
                    self._fail(call, span, token, alias_name, failure)
                    if not failure.retryable or retry == alias.max_retries:
                        break
                    time.sleep(gw.retry.delay(retry, failure.retry_after))
            raise call.exhausted()
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._close(call, top_token, error)


class AsyncChatStream(_StreamBase):
    """Async stream of chunks: `async for chunk in gw.astream(request)` (or `async with … as s`)."""

    def __init__(self, gateway: Gateway, request: ChatRequest):
        super().__init__(gateway, request)
        self._gen = self._run()

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
        call, top_token = self._open()
        gw, request, ctx = self.gateway, self.request, self._ctx
        error: BaseException | None = None
        try:
            for alias_name in self.chain:
                alias = gw.models[alias_name]
                prov = gw._provider_or_error(alias_name)
                timeout = request.timeout or alias.timeout
                for retry in range(alias.max_retries + 1):
                    name, attrs = call.begin(alias_name, alias)
                    span, token = ctx.run(tracer.start, name, "llm", None, **attrs)
                    self._attempt = attempt = _Attempt()
                    failure: ProviderError | None = prov if isinstance(prov, ProviderError) else None
                    chunks = None if failure else prov.astream(alias, request, timeout)
                    while failure is None:
                        try:
                            chunk = await chunks.__anext__()
                        except StopAsyncIteration:
                            break
                        except Exception as exc:  # noqa: BLE001
                            failure = _as_provider_error(exc)
                            break
                        except BaseException:
                            self._cancelled(call, span, token)
                            raise
                        attempt.take(chunk)
                        try:
                            yield chunk
                        except GeneratorExit:
                            await chunks.aclose()
                            self._cancelled(call, span, token)
                            raise
                    if failure is None:
                        self._succeed(call, span, token, alias_name)
                        return
                    self._fail(call, span, token, alias_name, failure)
                    if not failure.retryable or retry == alias.max_retries:
                        break
                    await asyncio.sleep(gw.retry.delay(retry, failure.retry_after))
            raise call.exhausted()
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._close(call, top_token, error)

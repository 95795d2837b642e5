"""Anthropic Messages API through the official `anthropic` SDK.

System messages become the `system=` parameter (joined by blank lines); `tool` messages are sent as
user turns. The SDK's own retries are off (`max_retries=0`); the gateway retries. `max_tokens`, which
the API requires, comes from the request, else `params.max_tokens` on the alias, else 1024.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic

from flywheel.config import ModelAlias
from flywheel.gateway.providers.base import ProviderError, ProviderResponse, make_chunk, make_usage
from flywheel.gateway.providers.openai_compat import api_key
from flywheel.gateway.providers.sdk_errors import to_provider_error
from flywheel.types import ChatRequest, StreamChunk, Usage

DEFAULT_MAX_TOKENS = 1024
# Keyword arguments this SDK version's `messages.create` accepts; anything else goes in `extra_body`, so
# params keep working across SDK versions that add or drop named arguments (e.g. `temperature`).
_KNOWN = frozenset(inspect.signature(anthropic.resources.Messages.create).parameters) - {
    "self", "model", "messages", "max_tokens", "system", "stream", "timeout", "extra_body"}


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, alias: ModelAlias):
        self.alias = alias
        self._key = api_key(alias, "ANTHROPIC_API_KEY")
        self._client: anthropic.Anthropic | None = None
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anthropic.AsyncAnthropic] = (
            weakref.WeakKeyDictionary())
        self._lock = threading.Lock()

    @property
    def client(self) -> anthropic.Anthropic:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = anthropic.Anthropic(api_key=self._key, base_url=self.alias.base_url,
                                                       max_retries=0, timeout=self.alias.timeout)
        return self._client

    def aclient(self) -> anthropic.AsyncAnthropic:
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            client = anthropic.AsyncAnthropic(api_key=self._key, base_url=self.alias.base_url,
                                              max_retries=0, timeout=self.alias.timeout)
            self._aclients[loop] = client
        return client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def kwargs(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        messages = [{"role": "assistant" if m.role == "assistant" else "user", "content": m.content}
                    for m in request.messages if m.role != "system"]
        params = dict(alias.params)
        max_tokens = request.max_tokens or params.pop("max_tokens", None) or DEFAULT_MAX_TOKENS
        params.pop("max_tokens", None)
        kw: dict[str, Any] = {"model": alias.model, "messages": messages, "max_tokens": max_tokens,
                              "timeout": timeout}
        if system:
            kw["system"] = system
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.stop:
            params["stop_sequences"] = request.stop
        extra = {}
        for key, value in params.items():
            (kw if key in _KNOWN else extra)[key] = value
        if extra:
            kw["extra_body"] = extra
        return kw

    @staticmethod
    def _response(msg: Any) -> ProviderResponse:
        text = "".join(getattr(b, "text", "") or "" for b in msg.content or [])
        usage = None
        if msg.usage is not None:
            usage = make_usage(msg.usage.input_tokens or 0, msg.usage.output_tokens or 0)
        return ProviderResponse(text, usage, msg.model or "", msg.stop_reason, None)

    def chat(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> ProviderResponse:
        try:
            return self._response(self.client.messages.create(**self.kwargs(alias, request, timeout)))
        except Exception as exc:
            raise to_provider_error(exc) from exc

    async def achat(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> ProviderResponse:
        try:
            msg = await self.aclient().messages.create(**self.kwargs(alias, request, timeout))
        except Exception as exc:
            raise to_provider_error(exc) from exc
        return self._response(msg)

    def stream(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> Iterator[StreamChunk]:
        state = _Events()
        try:
            stream = self.client.messages.create(stream=True, **self.kwargs(alias, request, timeout))
        except Exception as exc:
            raise to_provider_error(exc) from exc
        try:
            for event in stream:
                delta = state.take(event)
                if delta:
                    yield make_chunk(delta)
        except Exception as exc:
            raise state.broken(to_provider_error(exc)) from exc
        finally:
            stream.close()
        yield state.final()

    async def astream(self, alias: ModelAlias, request: ChatRequest,
                      timeout: float) -> AsyncIterator[StreamChunk]:
        state = _Events()
        try:
            stream = await self.aclient().messages.create(stream=True, **self.kwargs(alias, request, timeout))
        except Exception as exc:
            raise to_provider_error(exc) from exc
        try:
            async for event in stream:
                delta = state.take(event)
                if delta:
                    yield make_chunk(delta)
        except Exception as exc:
            raise state.broken(to_provider_error(exc)) from exc
        finally:
            await stream.close()
        yield state.final()


class _Events:
    """Folds the Messages stream events: text deltas, input tokens at start, output tokens and stop at end."""

    __slots__ = ("chars", "input_tokens", "output_tokens", "stop_reason", "stopped")

    def __init__(self) -> None:
        self.input_tokens = self.output_tokens = self.chars = 0
        self.stop_reason: str | None = None
        self.stopped = False

    def take(self, event: Any) -> str:
        kind = event.type
        if kind == "content_block_delta":
            text = getattr(event.delta, "text", None) or ""
            self.chars += len(text)
            return text
        if kind == "message_start" and event.message.usage is not None:
            self.input_tokens = event.message.usage.input_tokens or 0
            self.output_tokens = event.message.usage.output_tokens or 0
        elif kind == "message_delta":
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            if event.usage is not None:
                self.output_tokens = event.usage.output_tokens or self.output_tokens
        elif kind == "message_stop":
            self.stopped = True
        return ""

    def usage(self) -> Usage | None:
        if not (self.input_tokens or self.output_tokens):
            return None
        return make_usage(self.input_tokens, self.output_tokens)

    def broken(self, err: ProviderError) -> ProviderError:
        if self.chars:
            err.kind = "stream_broken"
            err.message = f"stream broke after {self.chars} characters: {err.message}"
            err.args = (err.message,)
        return err

    def final(self) -> StreamChunk:
        if not self.stopped and self.stop_reason is None:
            raise ProviderError(f"stream ended after {self.chars} characters without message_stop "
                                "(truncated by the server or a proxy)", kind="stream_broken",
                                retryable=True, usage=self.usage())
        return make_chunk("", self.stop_reason or "end_turn", self.usage())

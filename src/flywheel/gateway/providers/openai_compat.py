"""Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp, DeepSeek, Qwen …).

Uses the official `openai` SDK: its transport, auth headers and error types, with its own retries
off (`max_retries=0`; the gateway retries). One sync client per alias, one async client per alias
and event loop (an httpx async pool cannot outlive its loop). Non-streaming calls go through the
SDK's documented raw `client.post(..., cast_to=httpx.Response)` and decode the JSON directly: the
gateway needs five fields, not a full pydantic `ChatCompletion`, and this keeps the hot path lean.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
from openai.types.chat import ChatCompletionChunk

from flywheel.config import ModelAlias
from flywheel.gateway.providers.base import (
    ProviderError,
    ProviderResponse,
    make_chunk,
    make_usage,
    request_messages,
)
from flywheel.gateway.providers.sdk_errors import reported_usage, to_provider_error
from flywheel.types import ChatRequest, StreamChunk, Usage

NO_KEY = "sk-no-key-needed"  # local servers (Ollama, vLLM) accept any key; the SDK insists on one
_PATH = "/chat/completions"


def api_key(alias: ModelAlias, default_env: str) -> str:
    """The key from `api_key_env`; else `default_env` for the vendor's own endpoint; else a dummy key.

    A vendor key from the environment is only sent to the vendor's default URL, never to a custom
    base_url, so pointing an alias at a local server cannot leak it.
    """
    if alias.api_key_env:
        key = os.environ.get(alias.api_key_env)
        if not key:
            raise ProviderError(
                f"environment variable {alias.api_key_env} (api_key_env of model '{alias.model}') is not set",
                kind="config")
        return key
    if alias.base_url is None and os.environ.get(default_env):
        return os.environ[default_env]
    return NO_KEY


class OpenAICompatProvider:
    name = "openai_compat"

    def __init__(self, alias: ModelAlias):
        self.alias = alias
        self._key = api_key(alias, "OPENAI_API_KEY")
        self._client: openai.OpenAI | None = None
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai.AsyncOpenAI] = (
            weakref.WeakKeyDictionary())
        self._lock = threading.Lock()

    # -- clients
    @property
    def client(self) -> openai.OpenAI:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = openai.OpenAI(api_key=self._key, base_url=self.alias.base_url,
                                                 max_retries=0, timeout=self.alias.timeout)
        return self._client

    def aclient(self) -> openai.AsyncOpenAI:
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            client = openai.AsyncOpenAI(api_key=self._key, base_url=self.alias.base_url,
                                        max_retries=0, timeout=self.alias.timeout)
            self._aclients[loop] = client
        return client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- wire
    def body(self, alias: ModelAlias, request: ChatRequest, stream: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"model": alias.model, "messages": request_messages(request)}
        if alias.params:
            body.update(alias.params)
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.stop:
            body["stop"] = request.stop
        if request.response_format is not None:
            body["response_format"] = request.response_format
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    @staticmethod
    def parse(http: httpx.Response) -> ProviderResponse:
        try:
            data = json.loads(http.content)
        except ValueError as exc:
            raise ProviderError(f"response body is not valid JSON: {exc}", kind="bad_response",
                                status=http.status_code, retryable=True) from None
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            err = data.get("error") if isinstance(data, dict) else None
            raise ProviderError(f"response has no choices: {str(err or data)[:300]}", kind="bad_response",
                                status=http.status_code, retryable=True, usage=reported_usage(data)) from None
        return ProviderResponse(text, reported_usage(data), data.get("model") or "", choice.get("finish_reason"),
                                data)

    # -- calls
    def chat(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> ProviderResponse:
        try:
            http = self.client.post(_PATH, body=self.body(alias, request), cast_to=httpx.Response,
                                    options={"timeout": timeout})
        except Exception as exc:
            raise to_provider_error(exc) from exc
        return self.parse(http)

    async def achat(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> ProviderResponse:
        try:
            http = await self.aclient().post(_PATH, body=self.body(alias, request), cast_to=httpx.Response,
                                             options={"timeout": timeout})
        except Exception as exc:
            raise to_provider_error(exc) from exc
        return self.parse(http)

    def stream(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> Iterator[StreamChunk]:
        state = _StreamState()
        try:
            stream = self.client.post(_PATH, body=self.body(alias, request, stream=True),
                                      cast_to=ChatCompletionChunk, stream=True,
                                      stream_cls=openai.Stream[ChatCompletionChunk], options={"timeout": timeout})
        except Exception as exc:
            raise to_provider_error(exc) from exc
        try:
            for chunk in stream:
                delta = state.take(chunk)
                if delta:
                    yield make_chunk(delta)
        except Exception as exc:
            raise state.broken(to_provider_error(exc)) from exc
        finally:
            stream.close()
        yield state.final()

    async def astream(self, alias: ModelAlias, request: ChatRequest,
                      timeout: float) -> AsyncIterator[StreamChunk]:
        state = _StreamState()
        try:
            stream = await self.aclient().post(
                _PATH, body=self.body(alias, request, stream=True), cast_to=ChatCompletionChunk, stream=True,
                stream_cls=openai.AsyncStream[ChatCompletionChunk], options={"timeout": timeout})
        except Exception as exc:
            raise to_provider_error(exc) from exc
        try:
            async for chunk in stream:
                delta = state.take(chunk)
                if delta:
                    yield make_chunk(delta)
        except Exception as exc:
            raise state.broken(to_provider_error(exc)) from exc
        finally:
            await stream.close()
        yield state.final()


class _StreamState:
    """Collects finish_reason and usage across chunks (usage arrives last, in a chunk with no choices)."""

    __slots__ = ("chars", "finish_reason", "usage")

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.chars = 0

    def take(self, chunk: ChatCompletionChunk) -> str:
        if chunk.usage is not None:
            self.usage = make_usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
        if not chunk.choices:
            return ""
        choice = chunk.choices[0]
        if choice.finish_reason:
            self.finish_reason = choice.finish_reason
        delta = (choice.delta.content if choice.delta else None) or ""
        self.chars += len(delta)
        return delta

    def broken(self, err: ProviderError) -> ProviderError:
        if self.chars:
            err.kind = "stream_broken"
            err.message = f"stream broke after {self.chars} characters: {err.message}"
            err.args = (err.message,)
        err.usage = err.usage or self.usage
        return err

    def final(self) -> StreamChunk:
        if self.finish_reason is None:
            raise ProviderError(f"stream ended after {self.chars} characters without a finish_reason "
                                "(truncated by the server or a proxy)", kind="stream_broken",
                                retryable=True, usage=self.usage)
        return make_chunk("", self.finish_reason, self.usage)

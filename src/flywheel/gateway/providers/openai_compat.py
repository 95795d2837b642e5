"""Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp, DeepSeek, Qwen …).

Uses the official `openai` SDK: its transport, auth headers and error types, with its own retries
off (the clients, key and error mapping are `SdkProvider`'s). Non-streaming calls go through the
SDK's documented raw `client.post(..., cast_to=httpx.Response)` and decode the JSON directly: the
gateway needs five fields, not a full pydantic `ChatCompletion`, and this keeps the hot path lean.
"""

from __future__ import annotations

import json
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
from flywheel.gateway.providers.sdk import NO_KEY, SdkProvider, StreamFold, api_key
from flywheel.gateway.providers.sdk_errors import reported_usage
from flywheel.types import ChatRequest, StreamChunk, Usage

__all__ = ["NO_KEY", "OpenAICompatProvider", "api_key"]

_PATH = "/chat/completions"


class OpenAICompatProvider(SdkProvider):
    name = "openai_compat"
    key_env = "OPENAI_API_KEY"
    sdk_client = openai.OpenAI
    sdk_async_client = openai.AsyncOpenAI

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

    _decode = parse

    def _send(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> httpx.Response:
        return self.client.post(_PATH, body=self.body(alias, request), cast_to=httpx.Response,
                                options={"timeout": timeout})

    async def _asend(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> httpx.Response:
        return await self.aclient().post(_PATH, body=self.body(alias, request), cast_to=httpx.Response,
                                         options={"timeout": timeout})

    def _open(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> openai.Stream[ChatCompletionChunk]:
        return self.client.post(_PATH, body=self.body(alias, request, stream=True), cast_to=ChatCompletionChunk,
                                stream=True, stream_cls=openai.Stream[ChatCompletionChunk],
                                options={"timeout": timeout})

    async def _aopen(self, alias: ModelAlias, request: ChatRequest,
                     timeout: float) -> openai.AsyncStream[ChatCompletionChunk]:
        return await self.aclient().post(
            _PATH, body=self.body(alias, request, stream=True), cast_to=ChatCompletionChunk, stream=True,
            stream_cls=openai.AsyncStream[ChatCompletionChunk], options={"timeout": timeout})

    def _fold(self) -> _StreamState:
        return _StreamState()


class _StreamState(StreamFold):
    """Collects finish_reason and usage across chunks (usage arrives last, in a chunk with no choices)."""

    __slots__ = ("finish_reason", "usage")

    def __init__(self) -> None:
        super().__init__()
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

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
        err = super().broken(err)
        err.usage = err.usage or self.usage
        return err

    def final(self) -> StreamChunk:
        if self.finish_reason is None:
            raise self.truncated("a finish_reason", self.usage)
        return make_chunk("", self.finish_reason, self.usage)

"""Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp, DeepSeek, Qwen …).

Uses the official `openai` SDK: its transport, auth headers and error types, with its own retries
off (the clients, key and error mapping are `SdkProvider`'s). Non-streaming calls go through the
SDK's documented raw `client.post(..., cast_to=httpx.Response)` and decode the JSON directly: the
gateway needs five fields, not a full pydantic `ChatCompletion`, and this keeps the hot path lean.

Non-streaming calls (`chat` and `achat`) to an alias with an explicit `base_url` (every local or
third-party server) take a leaner road still: the same request (JSON body, `Authorization: Bearer`, a
`User-Agent`, and the SDK's `OpenAI-Organization` / `OpenAI-Project` headers when OPENAI_ORG_ID /
OPENAI_PROJECT_ID are set) over pooled keep-alive connections (`http_pool`: `http.client` for threads,
asyncio streams per event loop), with failures worded and classified as the SDK words them. That saves
~1-2 ms of CPU per call and importing the SDK at all (~0.8 s): what lets an eval of 1,000 cases at
concurrency 32 finish near the model's own latency. The SDK still serves OpenAI's own endpoint (its base
URL, auth and organisation settings come from its environment), streams, a base_url with a query string,
proxies from the environment, and redirects.

`request.n` > 1 is sent as `n`, and every choice of the answer comes back (`ProviderResponse.choices`, usage
covering all of them); the gateway asks again for any choices a server that ignores `n` left out.

`request.logprobs` / `top_logprobs` are sent as they are, and the answer's `choices[].logprobs.content` comes back
on `ProviderResponse.logprobs` (each choice's on `Choice.logprobs`; streamed, each chunk's on `StreamChunk.logprobs`).
A server that ignores them answers without: the result's `logprobs` is None.

`response_format` goes as it is, except to an alias with `json_schema: json_object` (llama-cpp-python's server):
a `json_schema` format goes there as `{type: json_object, schema}` (`json_object_form`).

Sampling: `top_p`, `seed`, `frequency_penalty`, `presence_penalty` and `user` are sent as they are (`top_k` is not:
OpenAI refuses it; set it in the alias's `params` for a server that takes it). A reasoning model's thinking —
`reasoning_content` / `reasoning` beside the answer, or a leading `<think>…</think>` in it — comes back on
`ProviderResponse.reasoning` (streamed: `StreamChunk.reasoning`), never in the text (reasoning.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from http.client import HTTPException
from typing import TYPE_CHECKING, Any

import flywheel
from flywheel.config import ModelAlias
from flywheel.gateway.providers.base import (
    ProviderError,
    ProviderResponse,
    make_chunk,
    make_usage,
    request_messages,
    request_params,
    trusted,
)
from flywheel.gateway.providers.http_pool import AsyncHttpPool, HttpPool, proxied
from flywheel.gateway.providers.reasoning import ThinkSplitter, joined, split_think, wire_reasoning
from flywheel.gateway.providers.sdk import NO_KEY, SdkProvider, StreamFold, api_key
from flywheel.gateway.providers.sdk_errors import parse_usage, reported_usage, short
from flywheel.gateway.retry import parse_retry_after
from flywheel.types import ChatRequest, Choice, StreamChunk, Usage

if TYPE_CHECKING:
    import httpx
    import openai
    from openai.types.chat import ChatCompletionChunk

__all__ = ["NO_KEY", "OpenAICompatProvider", "api_key"]

_PATH = "/chat/completions"
# what a dropped, truncated or garbled exchange raises on the pooled connections (sync and async)
_BROKEN = (OSError, HTTPException, EOFError, asyncio.LimitOverrunError, ValueError)


class OpenAICompatProvider(SdkProvider):
    name = "openai_compat"
    key_env = "OPENAI_API_KEY"
    supports_n = True  # `n` goes on the wire; every choice comes back (gateway/choices.py)
    supports_logprobs = True  # `logprobs` / `top_logprobs` go on the wire; the tokens come back

    def __init__(self, alias: ModelAlias):
        super().__init__(alias)
        self._headers = self._lean_headers(alias)  # None: every call through the SDK
        self._base_url = alias.base_url or ""
        self._pool = HttpPool(self._base_url, self._headers) if self._headers is not None else None
        self._apools: dict[asyncio.AbstractEventLoop, AsyncHttpPool] = {}  # one per event loop
        self._apools_lock = threading.Lock()

    @property
    def lean(self) -> bool:
        """Whether non-streaming calls (sync and async) take the pooled connections rather than the SDK."""
        return self._headers is not None

    def _lean_headers(self, alias: ModelAlias) -> dict[str, str] | None:
        """Headers of the pooled connections' requests, or None where the SDK must make every call."""
        base = alias.base_url
        if not base or "?" in base or "#" in base or not base.startswith(("http://", "https://")) or proxied():
            return None
        headers = {"Authorization": f"Bearer {self._key}", "User-Agent": f"flywheel/{flywheel.__version__}"}
        for header, env in (("OpenAI-Organization", "OPENAI_ORG_ID"), ("OpenAI-Project", "OPENAI_PROJECT_ID")):
            if os.environ.get(env):
                headers[header] = os.environ[env]
        return headers

    def _sdk_class(self, is_async: bool) -> type:
        import openai

        return openai.AsyncOpenAI if is_async else openai.OpenAI

    def body(self, alias: ModelAlias, request: ChatRequest, stream: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"model": alias.model, "messages": request_messages(request)}
        if alias.params:
            body.update(alias.params)
        body.update(request_params(request))
        if alias.json_schema == "json_object" and isinstance(body.get("response_format"), dict):
            body["response_format"] = json_object_form(body["response_format"])
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    @staticmethod
    def parse(http: httpx.Response) -> ProviderResponse:
        return parse_body(http.status_code, http.content)

    _decode = parse  # type: ignore[assignment]  # a staticmethod standing in for SdkProvider._decode

    # -- calls
    def chat(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> ProviderResponse:
        pool = self._pool
        if pool is None:
            return super().chat(alias, request, timeout)
        body = json.dumps(self.body(alias, request), ensure_ascii=False).encode()
        try:
            status, headers, content = pool.post(_PATH, body, timeout)
        except Exception as exc:
            raise transport_error(exc) from exc
        if status < 300:
            return parse_body(status, content)
        if status < 400:  # a redirect: the SDK follows it
            return super().chat(alias, request, timeout)
        raise status_error(status, headers, content)

    async def achat(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> ProviderResponse:
        if self._headers is None:
            return await super().achat(alias, request, timeout)
        pool = self._apools.get(asyncio.get_running_loop()) or self._new_apool()
        body = json.dumps(self.body(alias, request), ensure_ascii=False).encode()
        try:
            status, headers, content = await pool.post(_PATH, body, timeout)
        except Exception as exc:
            raise transport_error(exc) from exc
        if status < 300:
            return parse_body(status, content)
        if status < 400:
            return await super().achat(alias, request, timeout)
        raise status_error(status, headers, content)

    def _new_apool(self) -> AsyncHttpPool:
        loop = asyncio.get_running_loop()
        with self._apools_lock:
            # forget the pools of loops that have ended: their connections can no longer be used (or closed
            # cleanly) from any loop; the sockets close when collected
            for ended in [other for other in self._apools if other.is_closed()]:
                del self._apools[ended]
            pool = self._apools.get(loop)
            if pool is None:
                pool = self._apools[loop] = AsyncHttpPool(self._base_url, self._headers or {})
        return pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        with self._apools_lock:
            self._apools.clear()
        super().close()

    async def aclose(self) -> None:
        """Close this event loop's pooled connections (before the loop ends; later calls reconnect)."""
        with self._apools_lock:
            pool = self._apools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            pool.close()

    # -- the SDK's wire steps
    def _send(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> httpx.Response:
        import httpx

        return self.client.post(_PATH, body=self.body(alias, request), cast_to=httpx.Response,
                                options={"timeout": timeout})

    async def _asend(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> httpx.Response:
        import httpx

        return await self.aclient().post(_PATH, body=self.body(alias, request), cast_to=httpx.Response,
                                         options={"timeout": timeout})

    def _open(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> openai.Stream[ChatCompletionChunk]:
        import openai
        from openai.types.chat import ChatCompletionChunk

        return self.client.post(_PATH, body=self.body(alias, request, stream=True), cast_to=ChatCompletionChunk,
                                stream=True, stream_cls=openai.Stream[ChatCompletionChunk],
                                options={"timeout": timeout})

    async def _aopen(self, alias: ModelAlias, request: ChatRequest,
                     timeout: float) -> openai.AsyncStream[ChatCompletionChunk]:
        import openai
        from openai.types.chat import ChatCompletionChunk

        return await self.aclient().post(
            _PATH, body=self.body(alias, request, stream=True), cast_to=ChatCompletionChunk, stream=True,
            stream_cls=openai.AsyncStream[ChatCompletionChunk], options={"timeout": timeout})

    def _fold(self) -> _StreamState:
        return _StreamState()


def parse_body(status: int, content: bytes) -> ProviderResponse:
    """A 2xx chat-completions body → ProviderResponse; a body without an answer is a retryable bad_response."""
    try:
        data = json.loads(content)
    except ValueError as exc:
        raise ProviderError(f"response body is not valid JSON: {exc}", kind="bad_response",
                            status=status, retryable=True) from None
    try:
        choice = data["choices"][0]
        message = choice["message"]
        text = message.get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        err = data.get("error") if isinstance(data, dict) else None
        raise ProviderError(f"response has no choices: {str(err or data)[:300]}", kind="bad_response",
                            status=status, retryable=True, usage=reported_usage(data)) from None
    choices = data["choices"]
    inline, text = split_think(text)
    return ProviderResponse(text, reported_usage(data), data.get("model") or "", choice.get("finish_reason"),
                            data, message.get("tool_calls") or None,
                            parse_choices(choices, status) if len(choices) > 1 else None, tokens(choice),
                            joined(wire_reasoning(message), inline))


def tokens(choice: Any) -> list[dict[str, Any]] | None:
    """A wire choice's `logprobs.content` (the answer's tokens with their log-probabilities), or None."""
    logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    return content if isinstance(content, list) and content else None


def parse_choices(choices: list[Any], status: int) -> list[Choice]:
    """Every choice of an n > 1 answer, in `index` order (usage, reported once, covers them all)."""
    out: list[tuple[int, Choice]] = []
    for pos, choice in enumerate(choices):
        try:
            message = choice["message"]
            inline, text = split_think(message.get("content") or "")
            out.append((choice.get("index", pos), trusted(Choice, {
                "text": text, "finish_reason": choice.get("finish_reason"),
                "tool_calls": message.get("tool_calls") or None, "logprobs": tokens(choice),
                "reasoning": joined(wire_reasoning(message), inline)})))
        except (KeyError, TypeError, AttributeError):
            raise ProviderError(f"choice {pos} has no message: {str(choice)[:300]}", kind="bad_response",
                                status=status, retryable=True) from None
    out.sort(key=lambda item: item[0] if isinstance(item[0], int) else 0)
    return [c for _, c in out]


def status_error(status: int, headers: Any, content: bytes) -> ProviderError:
    """An error status as the SDK reports it ("Error code: 429 - <the body's error.message>")."""
    message = f"Error code: {status}"
    try:
        data = json.loads(content)
    except ValueError:
        data = None
    error = data.get("error", data) if isinstance(data, dict) else None
    detail = error.get("message") if isinstance(error, dict) else None
    if isinstance(detail, str) and detail:
        message += f" - {detail}"
    return ProviderError.from_status(status, short(message), retry_after=parse_retry_after(headers),
                                     usage=reported_usage(data))


def json_object_form(response_format: dict[str, Any]) -> dict[str, Any]:
    """A `json_schema` response_format as `{type: json_object, schema}`: the form llama-cpp-python's server (and
    other servers of the Anyscale JSON mode) constrain by, where they refuse type json_schema (alias
    `json_schema: json_object`). Any other response_format goes as it is."""
    spec = response_format.get("json_schema") if response_format.get("type") == "json_schema" else None
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return {"type": "json_object", "schema": schema} if isinstance(schema, dict) else response_format


def transport_error(exc: Exception) -> ProviderError:
    """A failure of the pooled connection, classified like the SDK's APITimeoutError / APIConnectionError."""
    if isinstance(exc, TimeoutError):
        return ProviderError("request timed out", kind="timeout", retryable=True)
    if isinstance(exc, _BROKEN):  # refused, reset, dropped, truncated or garbled response …
        return ProviderError(short(f"connection failed: {type(exc).__name__}: {exc}"), kind="connection",
                             retryable=True)
    return ProviderError(short(f"{type(exc).__name__}: {exc}"), kind="other", retryable=False)


class _StreamState(StreamFold):
    """Collects finish_reason and usage across chunks (usage arrives last, in a chunk with no choices); hands each
    chunk's log-probabilities (`logprobs`) and reasoning (`thought`: `delta.reasoning_content`, or a leading
    <think> block of the content) on."""

    __slots__ = ("finish_reason", "splitter", "usage")

    def __init__(self) -> None:
        super().__init__()
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.splitter = ThinkSplitter()

    def take(self, chunk: ChatCompletionChunk) -> str:
        if chunk.usage is not None:  # the final chunk's (cached and reasoning tokens in their details)
            self.usage = parse_usage(chunk.usage.model_dump()) or make_usage(0, 0)
        if not chunk.choices:
            return ""
        choice = chunk.choices[0]
        if choice.finish_reason:
            self.finish_reason = choice.finish_reason
        if choice.delta is None:
            return ""
        if choice.delta.tool_calls:
            self.calls = [c.model_dump(exclude_none=True) for c in choice.delta.tool_calls]
        if choice.logprobs is not None and choice.logprobs.content:
            self.logprobs = [t.model_dump() for t in choice.logprobs.content]
        thought, delta = self.splitter.feed(choice.delta.content or "")
        thought = (wire_reasoning(choice.delta) or "") + thought
        if thought:
            self.thought = thought
            self.chars += len(thought)
        self.chars += len(delta)
        return delta

    def broken(self, err: ProviderError) -> ProviderError:
        err = super().broken(err)
        err.usage = err.usage or self.usage
        return err

    def final(self) -> StreamChunk:
        if self.finish_reason is None:
            raise self.truncated("a finish_reason", self.usage)
        thought, rest = self.splitter.flush()
        return make_chunk(rest, self.finish_reason, self.usage, reasoning=thought or None)

"""The provider protocol: what the gateway needs from one model backend.

A provider is built once per model alias, by the factory registered under its name
(`flywheel.gateway.providers.register`): ``factory(alias: ModelAlias) -> Provider``. A provider
class whose ``__init__(self, alias)`` takes the alias is its own factory. Build expensive things
(SDK clients, loaded models) lazily or in ``__init__`` and reuse them: the gateway calls the same
instance for every request to that alias, from many threads and asyncio tasks at once.

Each call gets the alias (model name, params, base_url), the caller's `ChatRequest`, and the
per-attempt `timeout` in seconds. It makes ONE attempt — the gateway owns retries, backoff,
fallback, cost and tracing — and must:

- return a `ProviderResponse` (``usage=None`` when the backend reports none), or
- raise `ProviderError` saying whether the failure is worth retrying (`retryable`), the HTTP
  status when there is one, the server's Retry-After in seconds, and any token usage the
  server reported for the failed attempt. Any other exception is treated as a non-retryable
  bug in the provider and is reported with its type and message.

Several choices (`request.n` > 1, OpenAI's `n`): a provider whose backend answers n choices in one request sets
``supports_n = True``, sends `n` and returns them all in `ProviderResponse.choices` (its `usage` covering all of
them). Other providers never see n > 1: the gateway sends them n requests with n = 1 and merges the answers
(gateway/choices.py).

Log-probabilities (`request.logprobs` / `top_logprobs`, OpenAI's): a provider whose backend returns them sets
``supports_logprobs = True``, sends them and returns the answer's tokens in `ProviderResponse.logprobs` (and each
choice's in `Choice.logprobs`; streamed, each chunk's in `StreamChunk.logprobs`), in OpenAI's shape:
``[{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]``. The gateway never sends a request asking
for them to any other provider (gateway/logprobs.py).

Streaming yields `StreamChunk`s: text deltas, then a last chunk carrying `finish_reason` and, when
the backend reports it, `usage`. A stream that breaks part-way raises `ProviderError` (the gateway
only retries when nothing was yielded yet). Async variants have the same contract.

Minimal provider (an offline echo model):

    class EchoProvider(BaseProvider):
        name = "echo"
        def chat(self, alias, request, timeout):
            text = request.last_user()
            return ProviderResponse(text, Usage(input_tokens=1, output_tokens=1), alias.model or "echo", "stop")
    # BaseProvider supplies stream(), achat() and astream() from chat() when a backend has no native ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from flywheel.config import ModelAlias
from flywheel.types import ChatRequest, Choice, StreamChunk, Usage

R = TypeVar("R")

# HTTP statuses worth another attempt: rate limits, server errors, proxies timing out.
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})


class ProviderResponse:
    """One successful completion as the backend returned it."""

    __slots__ = ("choices", "finish_reason", "logprobs", "model", "raw", "reasoning", "text", "tool_calls", "usage")

    def __init__(self, text: str, usage: Usage | None = None, model: str = "",
                 finish_reason: str | None = None, raw: dict[str, Any] | None = None,
                 tool_calls: list[dict[str, Any]] | None = None, choices: list[Choice] | None = None,
                 logprobs: list[dict[str, Any]] | None = None, reasoning: str | None = None):
        self.text = text
        self.reasoning = reasoning  # what a reasoning model thought, kept out of `text` (None: nothing)
        # every choice when several were asked for (the first is text / finish_reason / tool_calls); else None
        self.choices = choices
        self.tool_calls = tool_calls  # OpenAI-wire tool calls the model asked for, None for none
        self.usage = usage  # None when the backend reported no token counts
        self.model = model  # the model name the backend says answered
        self.finish_reason = finish_reason
        self.raw = raw  # the decoded wire response when it is at hand for free, else None
        self.logprobs = logprobs  # the first choice's tokens with their log-probabilities, when asked for

    def __repr__(self) -> str:
        return f"ProviderResponse(text={self.text[:40]!r}, model={self.model!r}, usage={self.usage!r})"


class ProviderError(Exception):
    """One failed attempt. `kind` is one of: rate_limit, server, timeout, connection, client,
    bad_response, stream_broken, config, other."""

    def __init__(self, message: str, *, kind: str = "other", status: int | None = None,
                 retryable: bool = False, retry_after: float | None = None, usage: Usage | None = None):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after  # seconds the server asked us to wait, already parsed
        self.usage = usage  # tokens the server reported for this failed attempt, if any

    @classmethod
    def from_status(cls, status: int, message: str, *, retry_after: float | None = None,
                    usage: Usage | None = None) -> ProviderError:
        if status == 429:
            kind = "rate_limit"
        elif status >= 500:
            kind = "server"
        else:
            kind = "client"
        return cls(message, kind=kind, status=status, retryable=status in RETRYABLE_STATUS,
                   retry_after=retry_after, usage=usage)


@runtime_checkable
class Provider(Protocol):
    name: str

    def chat(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> ProviderResponse: ...

    def stream(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> Iterator[StreamChunk]: ...

    async def achat(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> ProviderResponse: ...

    def astream(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> AsyncIterator[StreamChunk]: ...


class BaseProvider:
    """Convenience base: implement `chat`; streaming and async fall back to it.

    The fallbacks run `chat` in a worker thread for `achat`, and emit the whole text as one chunk
    for `stream`. Backends with native streaming or async clients override them.
    """

    name: ClassVar[str] = "base"
    supports_n: ClassVar[bool] = False  # True: one request answers `n` choices (see the module docstring)
    supports_logprobs: ClassVar[bool] = False  # True: it returns log-probabilities when asked (module docstring)

    def __init__(self, alias: ModelAlias | None = None):
        self.alias = alias

    def chat(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> ProviderResponse:
        raise NotImplementedError

    def stream(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> Iterator[StreamChunk]:
        resp = self.chat(alias, request, timeout)
        if resp.reasoning:
            yield make_chunk("", reasoning=resp.reasoning)
        if resp.text:
            yield make_chunk(resp.text)
        yield make_chunk("", resp.finish_reason or "stop", resp.usage, indexed(resp.tool_calls))

    async def achat(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> ProviderResponse:
        return await asyncio.to_thread(self.chat, alias, request, timeout)

    async def astream(self, alias: ModelAlias, request: ChatRequest,
                      timeout: float) -> AsyncIterator[StreamChunk]:
        resp = await self.achat(alias, request, timeout)
        if resp.reasoning:
            yield make_chunk("", reasoning=resp.reasoning)
        if resp.text:
            yield make_chunk(resp.text)
        yield make_chunk("", resp.finish_reason or "stop", resp.usage, indexed(resp.tool_calls))

    def close(self) -> None:
        """Release clients/connections. Optional."""


def trusted(cls: type[R], fields: dict[str, Any]) -> R:
    """A pydantic record from complete, already-valid fields, skipping validation (several times cheaper
    than `model_construct`; this is the per-call hot path). `fields` must name every field of `cls`."""
    rec = object.__new__(cls)
    object.__setattr__(rec, "__dict__", fields)
    object.__setattr__(rec, "__pydantic_fields_set__", set(fields))
    object.__setattr__(rec, "__pydantic_extra__", None)
    object.__setattr__(rec, "__pydantic_private__", None)
    return rec


def make_usage(input_tokens: int, output_tokens: int, cache_read: int = 0, cache_write: int = 0,
               reasoning: int = 0) -> Usage:
    """`input_tokens`: all of them, the cached part included; `output_tokens` the reasoning part included (see
    Usage)."""
    return trusted(Usage, {"input_tokens": input_tokens, "output_tokens": output_tokens,
                           "cache_read_tokens": cache_read, "cache_write_tokens": cache_write,
                           "reasoning_tokens": reasoning})


def make_chunk(delta: str, finish_reason: str | None = None, usage: Usage | None = None,
               tool_calls: list[dict[str, Any]] | None = None,
               logprobs: list[dict[str, Any]] | None = None, reasoning: str | None = None) -> StreamChunk:
    return trusted(StreamChunk, {"delta": delta, "finish_reason": finish_reason, "usage": usage,
                                 "tool_calls": tool_calls, "logprobs": logprobs, "reasoning": reasoning})


def indexed(tool_calls: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Whole tool calls as stream pieces (`delta.tool_calls` carry an `index`)."""
    return [{"index": i, **c} for i, c in enumerate(tool_calls)] if tool_calls else None


def request_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """The request's messages as OpenAI-wire dicts (`name`, `tool_calls`, `tool_call_id` only when set; an
    assistant turn that only calls tools has `content: null`, as OpenAI sends it)."""
    out = []
    for m in request.messages:
        d: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.name:
            d["name"] = m.name
        if m.tool_calls:
            d["tool_calls"] = m.tool_calls
            if not m.content:
                d["content"] = None
        if m.tool_call_id is not None:
            d["tool_call_id"] = m.tool_call_id
        out.append(d)
    return out


def request_params(request: ChatRequest) -> dict[str, Any]:
    """The sampling parameters the request sets (OpenAI-wire names), in the order providers send them."""
    params: dict[str, Any] = {}
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.max_tokens is not None:
        params["max_tokens"] = request.max_tokens
    if request.stop:
        params["stop"] = request.stop
    if request.response_format is not None:
        params["response_format"] = request.response_format
    if request.tools:
        params["tools"] = request.tools
    if request.tool_choice is not None:
        params["tool_choice"] = request.tool_choice
    if request.parallel_tool_calls is not None and request.tools:  # OpenAI refuses it without tools
        params["parallel_tool_calls"] = request.parallel_tool_calls
    if request.n != 1:
        params["n"] = request.n
    if request.logprobs is not None:
        params["logprobs"] = request.logprobs
    if request.top_logprobs is not None:
        params["top_logprobs"] = request.top_logprobs
    for name in OPENAI_SAMPLING:
        value = request.sampling(name)
        if value is not None:
            params[name] = value
    return params


# the sampling parameters OpenAI's chat API takes besides temperature (and so OpenAI-compatible servers and Azure):
# sent as they are; `top_k` is not among them (OpenAI refuses it), see docs/gateway.md "Sampling parameters"
OPENAI_SAMPLING = ("top_p", "seed", "frequency_penalty", "presence_penalty", "user")


def estimate_tokens(text: str) -> int:
    """Rough token count (about 4 characters per token) for spans when the backend reports none."""
    return (len(text) + 3) // 4

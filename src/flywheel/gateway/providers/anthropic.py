"""Anthropic Messages API through the official `anthropic` SDK.

System messages become the `system=` parameter (joined by blank lines). Tools, tool_choice, assistant
`tool_calls` and `tool` messages are translated to Anthropic's tools, tool_use and tool_result blocks, and
tool_use blocks in the answer (streamed too: `input_json_delta`) back to OpenAI `tool_calls` with
finish_reason "tool_calls" (see gateway/tools.py). The SDK's own retries are off (`max_retries=0`); the gateway retries. `max_tokens`, which
the API requires, comes from the request, else `params.max_tokens` on the alias, else 1024. A `response_format`
of type json_schema goes as Anthropic's structured output (`output_config.format`). `top_p` and `top_k` are sent,
`user` as `metadata.user_id`; `seed`, `frequency_penalty` and `presence_penalty` have no Anthropic form and are
dropped (the Messages API refuses unknown fields).

A request from the server's `/v1/messages` route may carry its Anthropic body (thinking, cache_control, images,
betas …): it is sent as it came, less the thinking blocks no Anthropic model signed (`signed_history`: another
provider's reasoning, which Anthropic refuses), and thinking blocks and cache usage come back (anthropic_native.py).
The gateway's own messages carry no reasoning, so a translated request never sends an earlier turn's thinking.

Extended thinking (`thinking: {type: enabled, …}`, from the alias's params or such a body): the thinking blocks'
text is the result's `reasoning` (streamed: `StreamChunk.reasoning`, from thinking_delta events), never part of
its text; the signed blocks themselves stay in `raw` for the `/v1/messages` pass-through. Redacted thinking has
no readable text and adds none.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic

from flywheel.config import ModelAlias
from flywheel.gateway.providers import anthropic_native as native_
from flywheel.gateway.providers.anthropic_native import NativeExchange
from flywheel.gateway.providers.base import ProviderResponse, make_chunk, make_usage
from flywheel.gateway.providers.reasoning import joined
from flywheel.gateway.providers.sdk import SdkProvider, StreamFold
from flywheel.gateway.tools import anthropic_messages, anthropic_tool_choice, anthropic_tools, tool_calls_of
from flywheel.types import ChatRequest, StreamChunk, Usage

DEFAULT_MAX_TOKENS = 1024
# Keyword arguments this SDK version's `messages.create` accepts; anything else goes in `extra_body`, so
# params keep working across SDK versions that add or drop named arguments (e.g. `temperature`).
_KNOWN = frozenset(inspect.signature(anthropic.resources.Messages.create).parameters) - {
    "self", "model", "messages", "max_tokens", "system", "stream", "timeout", "extra_body", "extra_headers"}
_PLAIN_BLOCKS = frozenset({"text", "tool_use"})  # what the gateway's result holds without the native content


def anthropic_output_format(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """An OpenAI `response_format` of type json_schema as Anthropic's structured-output format
    (`output_config.format`); json_object and text have no Anthropic form and stay a prompt matter."""
    if not response_format or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return {"type": "json_schema", "schema": schema} if isinstance(schema, dict) else None


class AnthropicProvider(SdkProvider):
    name = "anthropic"
    key_env = "ANTHROPIC_API_KEY"
    supports_n = False  # the Messages API has no `n`: the gateway sends n requests and merges them (choices.py)
    sdk_client = anthropic.Anthropic
    sdk_async_client = anthropic.AsyncAnthropic

    def kwargs(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> dict[str, Any]:
        system, messages = anthropic_messages(request.messages)
        params = dict(alias.params)
        max_tokens = request.max_tokens or params.pop("max_tokens", None) or DEFAULT_MAX_TOKENS
        params.pop("max_tokens", None)
        kw: dict[str, Any] = {"model": alias.model, "messages": messages, "max_tokens": max_tokens,
                              "timeout": timeout}
        if system:
            kw["system"] = system
        if request.temperature is not None:
            params["temperature"] = request.temperature
        for name in ("top_p", "top_k"):  # seed and the penalties have no Anthropic form: dropped
            if (value := request.sampling(name)) is not None:
                params[name] = value
        if request.user:
            params["metadata"] = {**params.get("metadata", {}), "user_id": request.user}
        if request.stop:
            params["stop_sequences"] = request.stop
        if request.tools:
            params["tools"] = anthropic_tools(request.tools)
        output_format = anthropic_output_format(request.response_format)
        if output_format is not None:
            params["output_config"] = {**params.get("output_config", {}), "format": output_format}
        parallel = params.pop("parallel_tool_calls", None)
        if request.parallel_tool_calls is not None:
            parallel = request.parallel_tool_calls
        choice = anthropic_tool_choice(request.tool_choice, parallel if request.tools else None)
        if choice is not None:
            params["tool_choice"] = choice
        native = native_.usable_exchange(request)
        if native is not None:
            native_.apply(kw, params, native)
            kw["messages"], bare = signed_history(kw["messages"])
            if bare:  # another provider's tool loop: Anthropic refuses thinking on for it
                params.pop("thinking", None)
        extra: dict[str, Any] = {}
        for key, value in params.items():
            (kw if key in _KNOWN else extra)[key] = value
        if extra:
            kw["extra_body"] = extra
        return kw

    @staticmethod
    def _decode(msg: Any) -> ProviderResponse:
        blocks = msg.content or []
        text = "".join(getattr(b, "text", "") or "" for b in blocks)
        reasoning = joined(*(getattr(b, "thinking", None) for b in blocks if b.type == "thinking"))
        usage = None
        cache: dict[str, Any] = {}
        if msg.usage is not None:
            usage = anthropic_usage(msg.usage.input_tokens or 0, msg.usage.output_tokens or 0, msg.usage)
            cache = native_.usage_fields(msg.usage)
        calls = tool_calls_of(blocks)
        stop = "tool_calls" if msg.stop_reason == "tool_use" else msg.stop_reason
        raw = None
        sequence = getattr(msg, "stop_sequence", None)
        if any(b.type not in _PLAIN_BLOCKS for b in blocks) or any(cache.values()) or sequence:
            raw = {native_.RAW: {"content": [native_.block_dict(b) for b in blocks], "usage": cache,
                                 "stop_sequence": sequence}}
        return ProviderResponse(text, usage, msg.model or "", stop, raw, calls, reasoning=reasoning)

    def _send(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> Any:
        return self.client.messages.create(**self.kwargs(alias, request, timeout))

    async def _asend(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> Any:
        return await self.aclient().messages.create(**self.kwargs(alias, request, timeout))

    def _open(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> Any:
        return self.client.messages.create(stream=True, **self.kwargs(alias, request, timeout))

    async def _aopen(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> Any:
        return await self.aclient().messages.create(stream=True, **self.kwargs(alias, request, timeout))

    def _fold(self, native: NativeExchange | None = None) -> _Events:
        return _Events(native)

    # the SdkProvider loops, with the request's native exchange on the fold: a thinking event yields an empty
    # chunk, so the route relays the events it queued as they come
    def stream(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> Iterator[StreamChunk]:
        with self._fold(native_.usable_exchange(request)) as fold:
            fold.events = self._open(alias, request, timeout)
            for event in fold.events:
                delta = fold.take(event)
                if fold.calls or delta or fold.relayed or fold.thought:
                    yield make_chunk(delta, tool_calls=fold.calls, reasoning=fold.thought)
                    fold.calls, fold.relayed, fold.thought = None, False, None
        yield fold.final()

    async def astream(self, alias: ModelAlias, request: ChatRequest,
                      timeout: float) -> AsyncIterator[StreamChunk]:
        async with self._fold(native_.usable_exchange(request)) as fold:
            fold.events = await self._aopen(alias, request, timeout)
            async for event in fold.events:
                delta = fold.take(event)
                if fold.calls or delta or fold.relayed or fold.thought:
                    yield make_chunk(delta, tool_calls=fold.calls, reasoning=fold.thought)
                    fold.calls, fold.relayed, fold.thought = None, False, None
        yield fold.final()


class _Events(StreamFold):
    """Folds the Messages stream events: text deltas, input tokens at start, output tokens and stop at end. With
    a native exchange, the events of other blocks (thinking …) and the cache usage go to it (`relayed`: the last
    event was one)."""

    __slots__ = ("cache", "input_tokens", "native", "native_blocks", "output_tokens", "relayed", "stop_reason", "stopped",
                 "thought", "tools")

    def __init__(self, native: NativeExchange | None = None) -> None:
        super().__init__()
        self.input_tokens = self.output_tokens = 0
        self.cache = (0, 0)  # cache_read_input_tokens, cache_creation_input_tokens
        self.stop_reason: str | None = None
        self.stopped = False
        self.tools: dict[int, int] = {}  # content block index → tool-call index
        self.native = native
        self.native_blocks: set[int] = set()  # content block indexes relayed natively
        self.relayed = False
        self.thought: str | None = None  # the last event's thinking text (a thinking_delta), for the chunk

    def _relay(self, event: Any) -> bool:
        """Queue a native block's event on the exchange; False when it is not one."""
        if self.native is None:
            return False
        kind = event.type
        if kind == "content_block_start" and event.content_block.type not in _PLAIN_BLOCKS:
            self.native_blocks.add(event.index)
        elif kind not in ("content_block_delta", "content_block_stop") or event.index not in self.native_blocks:
            return False
        self.native.add_event(event.model_dump(mode="json", exclude_none=True))
        self.relayed = True
        return True

    def take(self, event: Any) -> str:
        kind = event.type
        if kind == "content_block_delta" and event.delta.type == "thinking_delta":
            self.think(event.index, event.delta.thinking)  # the reasoning, relayed natively too when native
        if self._relay(event):
            return ""
        if kind == "content_block_delta":
            delta = event.delta
            if delta.type == "input_json_delta":
                index = self.tools.get(event.index, 0)
                self.calls = [{"index": index, "function": {"arguments": delta.partial_json or ""}}]
                return ""
            text = getattr(delta, "text", None) or ""
            self.chars += len(text)
            return text
        if kind == "content_block_start" and event.content_block.type == "tool_use":
            block = event.content_block
            index = self.tools[event.index] = len(self.tools)
            self.calls = [{"index": index, "id": block.id, "type": "function",
                           "function": {"name": block.name, "arguments": ""}}]
        elif kind == "message_start" and event.message.usage is not None:
            self.input_tokens = event.message.usage.input_tokens or 0
            self.cache = (getattr(event.message.usage, "cache_read_input_tokens", 0) or 0,
                          getattr(event.message.usage, "cache_creation_input_tokens", 0) or 0)
            self.output_tokens = event.message.usage.output_tokens or 0
            if self.native is not None:
                self.native.input_tokens = self.input_tokens
                self.native.usage.update(native_.usage_fields(event.message.usage))
        elif kind == "message_delta":
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            if event.usage is not None:
                self.output_tokens = event.usage.output_tokens or self.output_tokens
            if self.native is not None:
                self.native.stop_sequence = getattr(event.delta, "stop_sequence", None)
                if event.usage is not None:
                    self.native.usage.update(native_.usage_fields(event.usage))
        elif kind == "message_stop":
            self.stopped = True
        return ""

    def usage(self) -> Usage | None:
        if not (self.input_tokens or self.output_tokens or any(self.cache)):
            return None
        read, write = self.cache
        return make_usage(self.input_tokens + read + write, self.output_tokens, read, write)

    def final(self) -> StreamChunk:
        if not self.stopped and self.stop_reason is None:
            raise self.truncated("message_stop", self.usage())
        stop = "tool_calls" if self.stop_reason == "tool_use" else self.stop_reason
        return make_chunk("", stop or "end_turn", self.usage())


def signed_history(messages: list[Any]) -> tuple[list[Any], bool]:
    """(the messages without the thinking blocks no Anthropic model signed, whether thinking must be off). A thinking
    block with an empty or missing `signature` is another provider's reasoning (/v1/messages answers an
    OpenAI-compatible model's thinking as one), which Anthropic refuses (400): it is dropped, and a turn left with no
    content goes too (Anthropic combines consecutive turns of one role). Signed and redacted thinking stay as sent.
    When the last assistant turn calls tools and so no longer starts with a thinking block, that tool loop was not
    an Anthropic model's thinking turn: Anthropic refuses it with thinking on, so thinking is off for this request
    (a tool loop keeps one thinking configuration)."""
    out: list[Any] = []
    last: list[Any] = []  # the last assistant turn's content, when blocks were dropped from it
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        kept = [b for b in content if not _unsigned(b)] if isinstance(content, list) else None
        dropped = kept is not None and len(kept) < len(content or ())
        if dropped:
            m = {**m, "content": kept}
        if isinstance(m, dict) and m.get("role") == "assistant":
            last = kept if dropped and kept else []
        if not dropped or kept:
            out.append(m)
    first = last[0] if last and isinstance(last[0], dict) else {}
    bare = any(isinstance(b, dict) and b.get("type") == "tool_use" for b in last) and \
        first.get("type") not in ("thinking", "redacted_thinking")
    return out, bare


def _unsigned(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "thinking" and not block.get("signature")


def anthropic_usage(input_tokens: int, output_tokens: int, usage: Any) -> Usage:
    """Anthropic reports its cache reads and writes apart from `input_tokens`; flywheel's input counts them all."""
    read = getattr(usage, "cache_read_input_tokens", 0) or 0
    write = getattr(usage, "cache_creation_input_tokens", 0) or 0
    return make_usage(input_tokens + read + write, output_tokens, read, write)

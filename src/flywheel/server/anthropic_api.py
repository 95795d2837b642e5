"""POST /v1/messages: the Anthropic Messages wire, through the same gateway (and `app:NAME` apps), so Anthropic
SDK users can point `base_url` here. Non-streaming and streaming (Anthropic's SSE event sequence).

Tools in Anthropic's shape (`tools`, `tool_choice`, tool_use / tool_result blocks) are translated to the gateway's
OpenAI shape (gateway/tools.py), so they work with any provider; tool calls come back as tool_use blocks with
stop_reason "tool_use" (streamed as content_block_start + `input_json_delta`). `metadata.user_id` and
`metadata.session_id` (or the `x-flywheel-session-id` header) land on the trace and in the request's metadata (a
route's sticky arm), and a chat app continues that session, as on the OpenAI wire; `disable_parallel_tool_use` is
the gateway's `parallel_tool_calls: false`. `output_config.format`
(`messages.parse`) becomes the gateway's `response_format`; POST /v1/messages/count_tokens estimates input tokens.
An `app:NAME` model streams the app's answer as it comes (keepalive.app_stream: sentence by sentence once its
output guards passed each one), as on /v1/chat/completions.

To an `anthropic` alias the body also goes as it came (gateway/providers/anthropic_native.py): `thinking` with the
signed thinking blocks of earlier turns, `cache_control` breakpoints, images and documents, `top_k`, `top_p`,
`service_tier`, `metadata.user_id`, the `anthropic-beta` header and fields this code does not know
(`context_management` …); the answer's thinking blocks (streamed: thinking_delta, signature_delta) and cache usage
come back. Other providers get the translation: thinking and cache_control dropped, `top_p` (and `top_k`, for the
providers that take it) and `metadata.user_id` as the gateway's `top_p` / `top_k` / `user`, fields they have no use
for ignored; an OpenAI-compatible reasoning model's thinking (`reasoning_content`, or a leading `<think>` block)
comes back as a leading thinking block with an empty signature (streamed: thinking_delta); image and document blocks, and Anthropic's server tools (`web_search_…`, `web_fetch_…`,
`code_execution_…`, `text_editor_…`, `bash_…`: a tool `type` other than custom) with their server_tool_use /
`…_tool_result` blocks, are a 400 unless every alias the request may reach is an Anthropic one; then they go as
they came and their result blocks come back as Anthropic sent them, streamed too.

A stream that waits on the upstream for longer than the keep-alive interval (FLYWHEEL_STREAM_PING_SECONDS,
default 10) sends a `ping` event, as Anthropic does, so proxies do not cut it (keepalive.py). An upstream silent
for the whole interval before its first chunk (a model thinking) gets the stream opened with `message_start` and
`ping` anyway; an upstream failure before that is an HTTP status, after it an `error` event."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from flywheel.errors import UserError
from flywheel.gateway.call import span_messages
from flywheel.gateway.providers import anthropic_native as native_
from flywheel.gateway.tools import (
    ToolFormatError,
    merge_tool_deltas,
    openai_messages,
    openai_tool_choice,
    openai_tools,
    tool_use_blocks,
)
from flywheel.server import calls
from flywheel.server.chat_wire import NullableFlag, answer_extra
from flywheel.server.errors import ApiError
from flywheel.server.keepalive import Ticking, app_stream, keepalive, model_stream
from flywheel.types import ChatRequest, Message

router = APIRouter()
_STOP = {"stop": "end_turn", "end_turn": "end_turn", "length": "max_tokens", "max_tokens": "max_tokens",
         "stop_sequence": "stop_sequence", "tool_calls": "tool_use", "tool_use": "tool_use"}


class Block(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None
    id: str | None = None  # tool_use
    name: str | None = None  # tool_use
    input: Any = None  # tool_use
    tool_use_id: str | None = None  # tool_result
    content: Any = None  # tool_result


class AnthropicMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant", "system"]  # Claude Code sends mid-conversation system turns
    content: str | list[Block]


class MessagesIn(BaseModel):
    # fields newer than this code (`context_management`, …) are kept: Anthropic aliases get them, others not
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=200)
    max_tokens: int = Field(ge=1)
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | list[Block] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    stop_sequences: list[str] | None = None
    stream: NullableFlag = False
    metadata: dict[str, Any] | None = None
    top_p: float | None = None
    top_k: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    service_tier: str | None = None
    output_config: dict[str, Any] | None = None  # `format` (structured output) is honoured; `effort` is a hint
    cache_control: dict[str, Any] | None = None  # a prompt-caching hint: accepted, not needed by the gateway


class CountTokensIn(MessagesIn):
    """POST /v1/messages/count_tokens: a Messages body without `max_tokens`."""

    max_tokens: int | None = Field(default=None, ge=1)  # type: ignore[assignment]


def _text(content: str | list[Block], param: str) -> str:
    if isinstance(content, str):
        return content
    out = []
    for i, block in enumerate(content):
        if block.type != "text" or block.text is None:
            raise ApiError(400, f"content block type {block.type!r} is not supported (text only)",
                           param=f"{param}.{i}.type", code="unsupported_content")
        out.append(block.text)
    return "\n".join(out)  # parts are separate texts (as vLLM flattens them)


def _session(body: MessagesIn, request: Request) -> str | None:
    """The conversation this request continues: `metadata.session_id`, or the `x-flywheel-session-id` header."""
    session = (body.metadata or {}).get("session_id") or request.headers.get("x-flywheel-session-id")
    return str(session)[:256] if session else None


_GATEWAY_FIELDS = frozenset({"model", "max_tokens", "stream", "temperature", "stop_sequences"})  # sent anyway


def _request(body: MessagesIn, tenant: str, session: str | None = None, *, betas: list[str] | None = None,
             native_blocks: bool = False) -> ChatRequest:
    """The gateway's request. `betas` (not None): attach the native exchange for Anthropic aliases.
    `native_blocks`: image / document blocks are stood in for by `[image]`-like text in the gateway's view (they
    reach the upstream through the exchange only), else they are a 400."""
    msgs = [Message(role="system", content=_text(body.system, "system"))] if body.system else []
    try:
        for i, m in enumerate(body.messages):
            content = m.content if isinstance(m.content, str) else \
                [_plain(b.model_dump(exclude_none=True), f"messages.{i}.content.{j}", native_blocks)
                 for j, b in enumerate(m.content)]
            msgs += openai_messages(m.role, content, f"messages.{i}.content")
        custom = _custom_tools(body.tools or [], native_blocks)
        tools = openai_tools(custom) if custom else None
        choice, parallel = openai_tool_choice(body.tool_choice)
    except ToolFormatError as exc:
        raise ApiError(400, exc.message, param=exc.param, code="invalid_value") from None
    user = body.metadata.get("user_id") if body.metadata else None
    meta = calls.request_metadata(tenant, user if isinstance(user, str) else None, session, body.metadata)
    creq = ChatRequest(messages=msgs, model=body.model, temperature=body.temperature, max_tokens=body.max_tokens,
                       stop=body.stop_sequences or None, tools=tools, tool_choice=choice, metadata=meta,
                       response_format=_response_format(body.output_config), parallel_tool_calls=parallel,
                       top_p=body.top_p, top_k=body.top_k, user=user if isinstance(user, str) else None)
    if betas is not None:
        creq.metadata[native_.NATIVE] = native_.NativeExchange(_native_body(body), betas, creq)
    return creq


def _custom_tools(tools: list[dict[str, Any]], native_blocks: bool) -> list[dict[str, Any]]:
    """The custom tools, which the gateway's view holds; Anthropic's server tools (`web_search_20250305`,
    `code_execution_…`, `bash_…`: a `type` other than custom) reach Anthropic aliases only, through the native
    body as sent, and are a 400 naming the tool when another provider may answer."""
    custom = []
    for i, tool in enumerate(tools):
        if tool.get("type") in (None, "custom"):
            custom.append(tool)
        elif not native_blocks:
            raise ApiError(400, f"tool {tool.get('name') or tool.get('type')!r} (type {tool.get('type')!r}) is an "
                           "Anthropic server tool, run by Anthropic only, and this model may be answered by another "
                           "provider: send it to a model alias whose route and fallbacks are all `provider: "
                           "anthropic`, or define it as a custom tool {name, description, input_schema}",
                           param=f"tools.{i}.type", code="unsupported_value")
    return custom


def _server_block(kind: Any) -> bool:
    """A server tool's call or result block (server_tool_use, web_search_tool_result, …): Anthropic aliases only."""
    return isinstance(kind, str) and (kind == "server_tool_use" or
                                      (kind.endswith("_tool_result") and kind != "tool_result"))


def _plain(block: dict[str, Any], param: str, native_blocks: bool) -> dict[str, Any]:
    """A content block as the gateway's view holds it: image-like and server-tool blocks (also inside a
    tool_result) as text."""
    kind = block.get("type")
    if kind in native_.NATIVE_ONLY_BLOCKS or _server_block(kind):
        if not native_blocks:
            raise ApiError(400, f"content block type {kind!r} reaches Anthropic aliases only, and this model may "
                           "be answered by another provider (text only): send it to a model alias whose route and "
                           "fallbacks are all `provider: anthropic`", param=f"{param}.type",
                           code="unsupported_content")
        return {"type": "text", "text": f"[{kind}]"}
    inner = block.get("content")
    if kind == "tool_result" and isinstance(inner, list):
        return {**block, "content": [_plain(c, f"{param}.content.{k}", native_blocks) if isinstance(c, dict) else c
                                     for k, c in enumerate(inner)]}
    return block


def _native_body(body: MessagesIn) -> dict[str, Any]:
    """The body an Anthropic alias gets besides what the gateway sends itself (model, max_tokens, temperature,
    stop sequences, output_config.format): Anthropic's `metadata` takes `user_id` only."""
    data = {k: v for k, v in body.model_dump(exclude_none=True).items() if k not in _GATEWAY_FIELDS}
    meta = data.pop("metadata", None) or {}
    if isinstance(meta.get("user_id"), str):
        data["metadata"] = {"user_id": meta["user_id"]}
    config = {k: v for k, v in (data.pop("output_config", None) or {}).items() if k != "format"}
    if config:
        data["output_config"] = config
    return data


def _providers(state: Any, alias: str) -> set[str]:
    """The providers a request for `alias` (or route) may reach: every arm and every fallback."""
    gateway = state.runtime.gateway
    route = state.project.config.routes.get(alias)
    names = [alias]
    if route is not None:
        router = route.router
        names = [n for n in (route.alias, *(route.split or ()), router and router.small, router and router.strong)
                 if n]
    try:
        return {gateway.models[a].provider for n in names for a in gateway.chain(n)}
    except (UserError, KeyError):
        return set()


def _response_format(output_config: dict[str, Any] | None) -> dict[str, Any] | None:
    """`output_config.format` ({type: json_schema, schema}, what `client.messages.parse(output_format=…)` sends)
    as the gateway's OpenAI-shaped `response_format`; `output_config.effort` is a hint the gateway leaves out."""
    fmt = (output_config or {}).get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise ApiError(400, "output_config.format must be {type: json_schema, schema: {...}}",
                       param="output_config.format", code="invalid_value")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt["schema"]}}


def uncached_input(total: int, cache: dict[str, Any]) -> int:
    """Anthropic's `input_tokens` (the uncached part) from flywheel's total input and the cache counts."""
    return max(total - (cache.get("cache_read_input_tokens") or 0) - (cache.get("cache_creation_input_tokens") or 0), 0)


def _message(call: calls.Call, model: str, text: str, stop: str | None, tin: int, tout: int,
             tool_calls: list[dict[str, Any]] | None = None, native: dict[str, Any] | None = None,
             reasoning: str | None = None) -> dict[str, Any]:
    """The Message object; `native` (an Anthropic alias's `raw["anthropic"]`): its content blocks as they came
    (thinking with signatures included), cache usage and stop sequence. `reasoning` (an OpenAI-compatible
    reasoning model's): a leading thinking block, with an empty signature (no Anthropic model signed it)."""
    content = [{"type": "text", "text": text}] if text or not tool_calls else []
    if reasoning:
        content.insert(0, {"type": "thinking", "thinking": reasoning, "signature": ""})
    if tool_calls:
        content += tool_use_blocks(tool_calls)
        stop = "tool_use"
    usage: dict[str, Any] = {"input_tokens": tin, "output_tokens": tout}
    sequence = None
    if native:
        content = native.get("content") or content
        usage.update(native.get("usage") or {})
        usage["input_tokens"] = uncached_input(tin, usage)
        sequence = native.get("stop_sequence")
    return {"id": f"msg_{call.trace_id}", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": _STOP.get(stop or "stop", "end_turn"),
            "stop_sequence": sequence, "usage": usage}


# what an app answers without: its own prompt, model options and memory decide (the answer's `flywheel.ignored`,
# as on /v1/chat/completions); `max_tokens`, which the wire requires, is not named
_APP_IGNORES = ("system", "temperature", "top_p", "top_k", "stop_sequences", "thinking", "output_config")


@router.post("/v1/messages", openapi_extra=calls.body_schema(MessagesIn))
async def messages(request: Request) -> Any:
    state = request.app.state.flywheel
    principal = state.authenticate(request.headers)  # first: an unauthenticated caller learns nothing of the body
    body = await calls.read_body(request, MessagesIn)
    tenant = calls.resolve_tenant(principal, request.headers.get("x-flywheel-tenant"))
    app = calls.check_model(state, principal, body.model)
    if app and body.tools:
        raise ApiError(400, f"an app (`{body.model}`) answers from its own pipeline and does not call tools; "
                       "send tools to a model alias", param="tools", code="unsupported_parameter")
    session = _session(body, request)
    alias = calls.app_model(state, app) if app else body.model
    providers = set() if app else _providers(state, alias)
    betas = native_.forwarded_betas(request.headers.get("anthropic-beta")) if "anthropic" in providers else None
    creq = _request(body, tenant, session, betas=betas, native_blocks=providers == {"anthropic"})
    estimate = state.estimate(alias, sum(len(m.content) for m in creq.messages), creq.max_tokens)
    meta = body.metadata or {}
    call = await calls.begin(state, principal, tenant, "/v1/messages", alias, app, estimate_usd=estimate,
                             inputs={"model": body.model, "messages": span_messages(creq)},
                             user=meta.get("user_id") if isinstance(meta.get("user_id"), str) else None,
                             session=session)
    tool_calls = native = reasoning = None
    async with calls.failures(call):
        if app:
            runner = state.app(app)  # a chat app continues the session's conversation from its memory
            options = calls.session_options(state, runner, app, session, param="metadata.session_id")
            ignored = calls.app_ignored(body, _APP_IGNORES, len(body.messages) > 1)
            if body.stream and hasattr(runner, "stream"):  # as it comes, through its output guards
                stream = runner.stream(creq.last_user(), tenant, **options)
                pieces, usage = await app_stream(call, stream)
                return calls.sse_response(_events(call, body.model, pieces, usage, extra=lambda: {
                    **(answer_extra(stream.answer) if stream.answer else {}), **ignored}), call.headers)
            answer = await runner.arun(creq.last_user(), tenant, **options)
            state.metrics.answer(answer, tenant)
            text, stop, tin, tout, cost = answer.text, "stop", answer.usage.input_tokens, \
                answer.usage.output_tokens, answer.cost_usd
        elif body.stream:
            return await _stream(call, body, creq)
        else:
            result = await state.runtime.gateway.achat(creq)
            text, stop, tin, tout, cost = result.text, result.finish_reason, result.usage.input_tokens, \
                result.usage.output_tokens, result.cost_usd
            tool_calls = result.tool_calls
            native = (result.raw or {}).get(native_.RAW)
            reasoning = result.reasoning
    await call.finish(cost=cost, input_tokens=tin, output_tokens=tout,
                      output={"content": text, "tool_calls": tool_calls} if tool_calls else text)
    message = _message(call, body.model, text, stop, tin, tout, tool_calls, native, reasoning)
    if app:  # as on the OpenAI wire: the app's citations, cost, refusal, and what it answered without
        message["flywheel"] = {**answer_extra(answer), **ignored}
    if body.stream:  # an app without streaming: its answer as one text delta
        events = _events(call, body.model, calls.one_piece(text), lambda: (tin, tout, None),
                         extra=(lambda: message["flywheel"]) if app else None)
        return calls.sse_response(events, call.headers)
    return calls.JSONBytes(message, call.headers)


@router.post("/v1/messages/count_tokens", openapi_extra=calls.body_schema(CountTokensIn))
async def count_tokens(request: Request) -> Any:
    """`client.messages.count_tokens(...)`: the input tokens of a Messages body (system, messages, tools),
    estimated the way the gateway estimates tokens when a provider reports none (about 4 characters a token),
    not with the provider's tokenizer. Nothing is sent upstream and nothing is charged."""
    from flywheel.gateway.providers.base import estimate_tokens

    state = request.app.state.flywheel
    principal = state.authenticate(request.headers)
    body = await calls.read_body(request, CountTokensIn)
    calls.check_model(state, principal, body.model)
    creq = _request(body, principal.tenant, native_blocks=True)
    texts = [m.content for m in creq.messages]
    texts += [json.dumps(m.tool_calls, ensure_ascii=False) for m in creq.messages if m.tool_calls]
    if creq.tools:
        texts.append(json.dumps(creq.tools, ensure_ascii=False))
    return {"input_tokens": sum(estimate_tokens(t) for t in texts if t)}


async def _stream(call: calls.Call, body: MessagesIn, creq: ChatRequest) -> Any:
    pieces, usage = await model_stream(call, creq, scored=True)  # with the reasoning of an OpenAI-compatible alias
    native = creq.metadata.get(native_.NATIVE)
    return calls.sse_response(_events(call, body.model, pieces, usage, native), call.headers)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def _events(call: calls.Call, model: str, pieces: calls.Pieces | Ticking[Any], usage: Any,
                  native: native_.NativeExchange | None = None,
                  extra: Callable[[], dict[str, Any]] | None = None) -> AsyncIterator[bytes]:
    """Anthropic's event sequence: message_start, a ping, then the content blocks one after another, each closed
    before the next opens: text as it arrives, one tool_use block per tool call (content_block_start with id and
    name, `input_json_delta` pieces), and an Anthropic alias's thinking blocks (`native`: thinking_delta,
    signature_delta) and server-tool blocks (server_tool_use, web_search_tool_result …) relayed in their place;
    a `ping` whenever the upstream is silent for the keep-alive interval (keepalive.py). `extra()`: an app's
    `flywheel` object (citations, what it ignored), on the `message_delta` event."""
    error: BaseException | str | None
    stop, parts, error = "end_turn", [], None
    tool_calls: list[dict[str, Any]] = []
    blocks = _Blocks()
    tool_block: dict[int, int] = {}  # tool-call index → its content block index
    cache = native.usage if native is not None else {}
    ticking = keepalive(pieces)
    try:
        start = _message(call, model, "", None, 0, 0)
        start["content"], start["stop_reason"] = [], None
        if native is not None:  # the upstream's input tokens: 0 while it has sent nothing (message_delta has them)
            start["usage"] = {"input_tokens": native.input_tokens, "output_tokens": 0, **cache}
        yield _sse("message_start", {"type": "message_start", "message": start})
        yield _sse("ping", {"type": "ping"})
        async for item in ticking:
            if item is None:  # a long wait on the upstream (thinking): keep the connection alive
                yield _sse("ping", {"type": "ping"})
                continue
            delta, fr, tools = item[0], item[1], item[2]
            thought: str | None = item[4] if len(item) == 5 else None  # type: ignore[misc]
            if native is not None:
                for event in blocks.relay(native.take_events()):
                    yield event
            elif thought:  # an OpenAI-compatible reasoning model's thinking: a thinking block
                if blocks.kind != "thinking":
                    for event in blocks.open({"type": "thinking", "thinking": "", "signature": ""}):
                        yield event
                yield _sse("content_block_delta", {"type": "content_block_delta", "index": blocks.index,
                                                   "delta": {"type": "thinking_delta", "thinking": thought}})
            if fr:
                stop = _STOP.get(fr, "end_turn")
            if delta:
                if blocks.kind != "text":
                    for event in blocks.open({"type": "text", "text": ""}):
                        yield event
                parts.append(delta)
                yield _sse("content_block_delta", {"type": "content_block_delta", "index": blocks.index,
                                                   "delta": {"type": "text_delta", "text": delta}})
            for piece in tools or ():
                merge_tool_deltas(tool_calls, [piece])
                index = piece.get("index", 0)
                if index not in tool_block:
                    fn = piece.get("function") or {}
                    for event in blocks.open({"type": "tool_use", "id": piece.get("id") or "",
                                              "name": fn.get("name") or "", "input": {}}):
                        yield event
                    tool_block[index] = blocks.index
                arguments = (piece.get("function") or {}).get("arguments")
                if arguments:
                    yield _sse("content_block_delta", {"type": "content_block_delta", "index": tool_block[index],
                                                       "delta": {"type": "input_json_delta",
                                                                 "partial_json": arguments}})
        if native is not None:
            for event in blocks.relay(native.take_events()):
                yield event
        if blocks.count == 0:
            for event in blocks.open({"type": "text", "text": ""}):
                yield event
        if tool_calls:
            stop = "tool_use"
        tin, tout, _ = usage()
        for event in blocks.close():
            yield event
        sequence = native.stop_sequence if native is not None else None
        final = {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": sequence},
                 "usage": {"input_tokens": uncached_input(tin, cache), "output_tokens": tout, **cache}}
        if extra is not None and (more := extra()):
            final["flywheel"] = more
        yield _sse("message_delta", final)
        yield _sse("message_stop", {"type": "message_stop"})
    except UserError as exc:
        error = exc
        yield _sse("error", call.fail_upstream(exc).body(anthropic=True))
    except BaseException as exc:
        error = exc if isinstance(exc, Exception) else "client disconnected"
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await ticking.aclose()
            tin, tout, cost = usage()
            text = "".join(parts)
            await call.finish(cost=cost or 0.0, input_tokens=tin, output_tokens=tout, error=error,
                              output={"content": text, "tool_calls": tool_calls} if tool_calls else text)


class _Blocks:
    """The content blocks of a streamed message: indexes in order, at most one open."""

    def __init__(self) -> None:
        self.count = 0  # blocks opened so far
        self.index = -1  # the open block's index, -1 for none
        self.kind: str | None = None  # the open block's type
        self.upstream: dict[int, int] = {}  # a relayed block's upstream index → ours

    def open(self, block: dict[str, Any]) -> list[bytes]:
        events = self.close()
        self.index, self.kind = self.count, block["type"]
        self.count += 1
        return [*events, _block_start(self.index, block)]

    def close(self) -> list[bytes]:
        if self.index < 0:
            return []
        index, self.index, self.kind = self.index, -1, None
        return [_sse("content_block_stop", {"type": "content_block_stop", "index": index})]

    def relay(self, events: list[dict[str, Any]]) -> list[bytes]:
        """An Anthropic alias's own block events (thinking …), renumbered into this message."""
        out: list[bytes] = []
        for event in events:
            kind = event.get("type")
            if kind == "content_block_start":
                out += self.open(event.get("content_block") or {"type": "thinking"})
                self.upstream[event.get("index", -1)] = self.index
            elif event.get("index") in self.upstream:
                index = self.upstream[event["index"]]
                if kind == "content_block_stop":
                    if index == self.index:
                        out += self.close()
                else:
                    out.append(_sse(kind or "content_block_delta", {**event, "index": index}))
        return out


def _block_start(index: int, block: dict[str, Any]) -> bytes:
    return _sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})

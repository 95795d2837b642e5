"""POST /v1/messages: the Anthropic Messages wire, through the same gateway (and `app:NAME` apps), so Anthropic
SDK users can point `base_url` here. Non-streaming and streaming (Anthropic's SSE event sequence)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from flywheel.errors import UserError
from flywheel.server import calls
from flywheel.server.errors import ApiError
from flywheel.types import ChatRequest, Message

router = APIRouter()
_STOP = {"stop": "end_turn", "end_turn": "end_turn", "length": "max_tokens", "max_tokens": "max_tokens",
         "stop_sequence": "stop_sequence"}


class Block(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class AnthropicMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: str | list[Block]


class MessagesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    max_tokens: int = Field(ge=1)
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | list[Block] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    stop_sequences: list[str] | None = None
    stream: bool = False
    metadata: dict[str, Any] | None = None
    top_p: float | None = None
    top_k: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    service_tier: str | None = None


def _text(content: str | list[Block], param: str) -> str:
    if isinstance(content, str):
        return content
    out = []
    for i, block in enumerate(content):
        if block.type != "text" or block.text is None:
            raise ApiError(400, f"content block type {block.type!r} is not supported (text only)",
                           param=f"{param}.{i}.type", code="unsupported_content")
        out.append(block.text)
    return "".join(out)


def _request(body: MessagesIn, tenant: str) -> ChatRequest:
    if body.tools:
        raise ApiError(400, "tools are not supported by the flywheel gateway yet", param="tools",
                       code="unsupported_parameter")
    msgs = [Message(role="system", content=_text(body.system, "system"))] if body.system else []
    msgs += [Message(role=m.role, content=_text(m.content, f"messages.{i}.content"))
             for i, m in enumerate(body.messages)]
    meta: dict[str, Any] = {"tenant": tenant}
    if body.metadata and isinstance(body.metadata.get("user_id"), str):
        meta["user"] = body.metadata["user_id"]
    return ChatRequest(messages=msgs, model=body.model, temperature=body.temperature, max_tokens=body.max_tokens,
                       stop=body.stop_sequences or None, metadata=meta)


def _message(call: calls.Call, model: str, text: str, stop: str | None, tin: int, tout: int) -> dict[str, Any]:
    return {"id": f"msg_{call.trace_id}", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}], "stop_reason": _STOP.get(stop or "stop", "end_turn"),
            "stop_sequence": None, "usage": {"input_tokens": tin, "output_tokens": tout}}


@router.post("/v1/messages")
async def messages(body: MessagesIn, request: Request) -> Any:
    state = request.app.state.flywheel
    principal = state.authenticate(request.headers)
    tenant = calls.resolve_tenant(principal, request.headers.get("x-flywheel-tenant"))
    app = calls.check_model(state, principal, body.model)
    creq = _request(body, tenant)
    alias = calls.app_model(state, app) if app else body.model
    estimate = state.estimate(alias, sum(len(m.content) for m in creq.messages), creq.max_tokens)
    call = await calls.begin(state, principal, tenant, "/v1/messages", alias, app, estimate_usd=estimate,
                             inputs={"model": body.model, "messages": [m.model_dump() for m in creq.messages]})
    async with calls.failures(call):
        if app:
            answer = await state.app(app).arun(creq.last_user(), tenant)
            state.metrics.answer(answer, tenant)
            text, stop, tin, tout, cost = answer.text, "stop", answer.usage.input_tokens, \
                answer.usage.output_tokens, answer.cost_usd
        elif body.stream:
            return await _stream(call, body, creq)
        else:
            result = await state.runtime.gateway.achat(creq)
            text, stop, tin, tout, cost = result.text, result.finish_reason, result.usage.input_tokens, \
                result.usage.output_tokens, result.cost_usd
    await call.finish(cost=cost, input_tokens=tin, output_tokens=tout, output=text)
    message = _message(call, body.model, text, stop, tin, tout)
    if body.stream:  # an app answer, streamed as one text delta
        events = _events(call, body.model, calls.one_piece(text), lambda: (tin, tout, None))
        return calls.sse_response(events, call.headers)
    return JSONResponse(message, headers=call.headers)


async def _stream(call: calls.Call, body: MessagesIn, creq: ChatRequest) -> Any:
    pieces, usage = await calls.primed_stream(call.state.runtime.gateway, creq)
    return calls.sse_response(_events(call, body.model, pieces, usage), call.headers)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def _events(call: calls.Call, model: str, pieces: AsyncIterator[tuple[str, str | None]], usage: Any
                  ) -> AsyncIterator[bytes]:
    error: BaseException | str | None
    stop, parts, error = "end_turn", [], None
    try:
        start = _message(call, model, "", None, 0, 0)
        start["content"], start["stop_reason"] = [], None
        yield _sse("message_start", {"type": "message_start", "message": start})
        yield _sse("content_block_start", {"type": "content_block_start", "index": 0,
                                           "content_block": {"type": "text", "text": ""}})
        async for delta, fr in pieces:
            if fr:
                stop = _STOP.get(fr, "end_turn")
            if delta:
                parts.append(delta)
                yield _sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                   "delta": {"type": "text_delta", "text": delta}})
        tin, tout, _ = usage()
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        yield _sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": {"input_tokens": tin, "output_tokens": tout}})
        yield _sse("message_stop", {"type": "message_stop"})
    except UserError as exc:
        error = exc
        yield _sse("error", call.fail_upstream(exc).body(anthropic=True))
    except BaseException as exc:
        error = exc if isinstance(exc, Exception) else "client disconnected"
        raise
    finally:
        with anyio.CancelScope(shield=True):
            tin, tout, cost = usage()
            await call.finish(cost=cost or 0.0, input_tokens=tin, output_tokens=tout, error=error,
                              output="".join(parts))

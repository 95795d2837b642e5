"""POST /v1/responses: the OpenAI Responses API (`client.responses.create / stream / parse`), through the same
gateway (and `app:NAME` apps) as /v1/chat/completions: the same key check before the body is read, budget and
rate admission, root span and `x-flywheel-trace-id`, cost settled when the answer ends (a stream the client cut
included). The shapes are translated in responses_wire.py; streaming sends the Responses SSE event sequence
(response.created … response.completed, each with a `sequence_number`), an upstream failure after the first byte
as an `error` event followed by `response.failed`.

Nothing is stored: `store` is accepted, `previous_response_id` is a 400 asking for the whole conversation in
`input`. An `app:NAME` model answers the last user message from its pipeline (a chat app continues
`metadata.session_id`); its citations come back as file_citation annotations and under `flywheel.citations`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from fastapi import APIRouter, Request

from flywheel.errors import UserError
from flywheel.gateway.call import span_messages
from flywheel.gateway.tools import merge_tool_deltas
from flywheel.server import calls
from flywheel.server.errors import ApiError
from flywheel.server.openai_proxy import answer_extra
from flywheel.server.responses_wire import (
    CUT,
    ResponsesIn,
    call_item,
    chat_messages,
    chat_tool_choice,
    chat_tools,
    citation_notes,
    message_item,
    output_items,
    refuse_unsupported,
    response_format,
    response_object,
    text_part,
    usage_json,
)
from flywheel.types import ChatRequest

router = APIRouter()
ROUTE = "/v1/responses"
Usage = Callable[[], tuple[int, int, float | None]]


def _chat_request(body: ResponsesIn, tenant: str, session: str | None) -> ChatRequest:
    meta: dict[str, Any] = {"tenant": tenant}
    if body.user:
        meta["user"] = body.user
    if session:
        meta["session_id"] = session  # a route's sticky split hashes it
    if body.metadata:
        meta["request"] = body.metadata
    return ChatRequest(messages=chat_messages(body), model=body.model, temperature=body.temperature,
                       max_tokens=body.max_output_tokens, response_format=response_format(body.text),
                       tools=chat_tools(body.tools), tool_choice=chat_tool_choice(body.tool_choice), metadata=meta)


@router.post(ROUTE, openapi_extra=calls.body_schema(ResponsesIn))
async def responses(request: Request) -> Any:
    state = request.app.state.flywheel
    principal = state.authenticate(request.headers)  # first: an unauthenticated caller learns nothing of the body
    body = await calls.read_body(request, ResponsesIn)
    tenant = calls.resolve_tenant(principal, request.headers.get("x-flywheel-tenant"))
    refuse_unsupported(body)
    app = calls.check_model(state, principal, body.model)
    session = (body.metadata or {}).get("session_id") or request.headers.get("x-flywheel-session-id")
    creq = _chat_request(body, tenant, session)
    if app:
        _check_app_body(body, creq)
    alias = calls.app_model(state, app) if app else body.model
    estimate = state.estimate(alias, sum(len(m.content) for m in creq.messages), creq.max_tokens)
    call = await calls.begin(state, principal, tenant, ROUTE, alias, app, estimate_usd=estimate,
                             inputs={"model": body.model, "messages": span_messages(creq)},
                             user=body.user, session=session)
    rid = f"resp_{call.trace_id}"
    async with calls.failures(call):
        if app:
            return await _app_response(call, rid, body, creq, app, session)
        if body.stream:
            pieces, usage = await calls.primed_stream(call, creq)
            return calls.sse_response(_events(call, rid, body, pieces, usage), call.headers)
        failed: Exception | None = None
        try:
            r = await state.runtime.gateway.achat(creq)
        except Exception as exc:  # noqa: BLE001 - settled below, outside `failures`, as chat completions does
            failed = exc
    if failed is not None:
        await call.finish(error=failed)
        raise call.fail_upstream(failed)
    tin, tout = r.usage.input_tokens, r.usage.output_tokens
    await call.finish(cost=r.cost_usd, input_tokens=tin, output_tokens=tout,
                      output={"content": r.text, "tool_calls": r.tool_calls} if r.tool_calls else r.text)
    cut = r.finish_reason in CUT
    payload = response_object(rid, body, status="incomplete" if cut else "completed",
                              output=output_items(rid, r.text, r.tool_calls, cut), usage=usage_json(tin, tout),
                              extra={"model": r.model, "cost_usd": r.cost_usd, "attempts": r.attempts})
    return calls.JSONBytes(payload, call.headers)


def _check_app_body(body: ResponsesIn, creq: ChatRequest) -> None:
    if body.tools or body.tool_choice not in (None, "none"):
        raise ApiError(400, f"an app (`{body.model}`) answers from its own pipeline and does not call tools; "
                       "send tools to a model alias", param="tools" if body.tools else "tool_choice",
                       code="unsupported_parameter")
    if creq.response_format is not None:
        raise ApiError(400, f"an app (`{body.model}`) answers in its own format; send text.format to a model alias",
                       param="text.format", code="unsupported_parameter")
    if not creq.last_user().strip():
        raise ApiError(400, "an app needs a user message in `input`", param="input", code="invalid_value")


async def _app_response(call: calls.Call, rid: str, body: ResponsesIn, creq: ChatRequest, app: str,
                        session: str | None) -> Any:
    """An app answers the last user message; with `metadata.session_id` (or the header) a chat app continues that
    conversation from its stored memory, as on /v1/chat/completions."""
    runner = call.state.app(app)
    options = calls.session_options(call.state, runner, app, session, param="metadata.session_id")
    answer = await runner.arun(creq.last_user(), call.tenant, **options)
    call.state.metrics.answer(answer, call.tenant)
    tin, tout = answer.usage.input_tokens, answer.usage.output_tokens
    await call.finish(cost=answer.cost_usd, input_tokens=tin, output_tokens=tout, output=answer.text)
    notes = citation_notes(answer.text, answer.citations)
    if body.stream:
        events = _events(call, rid, body, calls.one_piece(answer.text), lambda: (tin, tout, None), notes,
                         answer_extra(answer))
        return calls.sse_response(events, call.headers)
    payload = response_object(rid, body, status="completed", output=output_items(rid, answer.text, None, False, notes),
                              usage=usage_json(tin, tout), extra=answer_extra(answer))
    return calls.JSONBytes(payload, call.headers)


class _Stream:
    """The Responses event sequence for one answer, built as its pieces arrive: a message item (output_text part)
    while text comes, one function_call item per tool call (arguments as deltas); each item is closed with its
    `done` events before the next kind opens, and every item still open is closed at the end."""

    def __init__(self, rid: str, body: ResponsesIn, notes: list[dict[str, Any]] | None):
        self.rid, self.body, self.notes = rid, body, notes
        self.seq = 0
        self.created = int(time.time())
        self.items: list[dict[str, Any]] = []  # output items, in output order
        self.open: list[int] = []  # output indexes of the items not yet done
        self.message: int | None = None  # output index of the open message item
        self.calls: dict[int, int] = {}  # tool-call index → output index
        self.tool_calls: list[dict[str, Any]] = []  # merged, for the trace
        self.text: list[str] = []

    def event(self, kind: str, **data: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.seq, **data}
        self.seq += 1
        return f"event: {kind}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()

    def response(self, status: str, usage: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
                 output: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return response_object(self.rid, self.body, status=status, output=self.items if output is None else output,
                               usage=usage, created_at=self.created, extra=extra)

    def delta(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        if self.message is None:
            out += self.close_all()
            index = self.message = len(self.items)
            item = {**message_item(f"msg_{self.rid[5:]}" + (f"_{index}" if index else ""), "", "in_progress"),
                    "content": []}
            self.items.append(item)
            self.open.append(index)
            out.append(self.event("response.output_item.added", output_index=index, item=item))
            item["content"].append(text_part(""))
            out.append(self.event("response.content_part.added", item_id=item["id"], output_index=index,
                                  content_index=0, part=text_part("")))
        index = self.message
        if not text:
            return out
        part = self.items[index]["content"][0]
        part["text"] += text
        self.text.append(text)
        out.append(self.event("response.output_text.delta", item_id=self.items[index]["id"], output_index=index,
                              content_index=0, delta=text, logprobs=[]))
        return out

    def tool(self, piece: dict[str, Any]) -> list[bytes]:
        merge_tool_deltas(self.tool_calls, [piece])
        out: list[bytes] = []
        number = piece.get("index", 0)
        if number not in self.calls:
            out += self.close(self.message)
            fn = piece.get("function") or {}
            call_id = piece.get("id") or f"call_{self.rid[5:]}_{number}"
            index = self.calls[number] = len(self.items)
            item = call_item(call_id, fn.get("name") or "", "", "in_progress")
            self.items.append(item)
            self.open.append(index)
            out.append(self.event("response.output_item.added", output_index=index, item=item))
        index = self.calls[number]
        arguments = (piece.get("function") or {}).get("arguments")
        if arguments:
            self.items[index]["arguments"] += arguments
            if index in self.open:
                out.append(self.event("response.function_call_arguments.delta", item_id=self.items[index]["id"],
                                      output_index=index, delta=arguments))
        return out

    def close(self, index: int | None) -> list[bytes]:
        if index is None or index not in self.open:
            return []
        self.open.remove(index)
        item = self.items[index]
        if item["type"] == "function_call":
            item["status"] = "completed"
            return [self.event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                               arguments=item["arguments"]),
                    self.event("response.output_item.done", output_index=index, item=item)]
        self.message = None
        return self.close_message(item, index, "completed")

    def close_message(self, item: dict[str, Any], index: int, status: str) -> list[bytes]:
        part = item["content"][0]
        if self.notes:
            part["annotations"] = self.notes
        item["status"] = status
        return [self.event("response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
                           text=part["text"], logprobs=[]),
                self.event("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
                           part=part),
                self.event("response.output_item.done", output_index=index, item=item)]

    def close_all(self, cut: bool = False) -> list[bytes]:
        out: list[bytes] = []
        for index in list(self.open):
            if cut and index == self.message:
                self.open.remove(index)
                self.message = None
                out += self.close_message(self.items[index], index, "incomplete")
            else:
                out += self.close(index)
        return out


async def _events(call: calls.Call, rid: str, body: ResponsesIn, pieces: calls.Pieces, usage: Usage,
                  notes: list[dict[str, Any]] | None = None,
                  extra: dict[str, Any] | None = None) -> AsyncIterator[bytes]:
    s = _Stream(rid, body, notes)
    error: BaseException | str | None = None
    finish: str | None = None
    try:
        yield s.event("response.created", response=s.response("in_progress", output=[]))
        yield s.event("response.in_progress", response=s.response("in_progress", output=[]))
        async for delta, fr, tools in pieces:
            finish = fr or finish
            for chunk in (s.delta(delta) if delta else []):
                yield chunk
            for piece in tools or ():
                for chunk in s.tool(piece):
                    yield chunk
        if not s.items:  # an empty answer is still one (empty) message
            for chunk in s.delta(""):
                yield chunk
        cut = finish in CUT
        for chunk in s.close_all(cut):
            yield chunk
        tin, tout, _ = usage()
        status = "incomplete" if cut else "completed"
        yield s.event(f"response.{status}", response=s.response(status, usage_json(tin, tout), extra))
    except UserError as exc:  # the upstream broke after the first byte: tell the client in-band
        error = exc
        err = call.fail_upstream(exc)
        yield s.event("error", code=err.code, message=err.message, param=err.param)
        failed = s.response("failed")
        failed["error"] = {"code": "server_error", "message": err.message}
        yield s.event("response.failed", response=failed)
    except BaseException as exc:  # the client went away (cancelled) or a bug: the trace says so
        error = exc if isinstance(exc, Exception) else "client disconnected"
        raise
    finally:
        with anyio.CancelScope(shield=True):
            tin, tout, cost = usage()
            text = "".join(s.text)
            await call.finish(cost=cost or 0.0, input_tokens=tin, output_tokens=tout, error=error,
                              output={"content": text, "tool_calls": s.tool_calls} if s.tool_calls else text)

"""POST /v1/responses: the OpenAI Responses API (`client.responses.create / stream / parse`), through the same
gateway (and `app:NAME` apps) as /v1/chat/completions: the same key check before the body is read, budget and
rate admission, root span and `x-flywheel-trace-id`, cost settled when the answer ends (a stream the client cut
included). The shapes are translated in responses_wire.py; streaming sends the Responses SSE event sequence
(response.created … response.completed, each with a `sequence_number`), an upstream failure after the first byte
as an `error` event followed by `response.failed`. A wait on the upstream longer than the keep-alive interval
(FLYWHEEL_STREAM_PING_SECONDS, default 10) sends an SSE comment `: keep-alive`, before the first chunk after
`response.created` and `response.in_progress` (keepalive.py).

A response is kept as its trace (responses_store.py; `store: false` marks it not retrievable):
`previous_response_id` continues the conversation it ended (the caller's tenant's only), GET /v1/responses/{id}
answers it again, GET /v1/responses/{id}/input_items lists its `input`, DELETE /v1/responses/{id} makes it
unretrievable, and an `item_reference` input item is read back from the caller's conversations or the kept response
it names. `conversation` (conversations_api.py) puts a conversation's items before `input` and appends the input
and output items to it when the response completes (`store: false` included: as OpenAI, it governs the response
object, not the conversation). An `app:NAME` model answers the last user message from its pipeline (a chat app
continues `metadata.session_id`), streamed as it comes through its output guards (keepalive.app_stream);
its citations come back as file_citation annotations and under `flywheel.citations`.

A model's thinking (ChatResult.reasoning) comes first as a `reasoning` output item (`rs_<trace id>`), one
summary_text part (streamed: the response.reasoning_summary_* events; the event sequence is built in
responses_stream.py). It is kept with the response (`inputs.response.reasoning`), so GET answers the same output
items and an `item_reference` to it resolves; it is never sent to a model again (a continued response, a
conversation's history).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from fastapi import APIRouter, Request

from flywheel.errors import UserError
from flywheel.gateway.call import span_messages
from flywheel.server import calls, conversations_store, responses_store
from flywheel.server.errors import ApiError, page_query
from flywheel.server.keepalive import Ticking, app_stream, keepalive, model_stream
from flywheel.server.openai_proxy import answer_extra, stream_tokens
from flywheel.server.responses_stream import EventStream, Extra, Notes
from flywheel.server.responses_wire import (
    CUT,
    ResponsesIn,
    chat_messages,
    chat_tool_choice,
    chat_tools,
    citation_notes,
    output_items,
    refuse_unsupported,
    response_format,
    response_object,
    settings,
    usage_json,
)
from flywheel.types import ChatRequest, Message

router = APIRouter()
ROUTE = "/v1/responses"
_KEEP_ALIVE = b": keep-alive\n\n"  # an SSE comment: clients skip it, proxies see bytes
Usage = Callable[[], tuple[int, int, float | None]]


class _Turn:
    """One response: its id and settings, and what its trace keeps of it (`record`, the root span's
    `inputs.response`: filled in before the span ends, so a retrieve answers the same object)."""

    def __init__(self, call: calls.Call, record: dict[str, Any]):
        self.rid = f"resp_{call.trace_id}"
        self.record, self.echo = record, record["settings"]
        self.created = call.span.start_ns // 1_000_000_000
        # `conversation`: appends this request's input and the answer's output items to it (before the answer is
        # sent, so a client that lists the conversation's items next finds them)
        self.append: Callable[[list[dict[str, Any]]], Awaitable[None]] | None = None

    async def appended(self, output: list[dict[str, Any]]) -> None:
        if self.append is not None:
            await self.append(output)

    def keep(self, status: str, input_tokens: int, output_tokens: int, extra: Extra = None,
             notes: Notes = None, cached_tokens: int = 0, reasoning_tokens: int = 0,
             thought: str | None = None) -> None:
        self.record.update(status=status, usage=[input_tokens, output_tokens, cached_tokens, reasoning_tokens],
                           flywheel=extra or {}, annotations=notes or [])
        if thought:  # the reasoning item's text: a retrieve answers the same output items
            self.record["reasoning"] = thought

    def response(self, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None,
                 extra: Extra = None) -> dict[str, Any]:
        completed_at = int(time.time())
        if status == "completed":  # a retrieve answers the same second, not the root span's later end
            self.record["completed_at"] = completed_at
        return response_object(self.rid, self.echo, status=status, output=output, usage=usage,
                               created_at=self.created, extra=extra, completed_at=completed_at)


def _chat_request(body: ResponsesIn, tenant: str, session: str | None, history: list[Message] | None,
                  developer: list[int]) -> ChatRequest:
    meta = calls.request_metadata(tenant, body.user, session, body.metadata)
    return ChatRequest(messages=chat_messages(body, history, developer), model=body.model, temperature=body.temperature,
                       max_tokens=body.max_output_tokens, response_format=response_format(body.text),
                       tools=chat_tools(body.tools), tool_choice=chat_tool_choice(body.tool_choice), metadata=meta,
                       parallel_tool_calls=body.parallel_tool_calls, top_p=body.top_p, user=body.user)


@router.post(ROUTE, openapi_extra=calls.body_schema(ResponsesIn))
async def responses(request: Request) -> Any:
    state = request.app.state.flywheel
    principal = state.authenticate(request.headers)  # first: an unauthenticated caller learns nothing of the body
    body = await calls.read_body(request, ResponsesIn)
    tenant = calls.resolve_tenant(principal, request.headers.get("x-flywheel-tenant"))
    refuse_unsupported(body)
    app = calls.check_model(state, principal, body.model)
    conversation = await _conversation(state, body, tenant, app) if body.conversation is not None else None
    body.input = await responses_store.resolve_references(state, body.input, tenant,
                                                          conversation.id if conversation else None)
    session = (body.metadata or {}).get("session_id") or request.headers.get("x-flywheel-session-id")
    history = None
    if conversation is not None:
        history = conversations_store.history(await conversations_store.all_items(state, conversation.id))
    if body.previous_response_id is not None:
        if app:
            raise ApiError(400, f"an app (`{body.model}`) answers the last user message and keeps its own memory: "
                           "continue a chat app's conversation with metadata.session_id", param="previous_response_id",
                           code="unsupported_parameter")
        previous = await responses_store.find(state, body.previous_response_id, tenant, "previous_response_id")
        history = previous.history("previous_response_id")
    developer: list[int] = []
    creq = _chat_request(body, tenant, session, history, developer)
    if app:
        _check_app_body(body, creq)
    alias = calls.app_model(state, app) if app else body.model
    estimate = state.estimate(alias, sum(len(m.content) for m in creq.messages), creq.max_tokens)
    kept = body.store is not False and responses_store.unkept_reason(state) is None
    start = (1 if body.instructions else 0) + len(history or ())  # where this request's `input` begins
    record: dict[str, Any] = {"settings": settings(body, kept), "input_start": start}
    if conversation is not None:
        record["settings"]["conversation"] = {"id": conversation.id}
    if developer:
        record["developer"] = [i - start for i in developer]
    call = await calls.begin(state, principal, tenant, ROUTE, alias, app, estimate_usd=estimate,
                             inputs={"model": body.model, "messages": span_messages(creq), "response": record},
                             user=body.user, session=session, keep_inputs=True)
    call.span.set(**{responses_store.KEPT: body.store is not False})
    if body.previous_response_id is not None:
        call.span.set(**{responses_store.PREVIOUS: body.previous_response_id})
    turn = _Turn(call, record)
    if conversation is not None:
        call.span.set(**{"flywheel.response.conversation": conversation.id})
        turn.append = _appender(state, conversation.id, conversations_store.normal_items(body.input, "input"))
    async with calls.failures(call):
        if app:
            return await _app_response(call, turn, body, creq, app, session)
        if body.stream:
            pieces, usage = await model_stream(call, creq, scored=True)  # the reasoning rides on the pieces
            return calls.sse_response(_events(call, turn, pieces, usage), call.headers)
        failed: Exception | None = None
        try:
            r = await state.runtime.gateway.achat(creq)
        except Exception as exc:  # noqa: BLE001 - settled below, outside `failures`, as chat completions does
            failed = exc
    if failed is not None:
        await call.finish(error=failed)
        raise call.fail_upstream(failed)
    tin, tout = r.usage.input_tokens, r.usage.output_tokens
    cut = r.finish_reason in CUT
    status, extra = "incomplete" if cut else "completed", {"model": r.model, "cost_usd": r.cost_usd,
                                                            "attempts": r.attempts}
    cached, reasoning = r.usage.cache_read_tokens, r.usage.reasoning_tokens
    turn.keep(status, tin, tout, extra, cached_tokens=cached, reasoning_tokens=reasoning, thought=r.reasoning)
    await call.finish(cost=r.cost_usd, input_tokens=tin, output_tokens=tout,
                      output={"content": r.text, "tool_calls": r.tool_calls} if r.tool_calls else r.text)
    output = output_items(turn.rid, r.text, r.tool_calls, cut, reasoning=r.reasoning)
    await turn.appended(output)
    return calls.JSONBytes(turn.response(status, output, usage_json(tin, tout, cached, reasoning), extra),
                           call.headers)


async def _conversation(state: Any, body: ResponsesIn, tenant: str,
                        app: str | None) -> conversations_store.Conversation:
    if body.previous_response_id is not None:
        raise ApiError(400, "conversation and previous_response_id cannot be used together: a conversation keeps "
                       "its own history; send one of them", param="conversation", code="invalid_value")
    if app:
        raise ApiError(400, f"an app (`{body.model}`) answers the last user message and keeps its own memory: "
                       "continue a chat app's conversation with metadata.session_id", param="conversation",
                       code="unsupported_parameter")
    cid = conversations_store.conversation_id(body.conversation)
    return await conversations_store.find(state, cid, tenant, "conversation")


def _appender(state: Any, cid: str, inputs: list[dict[str, Any]]) -> Callable[[list[dict[str, Any]]], Awaitable[None]]:
    async def append(output: list[dict[str, Any]]) -> None:
        # the reasoning item too, as OpenAI keeps it: conversations_store.history never sends it to a model
        kept = [conversations_store.normal_items([o], "output")[0] if o.get("type") == "reasoning" else o
                for o in output]
        await conversations_store.add(state, cid, [*inputs, *kept], fresh_on_duplicate=True)
    return append


@router.get(ROUTE + "/{response_id}")
async def retrieve(response_id: str, request: Request) -> Any:
    """`client.responses.retrieve(id)`: a kept response of the caller's tenant, as it was answered."""
    stored = await _stored(request, response_id)
    return calls.JSONBytes(stored.payload(), {"x-flywheel-trace-id": response_id[5:]})


@router.delete(ROUTE + "/{response_id}")
async def delete(response_id: str, request: Request) -> Any:
    """`client.responses.delete(id)`: the response can no longer be retrieved or continued; its trace stays."""
    stored = await _stored(request, response_id)
    await responses_store.delete(request.app.state.flywheel, stored)
    return calls.JSONBytes({"id": response_id, "object": "response", "deleted": True},
                           {"x-flywheel-trace-id": response_id[5:]})


@router.get(ROUTE + "/{response_id}/input_items")
async def input_items(response_id: str, request: Request) -> Any:
    """`client.responses.input_items.list(id)`: the items of the response's `input` (not the instructions, not a
    previous response's conversation), a page at a time: `limit` (1-100, 20), `order` (desc, the default, or
    asc), `after` / `before` an item id."""
    stored = await _stored(request, response_id)
    query = request.query_params
    limit, order = page_query(query)
    items = stored.input_items()
    if order == "desc":
        items.reverse()
    ids = [item["id"] for item in items]
    for name in ("after", "before"):
        if query.get(name) is not None and query[name] not in ids:
            raise ApiError(400, f"{name}: no input item {query[name]!r} in response {response_id}", param=name,
                           code="invalid_value")
    after, before = query.get("after"), query.get("before")
    items = items[ids.index(after) + 1 if after else 0:ids.index(before) if before else len(ids)]
    page = items[:limit]
    return calls.JSONBytes({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                            "last_id": page[-1]["id"] if page else None, "has_more": len(items) > len(page)},
                           {"x-flywheel-trace-id": response_id[5:]})


async def _stored(request: Request, response_id: str) -> responses_store.Stored:
    state = request.app.state.flywheel
    principal = state.authenticate(request.headers)
    tenant = calls.resolve_tenant(principal, request.headers.get("x-flywheel-tenant"))
    if request.query_params.get("stream") in ("true", "1"):
        raise ApiError(400, "replaying a response as a stream is not supported; retrieve it without `stream`",
                       param="stream", code="unsupported_parameter")
    return await responses_store.find(state, response_id, tenant, "response_id")


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


# what an app answers without (its own prompt, model options and memory decide), named in `flywheel.ignored` as on
# /v1/chat/completions rather than silently dropped
_APP_IGNORES = ("instructions", "max_output_tokens", "temperature", "top_p", "reasoning")


async def _app_response(call: calls.Call, turn: _Turn, body: ResponsesIn, creq: ChatRequest, app: str,
                        session: str | None) -> Any:
    """An app answers the last user message; with `metadata.session_id` (or the header) a chat app continues that
    conversation from its stored memory, as on /v1/chat/completions. Streamed, the answer goes out as it comes
    (sentence by sentence once its output guards passed each one); its citations close the message."""
    runner = call.state.app(app)
    options = calls.session_options(call.state, runner, app, session, param="metadata.session_id")
    earlier = sum(m.role != "system" for m in creq.messages) > 1
    ignored = calls.app_ignored(body, _APP_IGNORES, earlier, earlier_name="input")
    if body.stream and hasattr(runner, "stream"):
        stream = runner.stream(creq.last_user(), call.tenant, **options)
        pieces, usage = await app_stream(call, stream)
        return calls.sse_response(_events(
            call, turn, pieces, usage,
            lambda: citation_notes(stream.answer.text, stream.answer.citations) if stream.answer else None,
            lambda: {**answer_extra(stream.answer), **ignored} if stream.answer else None), call.headers)
    answer = await runner.arun(creq.last_user(), call.tenant, **options)
    call.state.metrics.answer(answer, call.tenant)
    tin, tout = answer.usage.input_tokens, answer.usage.output_tokens
    notes, extra = citation_notes(answer.text, answer.citations), {**answer_extra(answer), **ignored}
    if body.stream:  # an app without streaming: its answer as one delta
        return calls.sse_response(_events(call, turn, calls.one_piece(answer.text),
                                          lambda: (tin, tout, answer.cost_usd), lambda: notes, lambda: extra),
                                  call.headers)
    cached, reasoning = answer.usage.cache_read_tokens, answer.usage.reasoning_tokens
    turn.keep("completed", tin, tout, extra, notes, cached, reasoning)
    await call.finish(cost=answer.cost_usd, input_tokens=tin, output_tokens=tout, output=answer.text)
    payload = turn.response("completed", output_items(turn.rid, answer.text, None, False, notes),
                            usage_json(tin, tout, cached, reasoning), extra)
    return calls.JSONBytes(payload, call.headers)


async def _events(call: calls.Call, turn: _Turn, pieces: calls.Pieces | Ticking[Any], usage: Usage,
                  notes: Callable[[], Notes] | None = None,
                  extra: Callable[[], Extra] | None = None) -> AsyncIterator[bytes]:
    """The event stream; `notes` and `extra` (an app's citations and `flywheel` fields) are asked for once the
    pieces have all come. A wait on the upstream longer than the keep-alive interval sends `: keep-alive`."""
    s = EventStream(turn)
    ticking = keepalive(pieces)
    error: BaseException | str | None = None
    finish: str | None = None
    status, fields = "failed", None
    try:
        yield s.event("response.created", response=s.response("in_progress", output=[]))
        yield s.event("response.in_progress", response=s.response("in_progress", output=[]))
        if ticking.late:
            yield _KEEP_ALIVE
        async for item in ticking:
            if item is None:  # a long wait on the upstream (thinking): keep the connection alive
                yield _KEEP_ALIVE
                continue
            delta, fr, tools = item[0], item[1], item[2]
            thought: str | None = item[4] if len(item) == 5 else None  # type: ignore[misc]
            finish = fr or finish
            for chunk in (s.thought(thought) if thought else []):
                yield chunk
            for chunk in (s.delta(delta) if delta else []):
                yield chunk
            for piece in tools or ():
                for chunk in s.tool(piece):
                    yield chunk
        if not any(i["type"] != "reasoning" for i in s.items):  # an empty answer is still one (empty) message
            for chunk in s.delta(""):
                yield chunk
        cut = finish in CUT
        s.notes, fields = notes() if notes else None, extra() if extra else None
        for chunk in s.close_all(cut):
            yield chunk
        tin, tout, _ = usage()
        status = "incomplete" if cut else "completed"
        await turn.appended(s.items)
        settled = usage_json(tin, tout, stream_tokens(usage, "cache_read"), stream_tokens(usage, "reasoning"))
        yield s.event(f"response.{status}", response=s.response(status, settled, fields))
    except UserError as exc:  # the upstream broke after the stream opened: tell the client in-band
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
            await ticking.aclose()
            close = getattr(pieces, "aclose", None)  # ended (its usage known) before it is settled
            if close is not None:
                await close()
            tin, tout, cost = usage()
            text = "".join(s.text)
            turn.keep(status if error is None else "failed", tin, tout, fields, s.notes,
                      stream_tokens(usage, "cache_read"), stream_tokens(usage, "reasoning"), s.reasoning())
            await call.finish(cost=cost or 0.0, input_tokens=tin, output_tokens=tout, error=error,
                              output={"content": text, "tool_calls": s.tool_calls} if s.tool_calls else text)

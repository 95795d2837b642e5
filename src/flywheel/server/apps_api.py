"""POST /v1/apps/{name}: run an app (docs-QA, chat, plugins) and return its Answer plus a feedback token.

    {"input": "How do I pin a model version?", "stream": false}
    → {"text", "citations", "sources", "refused", "refusal", "usage", "cost_usd", "models", "prompt_version",
       "cache", "guard_actions", "trace_id", …, "feedback": {"token", "expires_at"}}

`stream: true` answers with server-sent events: `delta` events ({"text"}), then one `answer` event with the
whole Answer (apps without streaming send their text as one delta). With output guards the deltas are the
answer's sentences, each released once it passed them. `app_pieces` is the one way a route streams an app's
answer: `model: app:NAME` with `stream: true` on /v1/chat/completions, /v1/responses and /v1/messages uses it
too, through `primed_app_stream`.

`session_id` (chat apps): the conversation to continue; the app keeps its memory in the store (so any worker
serves the next turn), scoped by tenant; the trace records it and the response echoes it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from flywheel.errors import UserError
from flywheel.server import calls
from flywheel.server.errors import ApiError
from flywheel.types import Answer

router = APIRouter()
MAX_INPUT = 32_000


class AppIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: str = Field(min_length=1, max_length=MAX_INPUT)
    stream: bool = False
    tenant: str | None = Field(default=None, description="only the admin key or an open server may choose")
    session_id: str | None = Field(default=None, min_length=1, max_length=200,
                                   description="chat apps: the conversation this message continues")


def answer_json(call: calls.Call, answer: Answer, session: str | None = None) -> dict[str, Any]:
    data = answer.model_dump(mode="json")
    if session is not None:
        data["session_id"] = session
    token, expires = call.state.signer.issue(call.trace_id)
    data["trace_id"] = call.trace_id
    data["feedback"] = {"token": token, "expires_at": expires}
    return data


@router.post("/v1/apps/{name}")
async def run_app(name: str, body: AppIn, request: Request) -> Any:
    state = request.app.state.flywheel
    principal = state.authenticate(request.headers)
    tenant = calls.resolve_tenant(principal, body.tenant or request.headers.get("x-flywheel-tenant"))
    calls.check_app(state, principal, name, param="name")
    if not body.input.strip():
        raise ApiError(400, "the input is empty", param="input", code="invalid_value")
    alias = calls.app_model(state, name)
    session = body.session_id or request.headers.get("x-flywheel-session-id")
    call = await calls.begin(state, principal, tenant, "/v1/apps/{name}", alias, name,
                             estimate_usd=state.estimate(alias, len(body.input), None), inputs={"input": body.input},
                             session=session)
    async with calls.failures(call):
        app = state.app(name)
        options = calls.session_options(state, app, name, session)
        if body.stream and hasattr(app, "stream"):
            return _stream(call, app.stream(body.input, tenant, **options), session)
        answer = await app.arun(body.input, tenant, **options)
    state.metrics.answer(answer, tenant)
    await call.finish(cost=answer.cost_usd, input_tokens=answer.usage.input_tokens,
                      output_tokens=answer.usage.output_tokens, output=answer.text)
    if body.stream:
        return calls.sse_response(_replay(call, answer, session), call.headers)
    return JSONResponse(answer_json(call, answer, session), headers=call.headers)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def _replay(call: calls.Call, answer: Answer, session: str | None) -> AsyncIterator[bytes]:
    yield _event("delta", {"text": answer.text})
    yield _event("answer", answer_json(call, answer, session))


async def app_pieces(call: calls.Call, stream: Any) -> AsyncGenerator[str, None]:
    """The text pieces of an app's AnswerStream as they come, each pulled in a worker thread (the pipeline makes
    blocking calls). A stream that ran to its end is counted in the metrics; however it ends, it is closed (the
    upstream request dropped), after which `stream.answer` holds the Answer."""
    try:
        while (piece := await anyio.to_thread.run_sync(next, stream, None)) is not None:
            yield piece
        if stream.answer is not None:
            call.state.metrics.answer(stream.answer, call.tenant)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(stream.close)


async def primed_app_stream(call: calls.Call,
                            stream: Any) -> tuple[calls.Pieces, Callable[[], tuple[int, int, float]]]:
    """An app's AnswerStream as the routes' `calls.Pieces` (what `calls.primed_stream` is for a model alias): its
    first piece pulled here, so a failure before any text (every model down) is an HTTP status, not an error
    inside a 200 event stream; plus a function giving (input tokens, output tokens, cost) once it has ended.
    /v1/chat/completions, /v1/responses and /v1/messages stream `app:NAME` through it."""
    texts = app_pieces(call, stream)
    try:
        first = await anext(texts, None)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await texts.aclose()
        raise

    async def pieces() -> calls.Pieces:
        try:
            if first is not None:
                yield first, None, None
                async for text in texts:
                    yield text, None, None
        finally:
            with anyio.CancelScope(shield=True):
                await texts.aclose()

    def usage() -> tuple[int, int, float]:
        a = stream.answer
        return (a.usage.input_tokens, a.usage.output_tokens, a.cost_usd) if a is not None else (0, 0, 0.0)

    return pieces(), usage


def _stream(call: calls.Call, stream: Any, session: str | None) -> Any:
    async def events() -> AsyncIterator[bytes]:
        error: Any = None
        pieces = app_pieces(call, stream)
        try:
            async for piece in pieces:
                yield _event("delta", {"text": piece})
            if stream.answer is not None:
                yield _event("answer", answer_json(call, stream.answer, session))
        except UserError as exc:
            error = exc
            yield _event("error", call.fail_upstream(exc).body())
        except BaseException as exc:
            error = exc if isinstance(exc, Exception) else "client disconnected"
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await pieces.aclose()
                answer = stream.answer
                usage = answer.usage if answer is not None else None
                await call.finish(cost=answer.cost_usd if answer is not None else 0.0,
                                  input_tokens=usage.input_tokens if usage else 0,
                                  output_tokens=usage.output_tokens if usage else 0, error=error,
                                  output=answer.text if answer is not None else ...)

    return calls.sse_response(events(), call.headers)

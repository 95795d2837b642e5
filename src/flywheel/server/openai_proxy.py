"""OpenAI-compatible chat routes: POST /v1/chat/completions, POST /v1/completions (legacy text completions, answered
as a chat). GET /v1/models[/ID] and POST /v1/embeddings are in models_api.py.

`model` is a flywheel alias (through the gateway: retries, fallbacks, cost, tracing) or `app:NAME` (through
the app's answer pipeline: guards, cache, retrieval; the last user message is the input). Unknown request
fields are refused like OpenAI does; fields the gateway cannot honour are refused by name (non-text content,
`tools` on an `app:NAME` model), never silently dropped. `tools`, `tool_choice` and `response_format` go to the
provider (translated for Anthropic aliases); tool calls come back in `message.tool_calls` and, streamed, in
`delta.tool_calls` pieces. An `app:NAME` stream is the app's own stream (apps_api.app_pieces): sentence by
sentence as its output guards pass them, its citations in the final chunk's `flywheel` extra. `n` (1..16) asks
a model alias for several choices in one gateway call (one upstream request where the provider takes `n`, else n
merged requests; see gateway/choices.py); a stream or an app answers one choice, so `n` > 1 with `stream` or
`app:NAME` is a 400. The caller's `user` and `metadata.session_id` (or the `x-flywheel-session-id` header) land
on the trace as `flywheel.user_id` / `flywheel.session_id`. `logprobs` / `top_logprobs` are relayed from an alias
whose provider returns them (`choices[].logprobs.content`, streamed on each chunk; the legacy route's `logprobs: N`
in its {tokens, token_logprobs, top_logprobs, text_offset} shape); another alias, or an `app:NAME` model, is a 400
naming `logprobs`. They are not stored on the trace (gateway/logprobs.py). `top_p`, `seed`, `frequency_penalty`,
`presence_penalty` and `user` reach the alias's provider where its API takes them (gateway/providers/base.py). A
reasoning model's thinking comes back as DeepSeek's API returns it: `message.reasoning_content` (streamed:
`delta.reasoning_content`), never in `content`. The request and response shapes are in chat_wire.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from fastapi import APIRouter, Request

from flywheel.errors import UserError
from flywheel.gateway import logprobs as gateway_logprobs
from flywheel.gateway.call import span_messages
from flywheel.gateway.choices import span_output
from flywheel.gateway.tools import merge_tool_deltas
from flywheel.server import calls
from flywheel.server.chat_wire import (
    FINISH,
    LEGACY,
    ChatCompletionIn,
    ChatMessageIn,
    CompletionIn,
    ContentPart,
    Picked,
    StreamOptions,
    answer_extra,
    chat_logprobs,
    chat_request,
    completion,
    legacy_logprobs,
    text_of,
    to_messages,
    usage_json,
)
from flywheel.server.errors import ApiError
from flywheel.server.keepalive import Ticking, app_stream, keepalive, model_stream
from flywheel.server.keys import Principal
from flywheel.types import ChatRequest, Usage

# the wire shapes live in chat_wire.py; these names are imported from here too (batches, responses, tests)
__all__ = ["ChatCompletionIn", "ChatMessageIn", "CompletionIn", "ContentPart", "StreamOptions", "answer_extra",
           "chat_completions", "chat_request", "completions", "router", "stream_tokens", "text_of", "to_messages"]


router = APIRouter()


@router.post("/v1/chat/completions", openapi_extra=calls.body_schema(ChatCompletionIn))
async def chat_completions(request: Request) -> Any:
    state = request.app.state.flywheel
    principal = state.authenticate(request.headers)  # first: an unauthenticated caller learns nothing of the body
    body = await calls.read_body(request, ChatCompletionIn)
    return await _chat(request, body, principal, "/v1/chat/completions")


@router.post("/v1/completions", openapi_extra=calls.body_schema(CompletionIn))
async def completions(request: Request) -> Any:
    state = request.app.state.flywheel
    principal = state.authenticate(request.headers)
    legacy = await calls.read_body(request, CompletionIn)
    prompts = legacy.prompts()
    if len(prompts) == 1:
        return await _chat(request, legacy.as_chat(prompts[0]), principal, LEGACY)
    # several prompts: one chat each, in turn; prompt i's choices are numbered i*n .. i*n+n-1 (OpenAI's order)
    answers = [json.loads((await _chat(request, legacy.as_chat(p), principal, LEGACY)).body) for p in prompts]
    merged = answers[0]
    merged["choices"] = [{**c, "index": i} for i, c in enumerate(c for a in answers for c in a["choices"])]
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        merged["usage"][key] = sum(a["usage"][key] for a in answers)
    merged["usage"]["prompt_tokens_details"]["cached_tokens"] = sum(
        a["usage"]["prompt_tokens_details"]["cached_tokens"] for a in answers)
    merged["flywheel"].update(trace_ids=[a["flywheel"]["trace_id"] for a in answers],
                              cost_usd=sum(a["flywheel"].get("cost_usd") or 0.0 for a in answers))
    return calls.JSONBytes(merged, {"x-flywheel-trace-id": merged["flywheel"]["trace_id"]})


def refuse_unsupported(body: ChatCompletionIn) -> None:
    """Parameters whose answer the gateway cannot give, refused by name rather than answered with nothing."""
    if body.modalities and set(body.modalities) != {"text"}:
        raise ApiError(400, "only text output is supported: send `modalities: [\"text\"]` or leave it out",
                       param="modalities", code="unsupported_parameter")
    for param, message in _REFUSED.items():
        if getattr(body, param) is not None:
            raise ApiError(400, message, param=param, code="unsupported_parameter")


# OpenAI parameters accepted as null (absent) and refused with a value; `prediction` is accepted and ignored
_REFUSED = {
    "audio": "audio output is not supported (text only): leave `audio` out",
    "web_search_options": "web search runs on OpenAI's platform, not here: leave `web_search_options` out",
    "functions": "legacy `functions` is not supported: send them as `tools` ({type: function, function: {...}})",
    "function_call": "legacy `function_call` is not supported: send `tool_choice` with `tools`",
}


async def _chat(request: Request, body: ChatCompletionIn, principal: Principal, route: str) -> Any:
    state = request.app.state.flywheel
    refuse_unsupported(body)
    tenant = calls.resolve_tenant(principal, request.headers.get("x-flywheel-tenant"))
    app = calls.check_model(state, principal, body.model)
    n = body.n or 1
    if n > 1 and (body.stream or app):
        raise ApiError(400, "n > 1 is supported for non-streaming model aliases only; send n requests",
                       param="n", code="unsupported_parameter")
    if app and (body.tools or body.tool_choice not in (None, "none")):
        raise ApiError(400, f"an app (`{body.model}`) answers from its own pipeline and does not call tools; "
                       "send tools to a model alias", param="tools" if body.tools else "tool_choice",
                       code="unsupported_parameter")
    session = (body.metadata or {}).get("session_id") or request.headers.get("x-flywheel-session-id")
    creq = chat_request(body, tenant, session if isinstance(session, str) else None)
    if body.logprobs is not None or body.top_logprobs is not None:
        _check_logprobs(state, body, creq, app)
    alias = calls.app_model(state, app) if app else body.model
    chars = sum(len(m.content) for m in creq.messages)
    estimate = state.estimate(alias, chars, creq.max_tokens) * n
    call = await calls.begin(state, principal, tenant, route, alias, app, estimate_usd=estimate,
                             inputs={"model": body.model, "messages": span_messages(creq)},
                             user=body.user, session=session)
    async with calls.failures(call):
        if app:
            return await _app_completion(call, body, creq, app, session if isinstance(session, str) else None)
        if body.stream:
            return await _stream(call, body, creq)
        failed: Exception | None = None
        try:  # n > 1: one gateway call for every choice (one upstream request where the provider takes `n`)
            r = await state.runtime.gateway.achat(creq)
        except Exception as exc:  # noqa: BLE001 - settled below, outside `failures`
            failed = exc
    if failed is not None:
        await call.finish(error=failed)
        raise call.fail_upstream(failed)
    tin, tout = r.usage.input_tokens, r.usage.output_tokens
    picked: list[Picked] = [(c.text, c.finish_reason, c.tool_calls, c.logprobs) for c in r.choices] if r.choices \
        else [(r.text, r.finish_reason, r.tool_calls, r.logprobs)]
    await call.finish(cost=r.cost_usd, input_tokens=tin, output_tokens=tout,
                      output=span_output(r.text, r.tool_calls, r.choices if n > 1 else None))  # as the llm spans
    payload = completion(call, body.model, picked, r.usage,
                         {"model": r.model, "cost_usd": r.cost_usd, "attempts": r.attempts},
                         [c.reasoning for c in r.choices] if r.choices else [r.reasoning])
    return calls.JSONBytes(payload, call.headers)


def _check_logprobs(state: Any, body: ChatCompletionIn, creq: ChatRequest, app: str | None) -> None:
    """400 naming `logprobs` / `top_logprobs` when they are malformed or the model cannot return them."""
    param = "logprobs" if body.logprobs or body.top_logprobs is None else "top_logprobs"
    if app and (body.logprobs or body.top_logprobs):
        raise ApiError(400, f"an app (`{body.model}`) answers from its own pipeline and returns no log-probabilities; "
                       "send logprobs to a model alias", param=param, code="unsupported_parameter")
    if app:
        return
    try:
        gateway_logprobs.check(state.runtime.gateway, creq)
    except UserError as exc:
        raise ApiError(400, exc.message, param=param, code="unsupported_parameter") from None


# what an app answers without: its own prompt, model options and memory decide (the answer's `flywheel.ignored`)
_APP_IGNORES = ("temperature", "top_p", "seed", "max_tokens", "max_completion_tokens", "stop", "response_format",
                "frequency_penalty", "presence_penalty", "logit_bias", "reasoning_effort", "verbosity")


async def _app_completion(call: calls.Call, body: ChatCompletionIn, creq: ChatRequest, app: str,
                          session: str | None) -> Any:
    """An app answers the last user message; with a session (`metadata.session_id` or the header) a chat app
    continues that conversation from its stored memory, as on /v1/apps/{name}. What else the caller sent is
    named in the answer's `flywheel.ignored`, never silently dropped."""
    question = creq.last_user()
    if not question.strip():
        raise ApiError(400, "an app needs a user message", param="messages", code="invalid_value")
    ignored = calls.app_ignored(body, _APP_IGNORES, len(body.messages) > 1)
    runner = call.state.app(app)
    options = calls.session_options(call.state, runner, app, session, param="metadata.session_id")
    if body.stream and hasattr(runner, "stream"):
        return await _app_stream(call, body, runner.stream(question, call.tenant, **options), ignored)
    answer = await runner.arun(question, call.tenant, **options)
    call.state.metrics.answer(answer, call.tenant)
    await call.finish(cost=answer.cost_usd, input_tokens=answer.usage.input_tokens,
                      output_tokens=answer.usage.output_tokens, output=answer.text)
    if body.stream:
        return _sse(call, body, calls.one_piece(answer.text), answer.usage, {**answer_extra(answer), **ignored})
    payload = completion(call, body.model, [(answer.text, "stop", None, None)], answer.usage,
                         {**answer_extra(answer), **ignored})
    return calls.JSONBytes(payload, call.headers)


async def _app_stream(call: calls.Call, body: ChatCompletionIn, stream: Any, ignored: dict[str, Any]) -> Any:
    """The app's answer streamed as it comes (a failure before any text is an HTTP status, as for an alias, when it
    comes within the keep-alive interval: keepalive.py)."""
    pieces, usage = await app_stream(call, stream)
    return _sse(call, body, pieces, usage, lambda: {**answer_extra(stream.answer), **ignored} if stream.answer else {})


async def _stream(call: calls.Call, body: ChatCompletionIn, creq: ChatRequest) -> Any:
    """The alias's stream: an upstream failure within the keep-alive interval is an HTTP status, a later one an
    in-stream error (keepalive.py)."""
    pieces, settle = await model_stream(call, creq, scored=True)  # logprobs and reasoning ride on the pieces
    return _sse(call, body, pieces, settle, {})


def stream_tokens(usage: Callable[[], Any], kind: str) -> int:
    """The `cache_read` or `reasoning` tokens of a stream `calls.primed_stream` settled (0 for an app's stream)."""
    count = getattr(usage, kind, None)
    return int(count()) if count is not None else 0


def _sse(call: calls.Call, body: ChatCompletionIn, pieces: calls.Pieces | calls.ScoredPieces | Ticking[Any], usage: Any,
         extra: dict[str, Any] | Callable[[], dict[str, Any]]) -> Any:
    """The SSE response; `usage` is the answer's Usage or a function giving (input tokens, output tokens, cost)
    once `pieces` is done, `extra` the final chunk's `flywheel` fields (or a function giving them then). A wait
    on the upstream longer than the keep-alive interval sends an SSE comment (`: keep-alive`), at once when the
    stream opens before the upstream's first chunk (`pieces` late)."""
    legacy = call.route == LEGACY
    cid, created = f"{'cmpl' if legacy else 'chatcmpl'}-{call.trace_id}", int(time.time())
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    offset = 0  # where the next delta starts in the answer (a legacy chunk's logprobs.text_offset)

    def event(choices: list[dict[str, Any]], **more: Any) -> bytes:
        if legacy:  # a text completion's chunk: {text} where a chat chunk has {delta}
            choices = [{"index": c["index"], "text": c["delta"].get("content") or "",
                        "logprobs": legacy_logprobs(c["logprobs"]["content"], offset) if c.get("logprobs") else None,
                        "finish_reason": c["finish_reason"]} for c in choices]
        data = {"id": cid, "object": "text_completion" if legacy else "chat.completion.chunk", "created": created,
                "model": body.model, "system_fingerprint": None, "choices": choices, **more}
        return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"

    async def events() -> AsyncIterator[bytes]:
        nonlocal offset
        error: BaseException | str | None
        finish, parts, error = "stop", [], None
        tool_calls: list[dict[str, Any]] = []
        ticking: Ticking[Any] = keepalive(pieces)  # type: ignore[arg-type]
        try:
            if not legacy:
                yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            if ticking.late:
                yield b": keep-alive\n\n"
            async for piece in ticking:
                if piece is None:
                    yield b": keep-alive\n\n"
                    continue
                delta, fr, tools = piece[0], piece[1], piece[2]
                if fr:
                    finish = FINISH.get(fr, "stop")
                if len(piece) == 5 and piece[4] and not legacy:  # the model's reasoning, as DeepSeek's API sends it
                    yield event([{"index": 0, "delta": {"reasoning_content": piece[4]}, "finish_reason": None}])
                if delta:
                    parts.append(delta)
                    choice: dict[str, Any] = {"index": 0, "delta": {"content": delta}, "finish_reason": None}
                    if len(piece) >= 4 and piece[3]:  # a request asking for logprobs: this delta's tokens
                        choice["logprobs"] = chat_logprobs(piece[3])
                    yield event([choice])
                    offset += len(delta)
                if tools:
                    merge_tool_deltas(tool_calls, tools)
                    yield event([{"index": 0, "delta": {"tool_calls": tools}, "finish_reason": None}])
            if tool_calls:
                finish = "tool_calls"
            if callable(usage):
                tin, tout, _ = usage()
                settled = Usage(input_tokens=tin, output_tokens=tout, cache_read_tokens=stream_tokens(usage, "cache_read"),
                                reasoning_tokens=stream_tokens(usage, "reasoning"))
            else:
                settled = usage
            yield event([{"index": 0, "delta": {}, "finish_reason": finish}],
                        flywheel={"trace_id": call.trace_id, **(extra() if callable(extra) else extra)})
            if include_usage:  # null, not zeros, when the upstream reported none (OpenAI's type allows it)
                reported = getattr(usage, "reported", None)
                yield event([], usage=usage_json(settled) if reported is None or reported() else None)
            yield b"data: [DONE]\n\n"
        except UserError as exc:  # the upstream broke after the stream opened: tell the client in-band
            error = exc
            err = call.fail_upstream(exc)
            yield b"data: " + json.dumps(err.body()).encode() + b"\n\n"
        except BaseException as exc:  # the client went away (cancelled) or a bug: the trace says so
            error = exc if isinstance(exc, Exception) else "client disconnected"
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await ticking.aclose()
            if callable(usage):
                with anyio.CancelScope(shield=True):
                    close = getattr(pieces, "aclose", None)  # ended (its usage known) before it is settled
                    if close is not None:
                        await close()
                    tin, tout, cost = usage()
                    text = "".join(parts)
                    await call.finish(cost=cost, input_tokens=tin, output_tokens=tout, error=error,
                                      output={"content": text, "tool_calls": tool_calls} if tool_calls else text)

    return calls.sse_response(events(), call.headers)

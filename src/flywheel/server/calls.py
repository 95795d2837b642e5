"""One metered call, shared by every route: authenticate → check the model/app is allowed → admit against the
key's budget and rate limit → open the root span (tenant on it) → run → settle the cost and tokens → metrics.

The root span is opened by the server, so the trace id is known before the first byte (the
`x-flywheel-trace-id` header, also on streams) and every span of the request — gateway attempts, app steps,
guards, judges — lands in one trace carrying the caller's tenant.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from flywheel.errors import GatewayError, UserError
from flywheel.server.errors import ApiError, compressed_body, from_gateway, from_validation
from flywheel.server.keys import Admission, Principal
from flywheel.server.state import ServerState
from flywheel.tracing import tracer
from flywheel.types import ChatRequest

APP_PREFIX = "app:"
M = TypeVar("M", bound=BaseModel)
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


async def read_body(request: Request, model: type[M]) -> M:
    """The request body validated as `model` straight from its bytes, in one pass (the hot routes take `Request`
    rather than a model parameter: FastAPI would decode the JSON, then validate the dicts). A bad body is the
    same 400 naming the field that a FastAPI validation error gives."""
    compressed = compressed_body(request.headers)
    if compressed is not None:
        raise compressed
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise from_validation([dict(e) for e in exc.errors(include_url=False)]) from None


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting `model` as the JSON request body of a route that reads it with `read_body`
    (self-contained: the model's `$defs` inlined)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.rsplit("/", 1)[1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline(schema)}}}}


class JSONBytes(Response):
    """A JSON response whose body is encoded once and whose headers are built directly (Starlette's JSONResponse
    re-walks the headers through MutableHeaders on every response)."""

    media_type = "application/json"

    def __init__(self, payload: Any, headers: dict[str, str], status_code: int = 200):
        self.body = _ENCODER.encode(payload).encode()
        self.status_code = status_code
        self.background = None
        self.raw_headers = [(b"content-type", b"application/json"),
                            (b"content-length", str(len(self.body)).encode())]
        self.raw_headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


class Call:
    """What a route needs to finish a request: `finish()` once, with what it cost."""

    def __init__(self, state: ServerState, principal: Principal, tenant: str, route: str, model: str,
                 app: str | None, admission: Admission, span: Any, token: Any):
        self.state, self.principal, self.tenant, self.route = state, principal, tenant, route
        self.model, self.app, self.admission = model, app, admission
        self.span, self.token = span, token
        self.done = False

    @property
    def trace_id(self) -> str:
        return self.span.trace_id

    @property
    def headers(self) -> dict[str, str]:
        return {"x-flywheel-trace-id": self.span.trace_id}

    async def finish(self, *, cost: float = 0.0, input_tokens: int = 0, output_tokens: int = 0,
                     error: BaseException | str | None = None, output: Any = ...) -> None:
        if self.done:
            return
        self.done = True
        if error is not None:
            self.span.record_error(error)
        if output is not ...:
            self.span.set(output)
        try:  # settled before the trace ends, so a finished trace means its cost is on the key
            if self.admission.key_id is not None:
                await asyncio.to_thread(self.state.keys.settle, self.admission, cost, input_tokens + output_tokens)
        finally:
            tracer.end(self.span, self.token)
        self.state.metrics.usage(self.model, self.app or "", self.tenant, input_tokens, output_tokens, cost)

    def fail_upstream(self, exc: Exception) -> ApiError:
        err = from_gateway(exc)
        err.headers.update(self.headers)
        if isinstance(exc, GatewayError):
            self.state.metrics.upstream_errors.labels(self.model, str(err.status)).inc()
        return err


def request_metadata(tenant: str, user: str | None = None, session: str | None = None,
                     sent: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ChatRequest's metadata from what a wire sent: tenant, end user, session (a route's sticky split hashes
    it) and the client's own `metadata` (kept under `request`)."""
    meta: dict[str, Any] = {"tenant": tenant}
    if user:
        meta["user"] = user
    if session:
        meta["session_id"] = session
    if sent:
        meta["request"] = sent
    return meta


def resolve_tenant(principal: Principal, requested: str | None) -> str:
    """A key's tenant is the only one it may use; the admin and an open server may name any."""
    if requested is None or requested == principal.tenant:
        return principal.tenant
    if principal.admin or principal.key_id is None:
        from flywheel.config import validate_tenant

        try:
            return validate_tenant(requested)
        except UserError as exc:
            raise ApiError(400, exc.message, param="tenant", code="invalid_tenant") from None
    raise ApiError(403, f"this key belongs to tenant {principal.tenant!r} and cannot act for another tenant",
                   param="tenant", code="tenant_not_allowed")


def check_model(state: ServerState, principal: Principal, model: str, param: str = "model") -> str | None:
    """The app name for `app:NAME`, else None for a model alias; 404 unknown, 403 not allowed for this key."""
    if model.startswith(APP_PREFIX):
        name = model[len(APP_PREFIX):]
        check_app(state, principal, name, param)
        return name
    cfg = state.project.config
    if model not in cfg.models and model not in cfg.routes:  # a route resolves to an alias in the gateway
        raise ApiError(404, f"the model `{model}` does not exist; known: {', '.join(model_names(state))}",
                       param=param, code="model_not_found")
    if not principal.may_use_model(model):
        raise ApiError(403, f"this key may not use model `{model}`", param=param, code="model_not_allowed")
    return None


def check_app(state: ServerState, principal: Principal, name: str, param: str = "app") -> None:
    if name not in app_names(state):
        raise ApiError(404, f"the app `{name}` does not exist; known: {', '.join(app_names(state))}", param=param,
                       code="app_not_found")
    if not principal.may_use_app(name):
        raise ApiError(403, f"this key may not use app `{name}`", param=param, code="app_not_allowed")


def app_names(state: ServerState) -> list[str]:
    from flywheel.apps.registry import DEFAULT_APP

    return sorted({DEFAULT_APP, *state.project.config.apps})


def model_names(state: ServerState) -> list[str]:
    cfg = state.project.config
    return sorted(cfg.models) + sorted(cfg.routes)


def app_ignored(body: BaseModel, fields: tuple[str, ...], earlier: bool, earlier_name: str = "messages"
                ) -> dict[str, list[str]]:
    """`{"ignored": [...]}` for the answer's `flywheel` object ({} when nothing was): the `fields` set in `body`
    and `earlier` turns before the last user message, which an app answers without (its own prompt, model
    options and memory decide). Named on every wire, never silently dropped."""
    ignored = [name for name in fields if getattr(body, name) is not None]
    ignored += [f"{earlier_name} before the last user message"] * earlier
    return {"ignored": ignored} if ignored else {}


def app_model(state: ServerState, app: str) -> str:
    cfg = state.project.config.apps.get(app)
    return (cfg.model if cfg is not None and cfg.model else None) or "default"


def session_options(state: ServerState, app: Any, name: str, session: str | None,
                    param: str = "session_id") -> dict[str, Any]:
    """The keyword arguments that make app `name` continue conversation `session` (chat apps keep their memory in
    the store, so any worker continues it); a session for another app kind is a 400."""
    if session is None:
        return {}
    if getattr(app, "kind", None) != "chat":
        raise ApiError(400, f"app '{name}' does not keep sessions; only chat apps do", param=param,
                       code="invalid_value")
    if getattr(app, "memory", None) is None:
        app.remember(state.store)
    return {"session_id": session}


async def begin(state: ServerState, principal: Principal, tenant: str, route: str, model: str,
                app: str | None, *, estimate_usd: float = 0.0, inputs: Any = None, user: str | None = None,
                session: str | None = None, keep_inputs: bool = False) -> Call:
    """Admit the request (429 when over a limit) and open its root span. The caller's end-user and session ids
    go on it as `flywheel.user_id` / `flywheel.session_id` (the store files the trace under them)."""
    admission = await asyncio.to_thread(state.admit, principal, estimate_usd) if principal.limited \
        else Admission()
    attrs: dict[str, Any] = {"flywheel.tenant": tenant, "flywheel.route": route}
    if app:
        attrs["flywheel.app"] = app
    if principal.key_id:
        attrs["flywheel.key"] = principal.name
    if user:
        attrs["flywheel.user_id"] = user[:256]
    if session:
        attrs["flywheel.session_id"] = str(session)[:256]
    # An app's own span records its input as the app saw it (after its input `redact` guards): the raw request
    # stays off the root span, so the trace's input preview is the masked text too. `keep_inputs`: the root is
    # where the route keeps what it must read back (a stored Response).
    name = f"server {route.replace('{name}', app)}" if app else f"server {route}"
    span, token = tracer.start(name, "other", None if app and not keep_inputs else inputs, **attrs)
    return Call(state, principal, tenant, route, model, app, admission, span, token)


class _Tracked:
    """An async generator as a response body that remembers whether iterating it ever began (Python 3.11 has no
    `inspect.getasyncgenstate`); one method call per chunk, no extra generator frame."""

    def __init__(self, events: Any):
        self.events, self.started = events, False

    def __aiter__(self) -> _Tracked:
        return self

    def __anext__(self) -> Any:
        self.started = True
        return self.events.__anext__()


def sse_response(events: Any, headers: dict[str, str]) -> Any:
    """A text/event-stream response that closes its generator as soon as the response ends for any reason (the
    client went away included), so the generator's `finally` ends the trace and settles the cost right then,
    not whenever the garbage collector finds it.

    A generator that never started (the client gone before the first byte: the first send fails, or the ASGI
    server cancels the response before it iterates) has no `finally` to run yet: it is run to its first event and
    closed there, so its `finally` settles all the same. The wires' first event (role chunk, message_start,
    response.created) is made before any upstream wait; at worst it waits for a keep-alive or the first piece."""
    import anyio
    from fastapi.responses import StreamingResponse

    body = _Tracked(events)

    class _Closing(StreamingResponse):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            try:
                await super().__call__(scope, receive, send)
            finally:
                with anyio.CancelScope(shield=True):
                    if not body.started:
                        with contextlib.suppress(Exception):  # the generator's own finally has recorded it
                            await events.__anext__()
                    await events.aclose()

    return _Closing(body, media_type="text/event-stream", headers={**headers, "cache-control": "no-cache"})


@asynccontextmanager
async def failures(call: Call) -> AsyncIterator[None]:
    """Settle `call` when the route fails: an ApiError keeps its status, a gateway/user error becomes the
    upstream status (502/504 …), anything else ends the trace with the error and propagates."""
    try:
        yield
    except ApiError as exc:
        await call.finish(error=exc.message)
        exc.headers.update(call.headers)
        raise
    except UserError as exc:
        await call.finish(error=exc)
        raise call.fail_upstream(exc) from None
    except BaseException as exc:
        await call.finish(error=exc)
        raise


# (text delta, finish reason, tool-call pieces in OpenAI `delta.tool_calls` form or None)
Pieces = AsyncIterator[tuple[str, str | None, list[dict[str, Any]] | None]]
# the same, plus the delta's tokens with their log-probabilities (StreamChunk.logprobs) or None, and its piece of
# the model's reasoning (StreamChunk.reasoning) or None
ScoredPieces = AsyncIterator[tuple[str, str | None, list[dict[str, Any]] | None, list[dict[str, Any]] | None,
                                   str | None]]


async def one_piece(text: str) -> Pieces:
    """A whole answer as a one-delta stream."""
    yield text, None, None



async def primed_stream(call: Call, request: ChatRequest) -> tuple[Pieces, Callable[[], tuple[int, int, float]]]:
    """`_primed` as (delta, finish reason, tool calls) pieces."""
    return await _primed(call, request, False)  # type: ignore[no-any-return]


async def primed_scored_stream(call: Call,
                               request: ChatRequest) -> tuple[ScoredPieces, Callable[[], tuple[int, int, float]]]:
    """`_primed` as (delta, finish reason, tool calls, logprobs, reasoning) pieces, for wires that relay the
    log-probabilities or the reasoning."""
    return await _primed(call, request, True)  # type: ignore[no-any-return]


async def _primed(call: Call, request: ChatRequest, scored: bool) -> Any:
    """The gateway's stream with its first chunk already pulled, so a failure before any text surfaces here
    (a proper HTTP status) instead of inside a 200 event stream; plus a function giving (input tokens,
    output tokens, cost) once the stream has ended. A stream cut short (the client hung up, the upstream broke)
    has no usage from the upstream: it is estimated from the prompt and the text handed out so far
    (`ServerState.cut_stream_usage`), since the upstream bills what it generated."""
    import anyio

    stream = call.state.runtime.gateway.astream(request)
    it = stream.__aiter__()
    try:
        first = await it.__anext__()
    except StopAsyncIteration:
        first = None
    except BaseException:
        await stream.aclose()
        raise
    delivered: list[str] = []

    async def pieces() -> Any:
        try:
            if first is not None:
                delivered.append(first.delta)
                if scored:
                    yield first.delta, first.finish_reason, first.tool_calls, first.logprobs, first.reasoning
                else:
                    yield first.delta, first.finish_reason, first.tool_calls
                async for chunk in it:
                    delivered.append(chunk.delta)
                    if scored:
                        yield chunk.delta, chunk.finish_reason, chunk.tool_calls, chunk.logprobs, chunk.reasoning
                    else:
                        yield chunk.delta, chunk.finish_reason, chunk.tool_calls
        finally:
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    def usage() -> tuple[int, int, float]:
        r = stream.result
        if r is not None:
            return r.usage.input_tokens, r.usage.output_tokens, r.cost_usd
        return call.state.cut_stream_usage(call.model, request.messages, "".join(delivered))

    # the prompt-cache reads and reasoning tokens of the ended stream, for the wires that report them
    # (openai_proxy.cached_tokens, reasoning_tokens)
    usage.cache_read = lambda: stream.result.usage.cache_read_tokens if stream.result else 0  # type: ignore[attr-defined]
    usage.reasoning = lambda: stream.result.usage.reasoning_tokens if stream.result else 0  # type: ignore[attr-defined]
    usage.reported = lambda: stream.result.usage_reported if stream.result else True  # type: ignore[attr-defined]
    return pieces(), usage

"""`/mcp` in `flywheel serve`: the project's MCP server (server/mcp_server.py) as streamable HTTP, for remote MCP
clients (Claude and Cursor remote connectors, the OpenAI Agents SDK, the Responses API's `mcp` tool).

Callers authenticate exactly like on /v1 (`Authorization: Bearer <flywheel key>`; 401 otherwise): the key's
tenant is the only one a call may act for, a key limited to some apps may `ask` only those, and `ask` is admitted
against the key's rate limits and budget and settled with what it cost, in one trace carrying the tenant.

The transport is stateless (every POST is a whole exchange, answered as JSON), so any worker of
`flywheel serve --workers N` answers any request. On by default when the `mcp` extra is installed;
`server.mcp: false` turns it off.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flywheel.errors import UserError
from flywheel.server import calls
from flywheel.server.app import is_loopback
from flywheel.server.apps_api import MAX_INPUT
from flywheel.server.errors import ApiError
from flywheel.server.keys import Principal
from flywheel.server.mcp_server import answer_result, build_server
from flywheel.server.state import OPEN, ServerState
from flywheel.text.install import pip_install

if TYPE_CHECKING:
    from fastapi import FastAPI

PATH = "/mcp"
log = logging.getLogger("flywheel.server")
_PRINCIPAL = "flywheel.principal"  # the ASGI scope key the endpoint puts the authenticated caller under


class KeyGate:
    """The caller is the flywheel key of the HTTP request that carried the MCP call."""

    guard_stdout = False
    local = False  # a remote caller: no paths of this machine in messages

    def __init__(self, state: ServerState):
        self.state = state

    def principal(self, ctx: Any) -> Principal:
        try:
            scope = ctx.request_context.request.scope
        except (AttributeError, ValueError):  # no HTTP request behind this call
            scope = {}
        principal = scope.get(_PRINCIPAL)
        if not isinstance(principal, Principal):
            raise ApiError(401, "this MCP call carries no authenticated flywheel key", code="missing_api_key")
        return principal

    def tenant(self, ctx: Any, requested: str | None) -> str:
        return calls.resolve_tenant(self.principal(ctx), requested)

    def attributes(self, ctx: Any) -> dict[str, Any]:
        principal = self.principal(ctx)
        return {"flywheel.key": principal.name} if principal.key_id else {}

    async def ask(self, ctx: Any, app: str, question: str, tenant: str) -> dict[str, Any]:
        state, principal = self.state, self.principal(ctx)
        calls.check_app(state, principal, app)
        if not question.strip():
            raise ApiError(400, "the question is empty", param="question", code="invalid_value")
        if len(question) > MAX_INPUT:
            raise ApiError(400, f"the question is longer than {MAX_INPUT} characters", param="question",
                           code="invalid_value")
        alias = calls.app_model(state, app)
        call = await calls.begin(state, principal, tenant, PATH, alias, app, inputs={"input": question},
                                 estimate_usd=state.estimate(alias, len(question), None))
        call.span.set(**{"flywheel.mcp.tool": "ask"})
        async with calls.failures(call):
            answer = await state.app(app).arun(question, tenant)
        state.metrics.answer(answer, tenant)
        await call.finish(cost=answer.cost_usd, input_tokens=answer.usage.input_tokens,
                          output_tokens=answer.usage.output_tokens, output=answer.text)
        result = answer_result(answer)
        result["trace_id"] = call.trace_id
        token, expires = state.signer.issue(call.trace_id)
        result["feedback"] = {"token": token, "expires_at": expires}  # for POST /v1/feedback
        return result


class McpEndpoint:
    """The ASGI endpoint at /mcp: authenticates, then hands the request to the SDK's session manager. The MCP
    server and its manager are made on the first request (importing the SDK takes a second or two, which a
    worker's start-up should not wait for) and run until the app's lifespan ends (`running`)."""

    def __init__(self, state: ServerState):
        self.state = state
        self._stop: asyncio.Event | None = None  # set while the lifespan runs
        self._starting: asyncio.Future | None = None  # → the manager's request handler
        self._holder: asyncio.Task | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        from starlette.datastructures import Headers

        if scope["type"] != "http":
            return
        headers = Headers(scope=scope)
        try:
            principal = self.state.authenticate(headers)
        except ApiError as exc:
            exc.headers.setdefault("WWW-Authenticate", "Bearer")
            await _send_error(send, exc)
            return
        if principal is OPEN and _foreign_origin(headers.get("origin")):  # a web page on another site (DNS rebinding)
            await _send_error(send, ApiError(403, "this open server answers MCP requests from local pages only",
                                             code="origin_not_allowed"))
            return
        try:
            handler = await self._handler()
        except ApiError as exc:
            await _send_error(send, exc)
            return
        scope[_PRINCIPAL] = principal
        await handler(scope, receive, send)

    async def _handler(self) -> Any:
        if self._stop is None or self._stop.is_set():
            raise ApiError(503, "the MCP endpoint is not running (the app's lifespan is off)", code="server_not_ready")
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start(self._stop))
        try:
            return await asyncio.shield(self._starting)
        except Exception as exc:  # a prompt file that does not load …: said, and tried again on the next request
            self._starting = None
            if not isinstance(exc, UserError):
                log.exception("starting the MCP server failed")
            why = exc.render() if isinstance(exc, UserError) else "see the server log"
            raise ApiError(503, f"the MCP server could not start: {why}", code="mcp_unavailable") from None

    async def _start(self, stop: asyncio.Event) -> Any:
        """Build the server and run its session manager in a task of its own: the manager's task group must be
        left by the task that entered it (`LazyApp` enters and leaves the app's lifespan from different tasks,
        and this runs in the task of the first request)."""
        server = await asyncio.to_thread(build_server, self.state.runtime, KeyGate(self.state))
        manager = _session_manager(server)
        ready = asyncio.Event()

        async def hold() -> None:
            async with manager.run():
                ready.set()
                await stop.wait()

        self._holder = holder = asyncio.create_task(hold())
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({holder, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if holder.done():
            waiting.cancel()
            holder.result()  # it failed to start: raise why
        return manager.handle_request

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """While the app's lifespan runs, /mcp answers; at its end the session manager is stopped."""
        self._stop, self._starting, self._holder = asyncio.Event(), None, None
        try:
            yield
        finally:
            self._stop.set()
            if self._starting is not None:
                await asyncio.wait({self._starting})  # a build in progress ends before its manager is stopped
            if self._holder is not None:
                await asyncio.wait({self._holder})


def _session_manager(server: Any) -> Any:
    """A fresh stateless, JSON-answering session manager for `server` (one per lifespan: a manager runs once)."""
    from mcp.server.transport_security import TransportSecuritySettings

    # flywheel keys authenticate callers; the Host header is not checked, so the server works behind any proxy
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    try:
        server.streamable_http_app(stateless_http=True, json_response=True, transport_security=security)
    except TypeError:  # mcp 1.x: these are settings, and the manager is made once unless reset
        server.settings.stateless_http, server.settings.json_response = True, True
        server.settings.transport_security = security
        server._session_manager = None
        server.streamable_http_app()
    return server.session_manager


def _foreign_origin(origin: str | None) -> bool:
    if not origin:
        return False  # not a browser
    return not is_loopback(urlsplit(origin).hostname or "")


async def _send_error(send: Any, err: ApiError) -> None:
    body = json.dumps(err.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in err.headers.items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def wanted(state: ServerState) -> bool:
    """Whether to serve /mcp: `server.mcp` (true, false, or unset: when the `mcp` extra is installed)."""
    choice = getattr(state.project.config.server, "mcp", None)
    if choice is False:
        return False
    if importlib.util.find_spec("mcp") is not None:  # found, not imported: that waits for the first request
        return True
    if choice is None:
        return False
    raise UserError(f"{state.project.where('server', 'mcp')}: `server.mcp: true` needs the official MCP SDK, which "
                    "is not installed", hint=f"{pip_install('mcp')}, or set `server.mcp: false`")


def mount(app: FastAPI, state: ServerState) -> McpEndpoint | None:
    """Serve /mcp on `app` when wanted; the app's lifespan runs it (`running`)."""
    if not wanted(state):
        return None
    endpoint = McpEndpoint(state)
    app.router.add_route(PATH, endpoint, include_in_schema=False)  # type: ignore[arg-type]  # an ASGI app
    app.state.mcp = endpoint
    return endpoint


def running(app: FastAPI) -> contextlib.AbstractAsyncContextManager[None]:
    endpoint: McpEndpoint | None = getattr(app.state, "mcp", None)
    return endpoint.running() if endpoint is not None else contextlib.nullcontext()

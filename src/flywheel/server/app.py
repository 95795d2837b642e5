"""The ASGI app: `create_app(project)` for `flywheel serve`, uvicorn, gunicorn or any ASGI server.

    uvicorn --factory 'flywheel.server:create_app_from_env'      # FLYWHEEL_PROJECT=. (what `serve --workers` runs)

`flywheel serve` and `create_app_from_env` hand the server a `LazyApp`: it answers `GET /healthz` at once and
builds the real app (FastAPI, the store, keys, routers) in a thread once the socket is bound, so a worker is live
in well under a second; `GET /readyz` says 503 `starting` until the build is done, and any other request waits
for it. Importing this module is light (FastAPI is imported by `create_app`).

One pure-ASGI middleware does what every request needs, before any route runs: a request id (`x-request-id`,
kept from the client when sane; also as `request-id`, Anthropic's name, on /v1/messages and requests that carry
`anthropic-version`), the body size limit (413 before the body is parsed), the JSON access log
line (logger `flywheel.server.access`) and the request counters and latency histogram.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.config import Project
from flywheel.server.errors import ApiError, compressed_body, from_validation

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    from flywheel.server.state import ServerState

access_log = logging.getLogger("flywheel.server.access")
log = logging.getLogger("flywheel.server")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# routes of /v1/…
_UNDER_V1 = ("/chat/completions", "/completions", "/embeddings", "/models", "/messages", "/responses", "/apps/",
             "/feedback", "/files", "/batches")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_name(host_header: str | None) -> bool:
    """Whether a request's Host names this machine's loopback (localhost, *.localhost, 127.0.0.1, [::1]; no
    header: a caller inside the process). An open server (loopback, no keys) answers only those: a web page on
    another site that points its own name at 127.0.0.1 (DNS rebinding) sends that name, and must not call the
    models or read the traces."""
    from urllib.parse import urlsplit

    if not host_header:
        return True
    try:
        name = urlsplit("//" + host_header.strip()).hostname or ""
    except ValueError:  # a malformed Host ("[::1")
        return False
    return name == "localhost" or name.endswith(".localhost") or is_loopback(name)


def create_app(project: Project | str | Path = ".", *, host: str = "127.0.0.1", clock: Any = None,
               max_body_bytes: int = 4 * 1024 * 1024, cors_origins: list[str] | None = None) -> FastAPI:
    """The flywheel server for `project` (a Project or its folder). `host` is the address it will be bound
    to: on a loopback address a project without keys is served open; elsewhere keys are required."""
    from fastapi import FastAPI

    from flywheel.server.state import ServerState

    if not isinstance(project, Project):
        project = Project.load(project)
    kwargs: dict[str, Any] = {"host": host, "max_body_bytes": max_body_bytes}
    if clock is not None:
        kwargs["clock"] = clock
    state = ServerState(project, **kwargs)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        from flywheel.server import mcp_mount

        workers = _background_workers(state, app)
        try:
            async with mcp_mount.running(app):  # /mcp's session manager, when mounted
                yield
        finally:
            for worker in workers:
                worker.stop()
            if "gateway" in state.runtime.__dict__:
                await state.runtime.gateway.aclose()
            state.close()  # flushes the trace writer and closes the store

    # no /docs or /redoc: FastAPI serves them from a CDN, and flywheel works offline; /openapi.json is root.py's,
    # which asks for a key when keys are required
    app = FastAPI(title="flywheel", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None, description="OpenAI-compatible proxy, app API and feedback for a flywheel project.")
    app.state.flywheel = state
    _errors(app)
    from flywheel import web
    from flywheel.server import (
        anthropic_api,
        apps_api,
        batches_api,
        conversations_api,
        feedback_api,
        files_api,
        models_api,
        openai_proxy,
        ops,
        otlp,
        responses_api,
        review_api,
        root,
    )

    for module in (openai_proxy, models_api, anthropic_api, responses_api, conversations_api, apps_api, feedback_api,
                   ops, otlp, review_api, files_api, batches_api, root):
        app.include_router(module.router)
    web.mount(app, state)  # the dashboard under /ui
    from flywheel.server import mcp_mount

    mcp_mount.mount(app, state)  # MCP over streamable HTTP at /mcp, when the `mcp` extra is installed
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=cors_origins, allow_methods=["*"], allow_headers=["*"],
                           expose_headers=["x-flywheel-trace-id", "x-request-id", "request-id"])
    app.add_middleware(RequestMiddleware, state=state)
    return app


def _background_workers(state: ServerState, app: FastAPI) -> list[Any]:
    """Work that runs beside the requests, never in their path: the online evaluators and alert checks
    (`monitor.online` / `monitor.alerts`, unless `server.online_evaluators: false`), the embedding of chunks
    that have no vector yet (unless `server.embed_worker: false`), the Batch API's runner (unless
    `server.batch_worker: false`) and the imports the first request would wait for (`app.state.warmup`): the
    vendor SDKs of the configured aliases (the openai SDK alone takes about a second) and, with the semantic cache
    on, jieba's part-of-speech tagger that its Chinese contrast rules use."""
    config = state.project.config
    workers: list[Any] = []
    steps: list[Callable[[], Any]] = []
    providers = {alias.provider for alias in config.models.values()}
    for module, users in (("openai", {"openai_compat", "azure"}), ("anthropic", {"anthropic"})):
        if providers & users:
            steps.append(functools.partial(importlib.import_module, module))
    if config.cache.semantic is not None:
        from flywheel.cache.contrast import warm_tagger

        steps.append(warm_tagger)
    if steps:
        app.state.warmup = Warmup(*steps).start()
        workers.append(app.state.warmup)
    if config.server.batch_worker:
        from flywheel.server.batches_runner import BatchRunner

        app.state.batch_runner = BatchRunner(state, config.server.batch_concurrency).start()
        workers.append(app.state.batch_runner)
    if config.server.online_evaluators and (config.monitor.online or config.monitor.alerts):
        from flywheel.monitor.online import OnlineWorker

        workers.append(OnlineWorker(state.runtime).start())
    if config.server.embed_worker and config.retrieval.embedder not in ("none", ""):
        from flywheel.retrieval.embed import EmbedWorker

        workers.append(EmbedWorker(state.runtime).start())
    return workers


class Warmup:
    """Loads, in a daemon thread beside the requests, what the first request would otherwise wait for; `done` is
    set once it has run. A request that needs it meanwhile waits for the same load (Python's import lock), no
    longer; a load that fails is logged, and the request that needs it meets the error as it would have."""

    def __init__(self, *steps: Callable[[], Any]):
        self.steps = steps
        self.done = threading.Event()

    def start(self) -> Warmup:
        threading.Thread(target=self._run, name="flywheel-warmup", daemon=True).start()
        return self

    def _run(self) -> None:
        try:
            for step in self.steps:
                step()
        except Exception:  # a warm-up is an optimisation: the request that needs it meets the error
            log.warning("warming up at start failed; the first request that needs it loads it", exc_info=True)
        finally:
            self.done.set()

    def stop(self) -> None:
        """Nothing to stop: a load in progress ends with the process (the thread is a daemon)."""


def create_app_from_env() -> LazyApp:
    """The factory `flywheel serve --workers N` hands to uvicorn (each worker builds its own app, lazily)."""
    origins = [o for o in os.environ.get("FLYWHEEL_CORS_ORIGINS", "").split(",") if o]
    project = os.environ.get("FLYWHEEL_PROJECT", ".")
    host = os.environ.get("FLYWHEEL_HOST", "127.0.0.1")
    max_body = int(os.environ.get("FLYWHEEL_MAX_BODY_BYTES") or 4 * 1024 * 1024)
    return LazyApp(lambda: create_app(project, host=host, max_body_bytes=max_body, cors_origins=origins or None))


def lazy_app(project: Project | str | Path = ".", *, on_failure: Callable[[BaseException], None] | None = None,
             on_ready: Callable[[Any], None] | None = None, **kwargs: Any) -> LazyApp:
    """`create_app(project, **kwargs)` behind a `LazyApp` (what `flywheel serve` runs)."""
    return LazyApp(lambda: create_app(project, **kwargs), on_failure, on_ready)


class LazyApp:
    """An ASGI app that is live as soon as the server runs: `/healthz` is answered here, the real app is built
    in a thread at lifespan start-up, and its own lifespan (which flushes traces on shutdown) is entered and
    left around it. Requests other than /healthz and /readyz wait for the build."""

    def __init__(self, build: Callable[[], Any], on_failure: Callable[[BaseException], None] | None = None,
                 on_ready: Callable[[Any], None] | None = None):
        self._build = build
        self._on_failure = on_failure  # `flywheel serve` stops and exits 2 on a user error (a bad guard …)
        self._on_ready = on_ready  # called in the build thread with the built app
        self.app: Any = None  # the built FastAPI app
        self._task: asyncio.Task | None = None
        self._lifespan: Any = None
        self._failed: BaseException | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        app = self.app
        if app is not None:
            await app(scope, receive, send)
            return
        if scope["type"] == "lifespan":
            await self._run_lifespan(receive, send)
            return
        path = scope.get("path")
        if scope["type"] == "http" and path in ("/healthz", "/readyz") and self._failed is None:
            ready = path == "/healthz"
            await _send_json(send, 200 if ready else 503, {"status": "ok" if ready else "starting"})
            return
        app = await self._ready()
        if app is None:
            if scope["type"] == "http":
                err = ApiError(503, "the server failed to start; see its log", code="server_not_ready")
                await _send_json(send, 503, err.body())
            return
        await app(scope, receive, send)

    async def _ready(self) -> Any:
        if self._task is None:  # no lifespan (an ASGI server run with lifespan off): build on first request
            self._task = asyncio.ensure_future(self._start())
        await asyncio.shield(self._task)
        return self.app

    async def _start(self) -> None:
        try:
            app = await asyncio.to_thread(self._built)
            lifespan = app.router.lifespan_context(app)
            await lifespan.__aenter__()
            self._lifespan, self.app = lifespan, app
        except Exception as exc:
            self._failed = exc
            if self._on_failure is not None:
                self._on_failure(exc)
            else:
                log.exception("building the flywheel app failed")

    def _built(self) -> Any:
        app = self._build()
        if self._on_ready is not None:
            self._on_ready(app)
        return app

    async def _run_lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._task = self._task or asyncio.ensure_future(self._start())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._task is not None:
                    await self._task  # a build in progress is finished, so its resources are closed
                if self._lifespan is not None:
                    try:
                        await self._lifespan.__aexit__(None, None, None)
                    except Exception:
                        log.exception("shutting the flywheel app down failed")
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _send_json(send: Any, status: int, payload: dict) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("flywheel")
    except PackageNotFoundError:
        return "0"


def _is_anthropic(request: Request) -> bool:
    return request.url.path.startswith("/v1/messages")


def error_response(request: Request, err: ApiError) -> JSONResponse:
    from fastapi.responses import JSONResponse

    return JSONResponse(err.body(anthropic=_is_anthropic(request)), status_code=err.status, headers=err.headers)


def _unauthenticated(request: Request) -> JSONResponse | None:
    """The 401 a caller without a valid key gets instead of a bad body's 400 (FastAPI validates a route's body
    parameter before the route authenticates): an unauthenticated client learns nothing about validation.
    /v1/feedback also takes a feedback token from the body, so it checks its own body (feedback_api)."""
    path = request.url.path
    if not path.startswith("/v1/") or path == "/v1/feedback":
        return None
    try:
        request.app.state.flywheel.authenticate(request.headers)
    except ApiError as exc:
        return error_response(request, exc)
    return None


def _compressed(request: Request) -> JSONResponse | None:
    refused = compressed_body(request.headers)
    return None if refused is None else error_response(request, refused)


def _errors(app: FastAPI) -> None:
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _unauthenticated(request) or _compressed(request) or error_response(
            request, from_validation(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
            if request.url.path.startswith(_UNDER_V1):  # an OpenAI SDK whose base_url lacks the /v1
                message += f"; the API is under /v1: set the client's base_url to {str(request.base_url).rstrip('/')}/v1"
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("allow", (exc.headers or {}).get("Allow", ""))
            message = f"{request.method} is not allowed on {request.url.path}" + (f"; use {allowed}" if allowed else "")
        elif exc.status_code == 400 and "parsing the body" in message:
            message = "the request body is not valid JSON in UTF-8"
            denied = _unauthenticated(request) or _compressed(request)
            if denied is not None:
                return denied
        return error_response(request, ApiError(exc.status_code, message, headers=dict(exc.headers or {})))

    from sqlalchemy.exc import DBAPIError

    @app.exception_handler(DBAPIError)  # here, not only under Exception: Starlette re-raises those to uvicorn,
    async def store_error(request: Request, exc: Exception) -> JSONResponse:  # which logs a traceback per request
        return await crash(request, exc)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        rid = request.scope.get("flywheel.request_id", "")
        from flywheel.store.outage import store_outage

        lost = store_outage(exc)
        if lost is not None:  # PostgreSQL stopped or restarting: say so (one log line), serve again once back
            log.warning("request %s: the store is unavailable (%s)", rid, lost)
            return error_response(request, ApiError(
                503, f"the store is unavailable ({lost}); retry once it is back (request id {rid})",
                code="store_unavailable", headers={"Retry-After": "5"}))
        log.exception("request %s failed", rid)
        return error_response(request, ApiError(500, f"internal error (request id {rid}); see the server log",
                                                code="internal_error"))


class RequestMiddleware:
    """Request id, body size limit, access log and request metrics, as plain ASGI (no per-request task)."""

    def __init__(self, app: Any, state: ServerState):
        self.app, self.state = app, state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")
        if not _REQUEST_ID.match(rid):
            rid = f"{random.getrandbits(64):016x}"  # an id, not a secret: no urandom call per request
        scope["flywheel.request_id"] = rid
        status = [500]
        rid_headers = [(b"x-request-id", rid.encode())]
        if scope["path"].startswith("/v1/messages") or b"anthropic-version" in headers:
            rid_headers.append((b"request-id", rid.encode()))  # where the Anthropic SDKs read it (`_request_id`)

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", []), *rid_headers]
            await send(message)

        try:
            if scope["method"] in _BODY_METHODS:
                body = await self._read_body(headers, receive)
                if body is None:
                    await self._too_large(scope, send_with_id)
                    return
                receive = _replay(body, receive)
                if not scope["path"].startswith("/v1/traces"):  # `curl -d '{…}'` sends a form content-type
                    ctype = headers.get(b"content-type", b"")
                    if not ctype or ctype.startswith(b"application/x-www-form-urlencoded"):
                        scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"content-type"] + \
                            [(b"content-type", b"application/json")]
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, rid, status[0], time.perf_counter() - start)

    async def _read_body(self, headers: dict, receive: Any) -> bytes | None:
        limit = self.state.max_body_bytes
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return None
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def _too_large(self, scope: dict, send: Any) -> None:
        limit = self.state.max_body_bytes
        err = ApiError(413, f"the request body is larger than this server's limit of {limit / 2**20:g} MB ({limit} "
                            "bytes); send less, or the operator raises it with `flywheel serve --max-body-mb N` or "
                            "`server.max_body_mb` in flywheel.yaml", code="body_too_large")
        body = json.dumps(err.body(anthropic=scope["path"].startswith("/v1/messages"))).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    def _record(self, scope: dict, rid: str, status: int, seconds: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        metrics = self.state.metrics
        metrics.requests.labels(path, str(status)).inc()
        metrics.latency.labels(path).observe(seconds)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(json.dumps({
                "ts": round(time.time(), 3), "request_id": rid, "method": scope["method"], "path": scope["path"],
                "route": path, "status": status, "ms": round(seconds * 1000, 2),
                "client": (scope.get("client") or ("", 0))[0], "pid": os.getpid(),
            }))


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: disconnect notices for streaming responses

    return replay

"""The tools of an MCP server (Model Context Protocol) as flywheel tools, for the tool loop and workflow steps.

    from flywheel.gateway.mcp_tools import McpTools

    with McpTools(["python", "weather_server.py"], env={"API_KEY": key}) as weather:   # or McpTools(url=…)
        done = run_tools(gateway, ChatRequest.of("Weather in Paris?", model="small"), weather, max_steps=6)
        weather.call("get_forecast", {"city": "Paris"})       # or call one yourself

`McpTools` is a mapping name → `Tool` (gateway/tool_loop.py) whose schemas are the server's JSON Schemas, so it
goes wherever flywheel takes tools (`{**weather, "local": fn}` mixes them). The session lives on one background
event-loop thread shared by every connection, so sync and async callers use it alike and it is opened and
closed by the same task, as the SDK requires. Every start and call is bounded by `timeout_s`: a server that
does not start is a UserError (with the tail of its stderr); a call that errors, times out or finds the server
gone raises `McpToolError`, which the tool loop feeds back to the model as that call's result. Each call is a
`tool` span (the caller's tool span gets the `flywheel.mcp.*` attributes; outside one, a `tool.NAME` span is
opened), so arguments and results are traced and their secrets scrubbed like every other span.

Needs the `mcp` extra (the official SDK; 1.x and 2.x both work).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shlex
import sys
import tempfile
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

from flywheel.errors import UserError
from flywheel.gateway.tool_loop import Tool
from flywheel.text.install import pip_install
from flywheel.tracing import tracer

DEFAULT_TIMEOUT_S = 30.0  # per call
START_TIMEOUT_S = 60.0  # at least this long to start and list the tools (interpreters, npx downloads …)
_GRACE_S = 5.0  # beyond the call's own timeout, for the background loop to answer at all
_STDERR_TAIL = 600


class McpToolError(Exception):
    """An MCP tool answered with an error, did not answer in time, or its server is gone."""


@dataclass(frozen=True)
class McpServerSpec:
    """How to reach one MCP server: a stdio `command` (program and arguments) or a streamable-HTTP `url`."""

    command: tuple[str, ...] = ()
    url: str | None = None
    env: tuple[tuple[str, str], ...] = ()  # added to the SDK's safe default environment (PATH, HOME …)
    cwd: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def of(cls, command: str | Sequence[str] | None = None, *, url: str | None = None,
           env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None,
           headers: Mapping[str, str] | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> McpServerSpec:
        argv = tuple(shlex.split(command) if isinstance(command, str) else command or ())
        if bool(argv) == bool(url):
            raise UserError("an MCP server is either a `command` (stdio) or a `url` (streamable HTTP), not "
                            f"{'both' if url else 'neither'}",
                            hint="e.g. command: [python, server.py]  or  url: http://127.0.0.1:8000/mcp")
        if not isinstance(timeout_s, int | float) or isinstance(timeout_s, bool) or timeout_s <= 0:
            raise UserError(f"an MCP timeout is a number of seconds above 0, got {timeout_s!r}", hint="timeout: 30")
        return cls(argv, url, tuple(sorted((str(k), str(v)) for k, v in (env or {}).items())),
                   str(cwd) if cwd is not None else None,
                   tuple(sorted((str(k), str(v)) for k, v in (headers or {}).items())), float(timeout_s))

    @property
    def label(self) -> str:
        """What to call the server in messages and spans: never its environment, headers or URL credentials."""
        if self.url:
            parts = urlsplit(self.url)
            return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
        return shlex.join(self.command)


# ------------------------------------------------------------------ the one background event loop

_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="flywheel-mcp", daemon=True).start()
        return _loop


def _sdk() -> Any:
    try:
        import mcp
    except ImportError:
        raise UserError("MCP tools need the official MCP SDK, which is not installed", hint=f"{pip_install('mcp')} (the official MCP SDK)") from None
    return mcp


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside the SDK's (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _describe(exc: BaseException) -> str:
    exc = _leaf(exc)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ------------------------------------------------------------------ one connection

class McpTools(Mapping[str, Tool]):
    """A connected MCP server: its tools by name (`Tool`s for `run_tools`), `call()`, `close()`."""

    def __init__(self, command: str | Sequence[str] | None = None, *, url: str | None = None,
                 env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None,
                 headers: Mapping[str, str] | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 name: str | None = None, where: str | None = None, spec: McpServerSpec | None = None):
        _sdk()
        self.spec = spec or McpServerSpec.of(command, url=url, env=env, cwd=cwd, headers=headers,
                                             timeout_s=timeout_s)
        self.name = name or self.spec.label
        self._loop = _background_loop()
        self._stop = asyncio.Event()
        self._session: Any = None
        self._gone: str | None = None
        # the server's stderr, for the error message when it does not start (closed in close())
        self._stderr = (tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
                        if self.spec.command else None)
        self._tools: dict[str, Tool] = {}
        self._wrapped: set[str] = set()  # tools whose structured result is the SDK's {"result": value} wrapper
        self._owner: Future | None = None
        self._open(where)
        _OPEN.add(self)

    # -- lifecycle
    def _open(self, where: str | None) -> None:
        ready: Future = Future()
        self._owner = asyncio.run_coroutine_threadsafe(self._run(ready), self._loop)
        hint = ("check that the command starts an MCP server on stdio (run it by hand to see its errors)"
                if self.spec.command else "check that the URL is the server's streamable-HTTP endpoint (often …/mcp)")
        try:
            listed = ready.result(timeout=self.start_timeout_s + _GRACE_S)
        except BaseException as exc:  # noqa: BLE001 - every failure to start is the user's to see, then re-raised
            tail = self._stderr_tail()
            self.close()
            leaf = _leaf(exc)
            if isinstance(leaf, TimeoutError):
                raise UserError(f"MCP server `{self.name}` did not answer within {self.start_timeout_s:g} s{tail}",
                                where=where, hint=hint) from None
            if isinstance(leaf, FileNotFoundError) and self.spec.command:
                raise UserError(f"MCP server command `{self.spec.command[0]}` was not found", where=where,
                                hint="install it or give its full path (the command runs without a shell)") from None
            raise UserError(f"MCP server `{self.name}` did not start: {_describe(exc)}{tail}",
                            where=where, hint=hint) from None
        for entry in listed:
            self._add(entry, where)

    async def _run(self, ready: Future) -> None:
        """Owns the transport and the session from start to close (the SDK's task groups need one task)."""
        from mcp import ClientSession

        try:
            async with AsyncExitStack() as stack:
                streams = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(ClientSession(streams[0], streams[1]))
                listed = await asyncio.wait_for(_start(session), self.start_timeout_s)
                self._session = session
                ready.set_result(listed)
                await self._stop.wait()
        except BaseException as exc:  # noqa: BLE001 - reported to the opener, or kept for later calls
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(_describe(exc)))
            else:
                self._gone = _describe(exc)
        finally:
            self._session = None
            self._gone = self._gone or "closed"

    def _transport(self) -> Any:
        from mcp import StdioServerParameters, stdio_client

        if self.spec.command:
            params = StdioServerParameters(command=self.spec.command[0], args=list(self.spec.command[1:]),
                                           env=dict(self.spec.env) or None, cwd=self.spec.cwd)
            return stdio_client(params, errlog=self._stderr or sys.stderr)
        from mcp.client import streamable_http as http

        headers = dict(self.spec.headers) or None
        if hasattr(http, "streamable_http_client"):  # mcp ≥ 1.24: headers go on the HTTP client
            from mcp.shared._httpx_utils import create_mcp_http_client

            return _owned_client(http.streamable_http_client, self.spec.url, create_mcp_http_client(headers=headers))
        return http.streamablehttp_client(self.spec.url, headers=headers)  # type: ignore[attr-defined]  # mcp 1.x

    def close(self) -> None:
        """End the session and stop the server (idempotent)."""
        if self._owner is not None and not self._owner.done():
            self._loop.call_soon_threadsafe(self._stop.set)
            try:
                self._owner.result(timeout=self.spec.timeout_s + _GRACE_S)
            except Exception:  # noqa: BLE001, S110 - closing must not raise; the SDK kills a server that hangs
                pass
        if self._stderr is not None and not self._stderr.closed:
            self._stderr.close()
        _OPEN.discard(self)

    @property
    def start_timeout_s(self) -> float:
        return max(self.spec.timeout_s, START_TIMEOUT_S)

    @property
    def alive(self) -> bool:
        return self._session is not None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stderr_tail(self) -> str:
        if self._stderr is None or self._stderr.closed:
            return ""
        try:
            self._stderr.flush()
            self._stderr.seek(0)
            text = self._stderr.read().strip()
        except (OSError, ValueError):
            return ""
        return f" (its stderr: …{text[-_STDERR_TAIL:]})" if len(text) > _STDERR_TAIL else (
            f" (its stderr: {text})" if text else "")

    # -- tools
    def _add(self, entry: dict[str, Any], where: str | None) -> None:
        name = str(entry.get("name") or "")
        schema = entry.get("inputSchema") or {"type": "object", "properties": {}}
        output = entry.get("outputSchema") or {}
        if set(output.get("properties") or {}) == {"result"} and output.get("required") == ["result"]:
            self._wrapped.add(name)
        try:
            self._tools[name] = Tool(lambda **arguments: self.call(name, arguments), name=name,
                                     description=entry.get("description") or "", schema=schema)
        except Exception as exc:  # noqa: BLE001 - jsonschema's SchemaError, raised while describing the server
            raise UserError(f"tool '{name}' of MCP server `{self.name}` has an invalid input schema: "
                            f"{getattr(exc, 'message', exc)}", where=where,
                            hint="fix the server's tool definition") from None

    def __getitem__(self, name: str) -> Tool:
        return self._tools[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    __eq__ = object.__eq__  # a connection is itself, not the tools it lists (and it is kept in sets)
    __hash__ = object.__hash__

    def call(self, tool: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Run one tool: its structured result when it has one, else its text. Raises McpToolError."""
        args = dict(arguments or {})
        attrs = {"flywheel.mcp.server": self.name, "flywheel.mcp.tool": tool}
        current = tracer.current()
        if current is not None and current.kind == "tool":  # the tool loop's or a workflow step's span
            current.set(**attrs)
            return self._call(tool, args)
        with tracer.span(f"tool.{tool}", "tool", args, **attrs) as sp:
            value = self._call(tool, args)
            sp.set(outputs=value)
            return value

    def _call(self, tool: str, args: dict[str, Any]) -> Any:
        session = self._session
        if session is None:
            raise McpToolError(f"MCP server `{self.name}` is not running ({self._gone or 'not started'})")
        timeout = self.spec.timeout_s
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(session.call_tool(tool, args), timeout),
                                                  self._loop)
        try:
            result = future.result(timeout=timeout + _GRACE_S)
        except TimeoutError:
            future.cancel()
            raise McpToolError(f"tool '{tool}' of MCP server `{self.name}` did not answer within {timeout:g} s") \
                from None
        except Exception as exc:  # noqa: BLE001 - protocol errors (unknown tool, bad params), a dead server
            gone = "" if self.alive else " (the server has stopped)"
            raise McpToolError(f"MCP server `{self.name}` failed on tool '{tool}': {_describe(exc)}{gone}") from None
        data = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        blocks = data.get("content") or []
        text = "\n".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        if data.get("isError"):
            raise McpToolError(text or f"tool '{tool}' reported an error")
        structured = data.get("structuredContent")
        if structured is not None:
            if tool in self._wrapped and isinstance(structured, dict) and set(structured) == {"result"}:
                return structured["result"]
            return structured
        if all(b.get("type") == "text" for b in blocks):
            return _json_or_text(text) if len(blocks) == 1 else text
        return blocks  # images, audio, resources: as the server sent them


def _json_or_text(text: str) -> Any:
    """A JSON object or list sent as text (servers without output schemas send dicts so) as that value."""
    if text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


async def _start(session: Any) -> list[dict[str, Any]]:
    """Initialize, then every tool the server lists (following pagination), as wire-shaped dicts (camelCase on
    both SDKs)."""
    await session.initialize()
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        if cursor is None:
            page = await session.list_tools()
        else:
            from mcp import types

            try:
                page = await session.list_tools(params=types.PaginatedRequestParams(cursor=cursor))
            except TypeError:  # mcp 1.x before `params=`
                page = await session.list_tools(cursor)
        out += [t.model_dump(by_alias=True, mode="json", exclude_none=True) for t in page.tools]
        cursor = getattr(page, "next_cursor", None) or getattr(page, "nextCursor", None)
        if not cursor:
            return out


def _owned_client(connect: Any, url: str | None, client: Any) -> Any:
    """`connect(url, http_client=client)` that also closes the client it was given."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def run() -> Any:
        async with client, connect(url, http_client=client) as streams:
            yield streams

    return run()


# ------------------------------------------------------------------ connections shared by workflows

_OPEN: weakref.WeakSet[McpTools] = weakref.WeakSet()
_shared: dict[McpServerSpec, McpTools] = {}
_shared_lock = threading.Lock()


def shared_tools(spec: McpServerSpec, *, name: str | None = None, where: str | None = None) -> McpTools:
    """One open connection per server spec for the whole process (workflow files name servers; loading a file
    twice, or a file and then its run, reuses it); reopened when its server has stopped. Closed at exit."""
    with _shared_lock:
        found = _shared.get(spec)
        if found is None or not found.alive:
            found = _shared[spec] = McpTools(spec=spec, name=name, where=where)
        return found


def close_all() -> None:
    """Close every MCP connection still open (run at interpreter exit)."""
    for conn in list(_OPEN):
        conn.close()
    _shared.clear()


atexit.register(close_all)

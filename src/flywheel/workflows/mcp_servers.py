"""MCP servers under a workflow's `tools:`: every tool the server lists becomes a workflow tool of that name.

    tools:
      weather:                                   # the server's name: `tool: weather` offers all its tools
        mcp: {command: [python, weather_server.py], env: {API_KEY: "${WEATHER_KEY}"}, timeout: 20}
      docs:
        mcp: {url: "http://127.0.0.1:8000/mcp", headers: {Authorization: "Bearer ${DOCS_TOKEN}"}}
    steps:
      - id: forecast
        tool: get_forecast                       # one of the server's tools, by its own name
        args: {city: "{{inputs.city}}"}

The server is started (or reached) when the file loads, so an unknown tool name, a command that does not exist
or a server that does not answer is an error at the file's line before anything runs. The connection is shared
by every workflow that names the same server and closed when the process exits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flywheel.config import interpolate, where
from flywheel.errors import ConfigError, UserError
from flywheel.gateway.mcp_tools import DEFAULT_TIMEOUT_S, McpServerSpec, McpTools, shared_tools
from flywheel.workflows.tools import Tool

MCP_FIELDS = ("command", "url", "env", "cwd", "headers", "timeout")


def workflow_tools(server: McpTools) -> dict[str, Tool]:
    """The tools of a connected server as workflow tools (for `Workflow(tools=…)` in Python)."""
    return {name: Tool(name, t, t.schema, t.description) for name, t in server.items()}


def mcp_server_tools(name: str, raw: Any, path: Path, lines: dict, root: Path) -> dict[str, Tool]:
    """The tools of the MCP server declared as `tools: {NAME: {mcp: RAW}}` in workflow file `path`."""

    def at(*keys: Any) -> str:
        return where(path, lines, keys)

    here = at("tools", name, "mcp")
    if not isinstance(raw, dict):
        raise ConfigError(f"`mcp:` of tool '{name}' must be a mapping with `command:` or `url:`", where=here,
                          hint="e.g. mcp: {command: [python, server.py]}  or  mcp: {url: http://127.0.0.1:8000/mcp}")
    for key in raw:
        if key not in MCP_FIELDS:
            from flywheel.registry import did_you_mean

            close = did_you_mean(str(key), MCP_FIELDS)
            raise ConfigError(f"unknown field `{key}` in the MCP server '{name}'", where=at("tools", name, "mcp", key),
                              hint=(f"did you mean `{close[0]}`? " if close else "")
                              + f"valid fields: {', '.join(MCP_FIELDS)}")
    command = raw.get("command")
    if command is not None and not (isinstance(command, str) and command.strip() or isinstance(command, list)
                                    and command and all(isinstance(c, str | int | float) for c in command)):
        raise ConfigError("`command:` is the server's program and arguments, a list of strings",
                          where=at("tools", name, "mcp", "command"), hint="e.g. command: [python, server.py]")
    for key in ("env", "headers"):
        if raw.get(key) is not None and not isinstance(raw[key], dict):
            raise ConfigError(f"`{key}:` of the MCP server '{name}' must be a mapping of name → value",
                              where=at("tools", name, "mcp", key))
    raw = interpolate(raw, path, lines, ("tools", name, "mcp"))  # ${VAR}: secrets stay out of the file
    cwd = raw.get("cwd")
    spec = McpServerSpec.of([str(c) for c in command] if isinstance(command, list) else command,
                            url=raw.get("url"), env=raw.get("env"), headers=raw.get("headers"),
                            cwd=str((root / str(cwd)).resolve()) if cwd is not None else str(root.resolve()),
                            timeout_s=_timeout(raw.get("timeout", DEFAULT_TIMEOUT_S), at("tools", name, "mcp")))
    try:
        server = shared_tools(spec, name=name, where=here)
    except ConfigError:
        raise
    except UserError as exc:  # a UserError without the ConfigError type: keep its text and place
        raise ConfigError(exc.message, where=exc.where or here, hint=exc.hint) from None

    def runner(tool: str) -> Any:
        # looked up per call: a server that stopped is started again on the next call
        return lambda **arguments: shared_tools(spec, name=name, where=here).call(tool, arguments)

    return {t: Tool(t, runner(t), server[t].schema, server[t].description) for t in server}


def _timeout(value: Any, here: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"`timeout:` of an MCP server is a number of seconds above 0, got {value!r}", where=here,
                          hint="timeout: 30")
    return float(value)


def expand_servers(names: Any, servers: dict[str, list[str]]) -> Any:
    """A step's `tool:` / `tools:` with each MCP server name replaced by the names of its tools."""
    if isinstance(names, list):
        return [t for n in names for t in (servers.get(n) or [n])]
    if isinstance(names, str) and names in servers:
        tools = servers[names]
        return tools[0] if len(tools) == 1 else list(tools)
    return names

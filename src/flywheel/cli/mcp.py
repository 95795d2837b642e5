"""`flywheel mcp`: the project as an MCP server (stdio, or streamable HTTP with --http PORT).

The tools and prompts are server/mcp_server.py's, shared with `/mcp` inside `flywheel serve`; here the caller is
whoever started the command, so `LocalGate` lets it act for any tenant and ask any app. Needs the `mcp` extra.
"""

from __future__ import annotations

from typing import Any

import anyio
import click

from flywheel.cli import main
from flywheel.server.mcp_server import INSTRUCTIONS, answer_result, sdk

__all__ = ["INSTRUCTIONS", "LocalGate", "build_server", "mcp_command", "serve_http"]


class LocalGate:
    """The caller started the command (or reached its port): any tenant, any app, no metering."""

    guard_stdout = True
    local = True

    def __init__(self, rt: Any):
        self.rt = rt
        self.apps: dict[str, Any] = {}

    def tenant(self, ctx: Any, requested: str | None) -> str:
        from flywheel.config import validate_tenant

        return validate_tenant(requested) if requested else "default"

    def attributes(self, ctx: Any) -> dict[str, Any]:
        return {}

    async def ask(self, ctx: Any, app: str, question: str, tenant: str) -> dict[str, Any]:
        from flywheel.cli.names import check_app

        if app not in self.apps:
            self.apps[app] = self.rt.app(check_app(self.rt.project, app, option="app"))
        answer = await anyio.to_thread.run_sync(lambda: self.apps[app].run(question, tenant=tenant))
        return answer_result(answer)


def build_server(rt: Any, *, name: str = "flywheel") -> Any:
    """The MCP server of the project opened as Runtime `rt` (flywheel.apps.runtime), for a local caller."""
    from flywheel.server.mcp_server import build_server as build

    return build(rt, LocalGate(rt), name=name)


@main.command("mcp")
@click.option("--http", "port", type=click.IntRange(1, 65535), default=None,
              help="Serve streamable HTTP on this port (path /mcp) instead of stdio.")
@click.option("--host", default="127.0.0.1", show_default=True, help="With --http: the address to listen on.")
@click.pass_obj
def mcp_command(state: Any, port: int | None, host: str) -> None:
    """Serve the project over MCP: `search` and `ask` tools and its prompts (stdio, or --http PORT)."""
    from flywheel.apps.runtime import Runtime

    sdk()  # before opening anything: a missing SDK is a one-line error
    with Runtime(state.project) as rt:
        server = build_server(rt)
        if port is None:
            server.run()
        else:
            serve_http(server, host, port)


def serve_http(server: Any, host: str, port: int) -> None:
    """The SDK's streamable-HTTP app on uvicorn, on a socket bound first: a port in use or an unknown host is
    one clear error (exit 2), not a uvicorn log line after the server has started."""
    import inspect

    import uvicorn

    from flywheel.cli.serve import bind

    sock = bind(host, port)
    if "host" in inspect.signature(server.streamable_http_app).parameters:  # mcp 2.x
        app = server.streamable_http_app(host=host)
    else:  # mcp 1.x: the host (which decides its DNS-rebinding protection) is a setting
        server.settings.host, server.settings.port = host, port
        app = server.streamable_http_app()
    click.secho(f"MCP server on http://{host}:{port}/mcp", err=True)
    with sock:
        uvicorn.Server(uvicorn.Config(app, log_level="info")).run(sockets=[sock])

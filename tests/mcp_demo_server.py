"""A tiny MCP server for the MCP tests, on the official SDK (mcp 1.x FastMCP or 2.x MCPServer).

    python tests/mcp_demo_server.py               # stdio
    python tests/mcp_demo_server.py --http PORT   # streamable HTTP on 127.0.0.1:PORT/mcp
"""

from __future__ import annotations

import os
import sys
import time

try:
    from mcp.server.mcpserver import MCPServer as Server  # mcp 2.x
except ImportError:
    from mcp.server.fastmcp import FastMCP as Server  # type: ignore[no-redef]  # mcp 1.x

server = Server("flywheel-demo")


@server.tool()
def get_weather(city: str, unit: str = "C") -> dict:
    """Current weather of a city."""
    return {"city": city, "temp": 21, "unit": unit}


@server.tool()
def shout(text: str) -> str:
    """The text in capitals."""
    return text.upper()


@server.tool()
def fail(reason: str) -> str:
    """Always fails, with the reason."""
    raise ValueError(f"cannot do it: {reason}")


@server.tool()
def env_value(name: str) -> str:
    """The value of an environment variable of the server process."""
    return os.environ.get(name, "")


@server.tool()
def stall(seconds: float) -> str:
    """Answers after `seconds`."""
    time.sleep(seconds)
    return "late"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        port = int(sys.argv[2])
        if hasattr(server, "settings") and hasattr(server.settings, "port"):  # mcp 1.x
            server.settings.port = port
            server.run("streamable-http")
        else:
            server.run("streamable-http", host="127.0.0.1", port=port)
    else:
        server.run()

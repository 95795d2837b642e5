"""`flywheel mcp`: the project as an MCP server (stdio, or streamable HTTP with --http PORT).

Tools: `search` (the ingested documents, per tenant, with metadata filters: passages with their sources) and
`ask` (an app answers, with [n] citations). Prompts: the project's prompt files (prompts/*.yaml), rendered
with the client's arguments; a prompt that takes `{{sources}}` gets the passages retrieved for its question.
Every call is traced like any other (`mcp.search` spans; `ask` records the app's own trace) and returns its
trace id, for feedback.

Needs the `mcp` extra (the official SDK, 1.x or 2.x).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any, Literal

import click

from flywheel.cli import main
from flywheel.errors import UserError

INSTRUCTIONS = ("Search this project's documents (`search`, returns passages with sources) or get an answer with "
                "numbered citations from one of its apps (`ask`).")


def _sdk() -> dict[str, Any]:
    """The server classes of the installed SDK: MCPServer (mcp 2.x) or FastMCP (mcp 1.x)."""
    try:
        from mcp.server.mcpserver import MCPServer as Server
        from mcp.server.mcpserver.exceptions import ToolError
        from mcp.server.mcpserver.prompts.base import AssistantMessage, Prompt, PromptArgument, UserMessage
    except ModuleNotFoundError:
        try:
            from mcp.server.fastmcp import FastMCP as Server  # type: ignore[no-redef,attr-defined]
            from mcp.server.fastmcp.exceptions import ToolError  # type: ignore[no-redef]
            from mcp.server.fastmcp.prompts.base import (  # type: ignore[no-redef]
                AssistantMessage,
                Prompt,
                PromptArgument,
                UserMessage,
            )
        except ModuleNotFoundError:
            raise UserError("`flywheel mcp` needs the official MCP SDK, which is not installed",
                            hint="pip install 'flywheel[mcp]'") from None
    return {"Server": Server, "ToolError": ToolError, "Prompt": Prompt, "PromptArgument": PromptArgument,
            "user": UserMessage, "assistant": AssistantMessage}


@contextlib.contextmanager
def _answering(sdk: dict[str, Any]) -> Iterator[None]:
    """Inside a tool: stray prints go to stderr (stdout carries the protocol), and a UserError reaches the
    client as the tool's error message (the SDK withholds the text of other exceptions)."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except UserError as exc:
        raise sdk["ToolError"](exc.render()) from None


def build_server(rt: Any, *, name: str = "flywheel") -> Any:
    """The MCP server of the project opened as Runtime `rt` (flywheel.apps.runtime)."""
    from flywheel.cli.app import answer_json
    from flywheel.cli.names import check_app
    from flywheel.tracing import tracer

    sdk = _sdk()
    server = sdk["Server"](name, instructions=INSTRUCTIONS)
    apps: dict[str, Any] = {}

    @server.tool()
    def search(query: str, k: int = 5, tenant: str = "default", filters: dict[str, Any] | None = None,
               mode: Literal["hybrid", "bm25", "dense"] = "hybrid") -> dict[str, Any]:
        """Search the project's ingested documents. Returns passages [{n, text, source, location, chunk_id,
        score}] best first (none when nothing is relevant enough), and the trace id."""
        with _answering(sdk), tracer.span("mcp.search", "retrieval", {"query": query, "k": k, "tenant": tenant,
                                                                       "filters": filters, "mode": mode},
                                          **{"flywheel.mcp.tool": "search", "flywheel.tenant": tenant}) as sp:
            hits = rt.retriever.search(query, k=k, tenant=tenant, filters=filters, mode=mode)
            passages = [{"n": n, "text": h.chunk.text, "source": h.chunk.source, "location": h.chunk.location,
                         "chunk_id": h.chunk.id, "score": round(float(h.score), 6)} for n, h in enumerate(hits, 1)]
            sp.set(outputs=[{"source": p["source"], "score": p["score"]} for p in passages])
            return {"passages": passages, "trace_id": sp.trace_id}

    @server.tool()
    def ask(question: str, app: str = "docs_qa", tenant: str | None = None) -> dict[str, Any]:
        """Answer a question with one of the project's apps (default docs_qa: from the ingested documents, with
        [n] citations). Returns {answer, citations, refused, refusal, trace_id}."""
        with _answering(sdk):
            if app not in apps:
                apps[app] = rt.app(check_app(rt.project, app))
            answer = apps[app].run(question, tenant=tenant)
            out = answer_json(answer)
            out.pop("cache", None)
            return out

    for prompt_name in _project_prompts(rt):
        server.add_prompt(_mcp_prompt(sdk, rt, prompt_name))
    return server


def _project_prompts(rt: Any) -> list[str]:
    from flywheel.prompts import PromptRegistry

    registry = PromptRegistry(rt.project.root, log_warnings=False)
    own = rt.project.root / "prompts"
    return sorted({registry.get(str(p)).name for p in registry.files() if p.parent == own})


def _mcp_prompt(sdk: dict[str, Any], rt: Any, name: str) -> Any:
    from flywheel.prompts import PromptRegistry
    from flywheel.prompts.render import placeholders

    prompt = PromptRegistry(rt.project.root, log_warnings=False).get(name)
    variables = prompt.variables()
    takes_sources = "sources" in placeholders(prompt.system + "\n" + prompt.template)
    arguments = [sdk["PromptArgument"](name=v, required=True) for v in variables]
    if takes_sources:
        arguments.append(sdk["PromptArgument"](name="tenant", description="whose documents (default: default)",
                                               required=False))

    def render(**values: str) -> list[Any]:
        with _answering(sdk):
            current = PromptRegistry(rt.project.root, log_warnings=False).get(name)  # the file as it is now
            tenant = values.pop("tenant", None) or "default"
            sources: list[dict[str, Any]] = []
            query = values.get("question") or values.get("query") or next(iter(values.values()), "")
            if takes_sources and query:
                sources = [{"text": h.chunk.text, "source": h.chunk.source, "location": h.chunk.location}
                           for h in rt.retriever.search(query, tenant=tenant)]
            rendered = current.render(sources=sources, **values)  # type: ignore[arg-type]  # variables are str
            turns = []
            for m in rendered.messages():  # MCP prompts have no system role: it opens the conversation as user
                make: Callable[..., Any] = sdk["assistant"] if m.role == "assistant" else sdk["user"]
                turns.append(make(m.content))
            return turns

    return sdk["Prompt"](name=name, description=prompt.description or f"the project's prompt {name}",
                         arguments=arguments, fn=render)


@main.command("mcp")
@click.option("--http", "port", type=click.IntRange(1, 65535), default=None,
              help="Serve streamable HTTP on this port (path /mcp) instead of stdio.")
@click.option("--host", default="127.0.0.1", show_default=True, help="With --http: the address to listen on.")
@click.pass_obj
def mcp_command(state: Any, port: int | None, host: str) -> None:
    """Serve the project over MCP: `search` and `ask` tools and its prompts (stdio, or --http PORT)."""
    from flywheel.apps.runtime import Runtime

    _sdk()  # before opening anything: a missing SDK is a one-line error
    with Runtime(state.project) as rt:
        server = build_server(rt)
        if port is None:
            server.run()
        elif hasattr(server, "settings") and hasattr(server.settings, "port"):  # mcp 1.x: host/port are settings
            server.settings.host, server.settings.port = host, port
            server.run("streamable-http")
        else:
            click.secho(f"MCP server on http://{host}:{port}/mcp", err=True)
            server.run("streamable-http", host=host, port=port)

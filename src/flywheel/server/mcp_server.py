"""The project as an MCP server: the `search` and `ask` tools and the project's prompts, built once for both ways
it is served — `flywheel mcp` (stdio or its own HTTP port, cli/mcp.py) and `/mcp` inside `flywheel serve`
(server/mcp_mount.py).

What differs between the two is who the caller is, so it sits behind a `Gate`: the local gate trusts whoever
started the command (any tenant, any app); the key gate of `flywheel serve` takes the tenant from the caller's
flywheel key, lets it `ask` only its apps, and meters `ask` against its rate limits and budget.

Tools: `search` (the ingested documents, per tenant, with metadata filters: passages with their sources) and
`ask` (an app answers, with [n] citations). Prompts: the project's prompt files (prompts/*.yaml), rendered with
the client's arguments; a prompt that takes `{{sources}}` gets the passages retrieved for its question. Every
call is one trace tagged with its tenant (`mcp.search` spans; `ask` records the app's trace) and returns its
trace id, for feedback. Needs the `mcp` extra (the official SDK, 1.x or 2.x).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal, Protocol

import anyio
from pydantic import Field

from flywheel.errors import UserError
from flywheel.server.errors import ApiError
from flywheel.text.install import pip_install
from flywheel.types import Answer

MAX_K = 1000  # as `flywheel search --k`
INSTRUCTIONS = ("Search this project's documents (`search`, returns passages with sources) or get an answer with "
                "numbered citations from one of its apps (`ask`).")


class Gate(Protocol):
    """Who may do what. `ctx` is the SDK's request Context (None where the SDK passes none). Methods raise
    UserError or ApiError; the client gets the message as the tool's error."""

    guard_stdout: bool  # stdout carries the protocol (stdio): stray prints go to stderr
    local: bool  # the caller started the server: messages may name the project's folder on this machine

    def tenant(self, ctx: Any, requested: str | None) -> str:
        """The tenant a call acts for (`requested`: the tool's `tenant` argument)."""
        ...

    def attributes(self, ctx: Any) -> dict[str, Any]:
        """Span attributes naming the caller (its key)."""
        ...

    async def ask(self, ctx: Any, app: str, question: str, tenant: str) -> dict[str, Any]:
        """`app`'s answer to `question` as the `ask` tool returns it (`answer_result`)."""
        ...


def sdk() -> dict[str, Any]:
    """The server classes of the installed SDK: MCPServer (mcp 2.x) or FastMCP (mcp 1.x)."""
    try:
        from mcp.server.mcpserver import Context
        from mcp.server.mcpserver import MCPServer as Server
        from mcp.server.mcpserver.exceptions import ToolError
        from mcp.server.mcpserver.prompts.base import AssistantMessage, Prompt, PromptArgument, UserMessage
    except ModuleNotFoundError:
        try:
            from mcp.server.fastmcp import Context  # type: ignore[no-redef,attr-defined]
            from mcp.server.fastmcp import FastMCP as Server  # type: ignore[no-redef,attr-defined]
            from mcp.server.fastmcp.exceptions import ToolError  # type: ignore[no-redef]
            from mcp.server.fastmcp.prompts.base import (  # type: ignore[no-redef]
                AssistantMessage,
                Prompt,
                PromptArgument,
                UserMessage,
            )
        except ModuleNotFoundError:
            raise UserError("serving MCP needs the official MCP SDK, which is not installed",
                            hint=pip_install("mcp")) from None
    return {"Server": Server, "Context": Context, "ToolError": ToolError, "Prompt": Prompt,
            "PromptArgument": PromptArgument, "user": UserMessage, "assistant": AssistantMessage}


def answer_result(answer: Answer) -> dict[str, Any]:
    """What the `ask` tool returns."""
    return {"answer": answer.text,
            "citations": [{"id": c.id, "source": c.source, "location": c.location, "chunk_id": c.chunk_id,
                           "text": c.text} for c in answer.citations],
            "trace_id": answer.trace_id, "refused": answer.refused, "refusal": answer.refusal}


@contextlib.contextmanager
def _answering(sdk: dict[str, Any], gate: Gate) -> Iterator[None]:
    """Inside a tool: a flywheel error reaches the client as the tool's error message (the SDK withholds the text
    of other exceptions); with `gate.guard_stdout`, stray prints go to stderr."""
    try:
        with contextlib.redirect_stdout(sys.stderr) if gate.guard_stdout else contextlib.nullcontext():
            yield
    except UserError as exc:
        raise sdk["ToolError"](exc.render()) from None
    except ApiError as exc:
        raise sdk["ToolError"](exc.message) from None


def empty_note(rt: Any, tenant: str, query: str | None = None, mode: str = "hybrid", *,
               local: bool = True) -> str | None:
    """Why a search found nothing, when the reason is not "nothing relevant" (which a client would assume): the
    tenant has no documents at all (a server started on the wrong `--project` looks exactly like it), or a dense
    search in a language the embedder does not cover. `local`: name the project's folder (not to remote callers)."""
    if rt.retriever.count(tenant):
        if mode == "dense" and query is not None:
            return rt.retriever.language_gap(query, switch="use mode hybrid or bm25")
        return None
    where = "" if tenant == "default" else f" --tenant {tenant}"
    project = f" in the project at {rt.project.root}" if local else ""
    return f"tenant '{tenant}' has no documents yet{project}: ingest some with `flywheel ingest PATH{where}`"


def _takes_context(sdk: dict[str, Any], fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` with its `ctx` parameter annotated as the SDK's Context, which is how the SDK knows to pass it."""
    fn.__annotations__["ctx"] = sdk["Context"]
    return fn


def build_server(rt: Any, gate: Gate, *, name: str = "flywheel") -> Any:
    """The MCP server of the project opened as Runtime `rt` (flywheel.apps.runtime), its callers judged by `gate`."""
    from flywheel.tracing import tracer

    kit = sdk()
    server = kit["Server"](name, instructions=INSTRUCTIONS)

    def run_search(query: str, k: int, tenant: str, filters: dict[str, Any] | None, mode: str,
                   attributes: dict[str, Any]) -> dict[str, Any]:
        with tracer.span("mcp.search", "retrieval", {"query": query, "k": k, "tenant": tenant, "filters": filters,
                                                     "mode": mode},
                         **{"flywheel.mcp.tool": "search", "flywheel.tenant": tenant, **attributes}) as sp:
            hits = rt.retriever.search(query, k=k, tenant=tenant, filters=filters, mode=mode)
            passages = [{"n": n, "text": h.chunk.text, "source": h.chunk.source, "location": h.chunk.location,
                         "chunk_id": h.chunk.id, "score": round(float(h.score), 6)} for n, h in enumerate(hits, 1)]
            sp.set(outputs=[{"source": p["source"], "score": p["score"]} for p in passages])
            out: dict[str, Any] = {"passages": passages, "trace_id": sp.trace_id}
            if not passages and (note := empty_note(rt, tenant, query, mode, local=gate.local)):
                out["note"] = note
            return out

    async def search(query: Annotated[str, Field(description="what to look for, in any language")],
                     k: Annotated[int, Field(ge=1, le=MAX_K, description="passages to return at most")] = 5,
                     tenant: Annotated[str | None, Field(description="whose documents")] = None,
                     filters: Annotated[dict[str, Any] | None, Field(description="metadata field → value")] = None,
                     mode: Literal["hybrid", "bm25", "dense"] = "hybrid", ctx: Any = None) -> dict[str, Any]:
        """Search the project's ingested documents (tenant: whose documents; default: the caller's, or
        "default"). Returns passages [{n, text, source, location, chunk_id, score}] best first (none when nothing
        is relevant enough; then `note` says when that is because the tenant has no documents at all, or because
        dense search cannot match the query's language), and the trace id."""
        with _answering(kit, gate):
            if not query.strip():
                raise UserError("the query is empty", hint="pass the words to look for in `query`")
            who = gate.tenant(ctx, tenant)
            # the retriever is synchronous; the thread keeps the event loop free (and copies the context)
            return await anyio.to_thread.run_sync(run_search, query, k, who, filters, mode, gate.attributes(ctx))

    async def ask(question: Annotated[str, Field(description="the question, in any language")],
                  app: Annotated[str, Field(description="which of the project's apps answers")] = "docs_qa",
                  tenant: Annotated[str | None, Field(description="whose documents")] = None,
                  ctx: Any = None) -> dict[str, Any]:
        """Answer a question with one of the project's apps (default docs_qa: from the ingested documents, with
        [n] citations). Returns {answer, citations, refused, refusal, trace_id}; a refusal because the tenant
        has no documents at all also has a `note` saying so."""
        with _answering(kit, gate):
            who = gate.tenant(ctx, tenant)
            out = await gate.ask(ctx, app, question, who)
            if out.get("refusal") == "no_passage":
                note = await anyio.to_thread.run_sync(lambda: empty_note(rt, who, local=gate.local))
                if note:
                    out["note"] = note
            return out

    server.tool()(_takes_context(kit, search))
    server.tool()(_takes_context(kit, ask))
    for prompt_name in _project_prompts(rt):
        server.add_prompt(_mcp_prompt(kit, rt, gate, prompt_name))
    return server


def _project_prompts(rt: Any) -> list[str]:
    from flywheel.prompts import PromptRegistry

    registry = PromptRegistry(rt.project.root, log_warnings=False)
    own = rt.project.root / "prompts"
    return sorted({registry.get(str(p)).name for p in registry.files() if p.parent == own})


def _mcp_prompt(kit: dict[str, Any], rt: Any, gate: Gate, name: str) -> Any:
    from flywheel.prompts import PromptRegistry
    from flywheel.prompts.render import placeholders

    prompt = PromptRegistry(rt.project.root, log_warnings=False).get(name)
    variables = prompt.variables()
    takes_sources = "sources" in placeholders(prompt.system + "\n" + prompt.template)
    arguments = [kit["PromptArgument"](name=v, required=True) for v in variables]
    if takes_sources:
        arguments.append(kit["PromptArgument"](name="tenant", required=False,
                                               description="whose documents (default: the caller's, or default)"))

    def retrieve(query: str, tenant: str) -> list[dict[str, Any]]:
        return [{"text": h.chunk.text, "source": h.chunk.source, "location": h.chunk.location}
                for h in rt.retriever.search(query, tenant=tenant)]

    async def render(ctx: Any = None, **values: str) -> list[Any]:
        with _answering(kit, gate):
            current = PromptRegistry(rt.project.root, log_warnings=False).get(name)  # the file as it is now
            requested = values.pop("tenant", None) or None
            sources: list[dict[str, Any]] = []
            query = values.get("question") or values.get("query") or next(iter(values.values()), "")
            if takes_sources and query:
                sources = await anyio.to_thread.run_sync(retrieve, query, gate.tenant(ctx, requested))
            rendered = current.render(sources=sources, **values)  # type: ignore[arg-type]  # variables are str
            turns = []
            for m in rendered.messages():  # MCP prompts have no system role: it opens the conversation as user
                make: Callable[..., Any] = kit["assistant"] if m.role == "assistant" else kit["user"]
                turns.append(make(m.content))
            return turns

    _takes_context(kit, render)
    options: dict[str, Any] = {}
    if "context_kwarg" in getattr(kit["Prompt"], "model_fields", {}):  # SDKs that pass the request to prompts
        options["context_kwarg"] = "ctx"
    return kit["Prompt"](name=name, description=prompt.description or f"the project's prompt {name}",
                         arguments=arguments, fn=render, **options)

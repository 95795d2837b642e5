"""Tool calling in both wire shapes: flywheel speaks OpenAI's (`ChatRequest.tools`, `tool_calls` on messages and
results, `role: "tool"` answers); these functions translate to and from Anthropic's Messages API, for the
Anthropic provider (OpenAI → Anthropic requests, Anthropic → OpenAI answers) and the server's `/v1/messages`
route (the other way round).

    OpenAI                                               Anthropic
    tools [{type: function, function: {name, description, parameters}}]   tools [{name, description, input_schema}]
    tool_choice auto | none | required | {type: function, function: {name}}   {type: auto | none | any | tool, name}
    assistant tool_calls [{id, function: {name, arguments: "<json>"}}]      tool_use blocks {id, name, input: {…}}
    {role: tool, tool_call_id, content}                   user turn with tool_result blocks {tool_use_id, content}
    finish_reason "tool_calls"                            stop_reason "tool_use"
"""

from __future__ import annotations

import json
from typing import Any

from flywheel.errors import UserError
from flywheel.types import Message

_EMPTY_SCHEMA = {"type": "object", "properties": {}}


class ToolFormatError(UserError):
    """A tool, tool choice or tool message that cannot be translated; `param` names the offending field."""

    def __init__(self, message: str, param: str):
        super().__init__(message, hint="see docs/gateway.md, section Tools")
        self.param = param


# ------------------------------------------------------------------ OpenAI → Anthropic (requests)

def anthropic_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise ToolFormatError("a tool must be {type: function, function: {name, description?, parameters?}}",
                                  f"tools.{i}")
        entry: dict[str, Any] = {"name": fn["name"], "input_schema": fn.get("parameters") or _EMPTY_SCHEMA}
        if fn.get("description"):
            entry["description"] = fn["description"]
        out.append(entry)
    return out


def anthropic_tool_choice(choice: str | dict[str, Any] | None, parallel: bool | None = None) -> dict[str, Any] | None:
    if choice is None:
        kind: dict[str, Any] | None = None
    elif choice in ("auto", "none"):
        kind = {"type": choice}
    elif choice == "required":
        kind = {"type": "any"}
    elif isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        kind = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise ToolFormatError(f"tool_choice must be auto, none, required or {{type: function, function: {{name}}}}, "
                              f"got {choice!r}", "tool_choice")
    if parallel is False and (kind is None or kind["type"] != "none"):
        kind = {**(kind or {"type": "auto"}), "disable_parallel_tool_use": True}
    return kind


def tool_use_blocks(tool_calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI tool calls → Anthropic tool_use blocks (arguments decoded from their JSON string)."""
    blocks = []
    for call in tool_calls:
        fn = call.get("function") or {}
        args = fn.get("arguments") or "{}"
        try:
            data = json.loads(args) if isinstance(args, str) else args
        except ValueError:
            data = {"_raw": args}  # the model produced invalid JSON; keep it rather than lose it
        blocks.append({"type": "tool_use", "id": call.get("id") or "", "name": fn.get("name") or "",
                       "input": data if isinstance(data, dict) else {"value": data}})
    return blocks


def anthropic_messages(messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    """(system text, Messages-API turns). Tool results become user turns of tool_result blocks; consecutive turns
    of the same role are merged, since the API wants user and assistant to alternate."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            role, blocks = "user", [{"type": "tool_result", "tool_use_id": m.tool_call_id or "",
                                     "content": m.content}]
        elif m.role == "assistant" and m.tool_calls:
            role = "assistant"
            blocks = ([{"type": "text", "text": m.content}] if m.content else []) + tool_use_blocks(m.tool_calls)
        else:
            role, blocks = ("assistant" if m.role == "assistant" else "user"), None
        if turns and turns[-1]["role"] == role and (blocks is not None or isinstance(turns[-1]["content"], list)):
            prev = turns[-1]
            if isinstance(prev["content"], str):
                prev["content"] = [{"type": "text", "text": prev["content"]}] if prev["content"] else []
            prev["content"].extend(blocks if blocks is not None else [{"type": "text", "text": m.content}])
        else:
            turns.append({"role": role, "content": blocks if blocks is not None else m.content})
    return system, turns


# ------------------------------------------------------------------ Anthropic → OpenAI (answers and requests)

def tool_calls_of(blocks: list[Any]) -> list[dict[str, Any]] | None:
    """Anthropic tool_use blocks (dicts or SDK objects) → OpenAI tool calls; None when there are none."""
    calls = []
    for block in blocks:
        get = block.get if isinstance(block, dict) else (lambda k, b=block: getattr(b, k, None))
        if get("type") == "tool_use":
            calls.append({"id": get("id"), "type": "function",
                          "function": {"name": get("name"),
                                       "arguments": json.dumps(get("input") or {}, ensure_ascii=False)}})
    return calls or None


def openai_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        if tool.get("type") not in (None, "custom"):  # web_search_…, bash_…: Anthropic-defined tools
            raise ToolFormatError(f"tool type {tool.get('type')!r} is not supported: only custom tools "
                                  "{name, description?, input_schema} are", f"tools.{i}.type")
        if not isinstance(tool.get("name"), str):
            raise ToolFormatError("a tool must be {name, description?, input_schema}", f"tools.{i}.name")
        fn: dict[str, Any] = {"name": tool["name"], "parameters": tool.get("input_schema") or _EMPTY_SCHEMA}
        if tool.get("description"):
            fn["description"] = tool["description"]
        out.append({"type": "function", "function": fn})
    return out


def openai_tool_choice(choice: dict[str, Any] | None) -> tuple[str | dict[str, Any] | None, bool | None]:
    """(tool_choice, parallel_tool_calls) from an Anthropic tool_choice."""
    if choice is None:
        return None, None
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") else None
    if kind in ("auto", "none"):
        return kind, parallel
    if kind == "any":
        return "required", parallel
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}, parallel
    raise ToolFormatError(f"tool_choice.type must be auto, any, tool (with name) or none, got {kind!r}",
                          "tool_choice")


def openai_messages(role: str, content: str | list[dict[str, Any]], param: str) -> list[Message]:
    """One Anthropic turn → flywheel messages: text blocks joined; tool_use blocks → the assistant's tool_calls;
    each tool_result block → a `tool` message (before any text of the same turn, as OpenAI orders them)."""
    if isinstance(content, str):
        return [Message(role=role, content=content)]  # type: ignore[arg-type]
    texts: list[str] = []
    results: list[Message] = []
    for i, block in enumerate(content):
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use" and role == "assistant":
            pass  # collected below
        elif kind in ("thinking", "redacted_thinking") and role == "assistant":
            pass  # an earlier turn's reasoning, sent back by extended-thinking clients: not part of the answer
        elif kind == "tool_result" and role == "user":
            results.append(Message(role="tool", content=_result_text(block.get("content"), f"{param}.{i}.content"),
                                   tool_call_id=block.get("tool_use_id")))
        else:
            article = "an" if role == "assistant" else "a"
            raise ToolFormatError(f"content block type {kind!r} is not supported in {article} {role} turn "
                                  "(text, tool_use, tool_result)", f"{param}.{i}.type")
    out = results
    calls = tool_calls_of(content) if role == "assistant" else None
    if texts or calls or not results:
        out.append(Message(role=role, content="".join(texts), tool_calls=calls))  # type: ignore[arg-type]
    return out


def _result_text(content: Any, param: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for i, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise ToolFormatError("a tool_result's content must be text", f"{param}.{i}")
        parts.append(block.get("text") or "")
    return "".join(parts)


def merge_tool_deltas(calls: list[dict[str, Any]], pieces: list[dict[str, Any]]) -> None:
    """Fold streamed `delta.tool_calls` pieces (by `index`) into complete tool calls, in place."""
    for piece in pieces:
        index = piece.get("index", 0)
        while len(calls) <= index:
            calls.append({"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
        call = calls[index]
        if piece.get("id"):
            call["id"] = piece["id"]
        fn = piece.get("function") or {}
        if fn.get("name"):
            call["function"]["name"] = fn["name"]
        if fn.get("arguments"):
            call["function"]["arguments"] += fn["arguments"]

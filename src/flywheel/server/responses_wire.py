"""The OpenAI Responses API's shapes ↔ the gateway's chat shapes, for POST /v1/responses (responses_api.py).

    Responses                                                  gateway (OpenAI chat)
    instructions                                               a system message first
    input "text" | [{role, content}, {type: message, …}]       messages (text parts joined with a newline)
    {type: function_call, call_id, name, arguments}            the assistant turn's tool_calls (consecutive merged)
    {type: function_call_output, call_id, output}              {role: tool, tool_call_id, content}
    tools [{type: function, name, description, parameters}]    [{type: function, function: {name, …}}]
    tool_choice {type: function, name}                         {type: function, function: {name}}
    text.format {type: json_schema, name, schema, strict}      response_format {type: json_schema, json_schema: {…}}
    output: a `message` item (output_text) and/or `function_call` items; status `incomplete` when the
    answer was cut at max_output_tokens; first a `reasoning` item when the model thought before answering
    (ChatResult.reasoning: `{type: reasoning, id: rs_…, summary: [{type: summary_text, text}]}`)
    input {type: reasoning, …} (an earlier output sent back)   dropped: no model takes its earlier reasoning back

Anything else that cannot be translated (images, files, built-in tools such as web_search) is a 400 naming
the field, never silently dropped. `previous_response_id` puts the stored conversation
(responses_store.py) between `instructions` and `input`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flywheel.server.chat_wire import NullableFlag
from flywheel.server.errors import ApiError
from flywheel.types import Citation, Message

_EMPTY_SCHEMA = {"type": "object", "properties": {}}
_TEXT_PARTS = ("input_text", "output_text", "text")
CUT = ("length", "max_tokens")  # finish reasons that mean the answer hit max_output_tokens


class ResponsesIn(BaseModel):
    """The Responses API body. Parameters the gateway has no use for (top_p, reasoning, include …) are accepted
    and ignored, as for chat completions; ones that change what is answered and cannot be honoured
    (background, logprobs) are refused by `refuse_unsupported`."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    input: Any  # a string or a list of items, checked by `chat_messages` (so a bad item is named by index)
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    user: str | None = Field(default=None, max_length=256)
    stream: NullableFlag = False
    stream_options: dict[str, Any] | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    conversation: Any = None
    background: bool | None = None
    include: list[str] | None = None
    reasoning: dict[str, Any] | None = None
    truncation: Literal["auto", "disabled"] | None = None  # echoed; nothing is dropped (see docs/server.md)
    service_tier: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    top_logprobs: int | None = None
    max_tool_calls: int | None = None
    prompt: dict[str, Any] | None = None  # a prompt template stored on OpenAI's platform: null only (refused)


def refuse_unsupported(body: ResponsesIn) -> None:
    if body.top_logprobs or "message.output_text.logprobs" in (body.include or ()):
        raise ApiError(400, "logprobs are not supported on the Responses API here (chat completions relay them from "
                       "OpenAI-compatible aliases); send the request without them", param="top_logprobs" if body.top_logprobs else "include",
                       code="unsupported_parameter")
    if body.prompt is not None:
        raise ApiError(400, "prompt templates (`prompt`) live on OpenAI's platform, not here: send the text as "
                       "`instructions` and `input`", param="prompt", code="unsupported_parameter")
    if body.background:
        raise ApiError(400, "background responses are not supported; send the request without `background` "
                       "(use stream=true for long answers)", param="background", code="unsupported_parameter")


def _text(content: Any, param: str) -> str:
    """A message's content (a string or text parts) as one string: parts joined with a newline, as chat
    completions (openai_proxy.text_of) and the Messages API join them, so "Hello" + "world" is not "Helloworld"."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ApiError(400, "content must be a string or a list of input_text parts", param=param,
                       code="invalid_value")
    out = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
            out.append(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            out.append(part["refusal"])
        else:
            raise ApiError(400, f"content part type {kind!r} is not supported (text only: input_text, output_text)",
                           param=f"{param}.{i}.type", code="unsupported_content")
    return "\n".join(out)


def _string(item: dict[str, Any], key: str, param: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value and key != "arguments":
        raise ApiError(400, f"a {item.get('type')} item needs `{key}` (a string)", param=f"{param}.{key}",
                       code="invalid_value")
    return value


def chat_messages(body: ResponsesIn, history: list[Message] | None = None,
                  developer: list[int] | None = None) -> list[Message]:
    """`instructions` + `history` (a previous response's conversation) + `input` as gateway messages. A
    function_call item joins the assistant turn before it (so `[*earlier_input, *response.output,
    function_call_output]` round-trips); a function_call_output is a tool message. The indexes of the messages
    sent with the `developer` role (a system message for the gateway) are appended to `developer`."""
    msgs = [Message(role="system", content=body.instructions)] if body.instructions else []
    msgs += history or []
    if isinstance(body.input, str):
        return [*msgs, Message(role="user", content=body.input)]
    if not isinstance(body.input, list) or not body.input:
        raise ApiError(400, "input must be a string or a non-empty list of input items", param="input",
                       code="invalid_value")
    for i, item in enumerate(body.input):
        param = f"input.{i}"
        if not isinstance(item, dict):
            raise ApiError(400, "an input item must be an object", param=param, code="invalid_value")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise ApiError(400, f"role must be user, assistant, system or developer, got {role!r}",
                               param=f"{param}.role", code="invalid_value")
            text = _text(item.get("content"), f"{param}.content")
            if role == "developer" and developer is not None:
                developer.append(len(msgs))
            msgs.append(Message(role="system" if role == "developer" else role, content=text))
        elif kind == "function_call":
            call = {"id": _string(item, "call_id", param), "type": "function",
                    "function": {"name": _string(item, "name", param),
                                 "arguments": _string(item, "arguments", param) or "{}"}}
            last = msgs[-1] if msgs else None
            if last is not None and last.role == "assistant":
                msgs[-1] = last.model_copy(update={"tool_calls": [*(last.tool_calls or []), call]})
            else:
                msgs.append(Message(role="assistant", content="", tool_calls=[call]))
        elif kind == "reasoning":  # `[*response.output, …]` sent back: the thinking is not sent to the model again
            continue
        elif kind == "function_call_output":
            output = item.get("output")
            msgs.append(Message(role="tool", tool_call_id=_string(item, "call_id", param),
                                content=_text(output if output is not None else "", f"{param}.output")))
        else:
            raise ApiError(400, f"input item type {kind!r} is not supported (message, function_call, "
                           "function_call_output, reasoning, item_reference)", param=f"{param}.type", code="unsupported_content")
    if all(isinstance(i, dict) and i.get("type") == "reasoning" for i in body.input):
        raise ApiError(400, "input holds only reasoning items, which are not sent to the model again: add the "
                       "message to answer", param="input.0.type", code="invalid_value")
    return msgs


def chat_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Responses function tools → the gateway's OpenAI chat tools; a built-in tool is a 400 naming its type."""
    if not tools:
        return None
    out = []
    for i, tool in enumerate(tools):
        kind = tool.get("type")
        if kind != "function":
            raise ApiError(400, f"tool type {kind!r} is not supported: this server calls function tools only "
                           "({type: function, name, parameters}); built-in tools such as web_search or "
                           "file_search run on OpenAI's platform", param=f"tools.{i}.type", code="unsupported_tool")
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise ApiError(400, "a function tool needs a `name`", param=f"tools.{i}.name", code="invalid_value")
        if tool.get("parameters") is not None and not isinstance(tool["parameters"], dict):
            raise ApiError(400, "a function tool's `parameters` must be a JSON schema object",
                           param=f"tools.{i}.parameters", code="invalid_value")
        fn: dict[str, Any] = {"name": tool["name"], "parameters": tool.get("parameters") or _EMPTY_SCHEMA}
        if tool.get("description"):
            fn["description"] = tool["description"]
        if tool.get("strict") is not None:
            fn["strict"] = tool["strict"]
        out.append({"type": "function", "function": fn})
    return out


def chat_tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    kind = choice.get("type") if isinstance(choice, dict) else choice
    raise ApiError(400, f"tool_choice must be auto, none, required or {{type: function, name}}, got {kind!r}",
                   param="tool_choice", code="invalid_value")


def response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    """`text.format` → the gateway's response_format (None for plain text)."""
    fmt = (text or {}).get("format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        assert isinstance(fmt, dict)
        if not isinstance(fmt.get("name"), str) or not isinstance(fmt.get("schema"), dict):
            raise ApiError(400, "a json_schema format needs `name` (a string) and `schema` (an object)",
                           param="text.format", code="invalid_value")
        spec = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
        return {"type": "json_schema", "json_schema": spec}
    raise ApiError(400, f"text.format.type must be text, json_object or json_schema, got {kind!r}",
                   param="text.format.type", code="invalid_value")


# ------------------------------------------------------------------ answers → Responses output


def citation_notes(text: str, citations: list[Citation]) -> list[dict[str, Any]]:
    """An app's citations as file_citation annotations: file_id is the chunk id, filename the source, index where
    its `[n]` marker sits in the text (the end of the text when the marker is absent)."""
    out = []
    for c in citations:
        at = text.find(f"[{c.id}]")
        out.append({"type": "file_citation", "file_id": c.chunk_id, "filename": c.source,
                    "index": at if at >= 0 else len(text)})
    return out


def message_item(item_id: str, text: str, status: str, notes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": [text_part(text, notes)]}


def text_part(text: str, notes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": notes or [], "logprobs": []}


def call_item(rid: str, number: int, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    """The function_call output item of tool call `number` of response `rid` (its id names both, so an
    `item_reference` to it can be read back)."""
    return {"id": f"fc_{rid[5:]}_{number}", "type": "function_call", "status": status, "call_id": call_id, "name": name,
            "arguments": arguments}


def reasoning_item(rid: str, text: str, status: str = "completed") -> dict[str, Any]:
    """The reasoning output item of response `rid`: the model's thinking as one summary_text part (OpenAI's
    shape; the SDK reads it as ResponseReasoningItem)."""
    return {"id": f"rs_{rid[5:]}", "type": "reasoning", "summary": [summary_part(text)], "status": status}


def summary_part(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}


def output_items(rid: str, text: str, tool_calls: list[dict[str, Any]] | None, cut: bool,
                 notes: list[dict[str, Any]] | None = None, reasoning: str | None = None) -> list[dict[str, Any]]:
    """A whole answer as output items: a reasoning item when the model thought, the message (when there is text,
    or nothing else), then one function_call item per tool call."""
    items = [reasoning_item(rid, reasoning)] if reasoning else []
    if text or not tool_calls:
        items.append(message_item(f"msg_{rid[5:]}", text, "incomplete" if cut else "completed", notes))
    for i, call in enumerate(tool_calls or ()):
        fn = call.get("function") or {}
        items.append(call_item(rid, i, call.get("id") or f"call_{rid[5:]}_{i}", fn.get("name") or "",
                               fn.get("arguments") or "", "completed"))
    return items


def usage_json(input_tokens: int, output_tokens: int, cached_tokens: int = 0,
               reasoning_tokens: int = 0) -> dict[str, Any]:
    """The Responses usage object; `cached_tokens`: the part of the input served from the provider's prompt cache,
    `reasoning_tokens`: the part of the output a reasoning model spent thinking (kept with a stored response as
    [input, output, cached, reasoning]; older ones lack the last numbers)."""
    return {"input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": cached_tokens, "cache_write_tokens": 0},
            "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": input_tokens + output_tokens}


def settings(body: ResponsesIn, kept: bool) -> dict[str, Any]:
    """The request's settings a `response` object echoes (kept with the response, so a retrieve echoes them
    too); `store` says whether the response is kept (`kept`: asked for, and the server's traces keep content)."""
    out: dict[str, Any] = {k: getattr(body, k) for k in _ECHOED}
    out["store"] = kept
    return out


_ECHOED = ("model", "instructions", "max_output_tokens", "temperature", "top_p", "tools", "tool_choice", "text",
           "metadata", "user", "parallel_tool_calls", "previous_response_id", "truncation")


def response_object(rid: str, echo: dict[str, Any], *, status: str, output: list[dict[str, Any]],
                    usage: dict[str, Any] | None, created_at: int, extra: dict[str, Any] | None = None,
                    error: dict[str, Any] | None = None, completed_at: int | None = None) -> dict[str, Any]:
    """The `response` object, echoing the request's `settings` as OpenAI does; `flywheel` carries the trace id
    (and an app's citations, cache hit, cost). `completed_at` only on a completed one, as OpenAI."""
    incomplete = status == "incomplete"
    return {
        "id": rid, "object": "response", "created_at": created_at, "status": status,
        "completed_at": completed_at if status == "completed" else None,
        "background": False, "error": error,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": echo.get("instructions"), "max_output_tokens": echo.get("max_output_tokens"),
        "model": echo.get("model"), "output": output, "parallel_tool_calls": echo.get("parallel_tool_calls") is not False,
        "previous_response_id": echo.get("previous_response_id"), "reasoning": {"effort": None, "summary": None},
        "store": bool(echo.get("store")), "temperature": echo.get("temperature"), "top_p": echo.get("top_p"),
        "text": echo.get("text") or {"format": {"type": "text"}}, "tool_choice": echo.get("tool_choice") or "auto",
        "tools": echo.get("tools") or [], "truncation": echo.get("truncation") or "disabled", "usage": usage, "user": echo.get("user"),
        "metadata": echo.get("metadata") or {}, "flywheel": {"trace_id": rid[5:], **(extra or {})},
        **({"conversation": echo["conversation"]} if echo.get("conversation") else {}),
    }


def input_items(trace_id: str, messages: list[dict[str, Any]], developer: list[int] | None = None) -> list[dict[str, Any]]:
    """A response's `input` (as its trace keeps it: gateway messages) as Responses input items, in order, for
    GET /v1/responses/{id}/input_items: messages with input_text (output_text for the assistant) parts, an
    assistant turn's tool calls as function_call items, tool messages as function_call_output items. `developer`:
    the indexes of the messages sent with the `developer` role (kept as `system` for the gateway)."""
    items: list[dict[str, Any]] = []

    def add(item: dict[str, Any], prefix: str) -> None:
        items.append({"id": f"{prefix}_{trace_id}_in{len(items)}", **item})  # `_in`: apart from output ids

    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content") or ""
        if role == "tool":
            add({"type": "function_call_output", "call_id": m.get("tool_call_id") or "", "output": content,
                 "status": "completed"}, "fco")
            continue
        if role == "system" and i in (developer or ()):
            role = "developer"
        if content or not m.get("tool_calls"):
            part = text_part(content) if role == "assistant" else {"type": "input_text", "text": content}
            add({"type": "message", "role": role, "status": "completed", "content": [part]}, "msg")
        for call in m.get("tool_calls") or ():
            fn = call.get("function") or {}
            add({"type": "function_call", "call_id": call.get("id") or "", "name": fn.get("name") or "",
                 "arguments": fn.get("arguments") or "", "status": "completed"}, "fc")
    return items

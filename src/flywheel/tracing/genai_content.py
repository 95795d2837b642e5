"""Prompt and answer content of spans recorded by other instrumentations, in flywheel's span shape.

flywheel's model spans keep `inputs = {"messages": [{"role", "content"}, …]}` and `outputs` = the answer. Spans
received over OTLP carry their content in one of several conventions, read here in this order:

- OTel GenAI (current): `gen_ai.input.messages` / `gen_ai.output.messages` (JSON arrays of `{"role", "parts":
  [{"type": "text", "content"}]}`) and `gen_ai.system_instructions`, as span attributes or as the attributes of a
  `gen_ai.client.inference.operation.details` event (Pydantic AI's agent span: `pydantic_ai.all_messages`);
- OTel GenAI (event-based, e.g. `opentelemetry-instrumentation-openai-v2`): log records or span events named
  `gen_ai.system.message`, `gen_ai.user.message`, `gen_ai.assistant.message`, `gen_ai.tool.message` (body
  `{"content"}`) and `gen_ai.choice` (body `{"index", "finish_reason", "message": {"role", "content"}}`);
  older span events `gen_ai.content.prompt` / `gen_ai.content.completion` (attributes `gen_ai.prompt` /
  `gen_ai.completion`);
- OpenLLMetry: `gen_ai.prompt.N.role|content` / `gen_ai.completion.N.role|content`;
- OpenInference: `llm.input_messages.N.message.role|content` / `llm.output_messages.N.message.…` (or
  `…message.contents.M.message_content.text`; tool calls `…message.tool_calls.M.tool_call.function.name|arguments`,
  OpenLLMetry's `gen_ai.completion.N.tool_calls.M.name|arguments`, become OpenAI `tool_calls`);
- whole values: OpenInference's `input.value` / `output.value`, OpenLLMetry's `traceloop.entity.input|output`,
  Langfuse's `langfuse.observation.input|output`, MLflow's `mlflow.spanInputs|spanOutputs`, a tool span's
  `gen_ai.tool.call.arguments|result`, Pydantic AI's `final_result` (otlp_conventions.INPUT_VALUES /
  OUTPUT_VALUES); an OpenAI chat request (`{"model", "messages"}`) reads as its messages, a chat completion
  (`{"choices": [{"message"}]}`) as its answer messages;
- the Vercel AI SDK (`ai.operationId` set): `ai.prompt.messages` / `ai.response.text|toolCalls` of a provider call,
  `ai.prompt` / `ai.response.text|object` of the function around it, `ai.toolCall.args|result`, `ai.value(s)`.

Messages keep their own fields; a message given as `parts` gets a `content` with its text parts joined, its
`tool_call` parts as OpenAI `tool_calls`, and a message of `tool_call_response` parts becomes the `tool` message
answering them (`tool_call_id`, the response as `content`), so previews, exports and `flywheel promote` read it
like flywheel's own.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flywheel.tracing.otlp_conventions import INPUT_MESSAGES, INPUT_VALUES, OUTPUT_VALUES

_INDEXED = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(\w+)$")
_OI = re.compile(r"^llm\.(input|output)_messages\.(\d+)\.message\.(.+)$")
_OI_PART = re.compile(r"^contents\.(\d+)\.message_content\.(\w+)$")
# a tool call of an indexed message: OpenInference's `tool_calls.M.tool_call.{id, function.name, function.arguments}`,
# OpenLLMetry's `gen_ai.completion.N.tool_calls.M.{id, name, arguments}`
_INDEXED_CALL = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.tool_calls\.(\d+)\.(id|name|arguments)$")
_OI_CALL = re.compile(r"^tool_calls\.(\d+)\.tool_call\.(id|function\.name|function\.arguments)$")
_ROLE_EVENTS = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}
DETAILS_EVENT = "gen_ai.client.inference.operation.details"
# an event (log record or span event) as (name, attributes, body)
Event = tuple[str, dict[str, Any], Any]


def is_content_event(name: str) -> bool:
    return name in _ROLE_EVENTS or name in (DETAILS_EVENT, "gen_ai.choice", "gen_ai.content.prompt",
                                             "gen_ai.content.completion")


def _json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _text(content: Any) -> Any:
    """A message's content as text when it is text parts (OpenAI content parts or GenAI parts)."""
    if isinstance(content, list) and content and all(isinstance(p, dict) for p in content):
        texts = [p.get("content", p.get("text")) for p in content if p.get("type", "text") == "text"]
        if texts and all(isinstance(t, str) for t in texts):
            return "".join(texts)
    return content


def _as_text(value: Any) -> Any:
    return value if isinstance(value, str) or value is None else json.dumps(value, ensure_ascii=False)


def _from_parts(msg: dict[str, Any]) -> dict[str, Any]:
    """A GenAI `parts` message with OpenAI's fields added: `content`, `tool_calls`, or for tool results
    (`tool_call_response` parts: `response`, Pydantic AI's `result`) role `tool` and `tool_call_id`."""
    parts = [p for p in msg["parts"] if isinstance(p, dict)]
    text = _text(msg["parts"])
    msg["content"] = text if isinstance(text, str) else None
    calls = [{"id": p.get("id"), "type": "function",
              "function": {"name": p.get("name"), "arguments": _as_text(p.get("arguments")) or "{}"}}
             for p in parts if p.get("type") == "tool_call"]
    if calls:
        msg["tool_calls"] = calls
    responses = [p for p in parts if p.get("type") == "tool_call_response"]
    if responses and len(responses) == len(parts):
        msg["role"] = "tool"
        if len(responses) == 1 and responses[0].get("id") is not None:
            msg["tool_call_id"] = responses[0]["id"]
        msg["content"] = "\n".join(str(_as_text(p.get("response", p.get("result")))) for p in responses)
    return msg


def messages(value: Any) -> list[dict[str, Any]] | None:
    """A list of chat messages (GenAI parts form or role/content form), each with a `content`; else None."""
    value = _json(value)
    if not isinstance(value, list) or not value or not all(isinstance(m, dict) for m in value):
        return None
    out = []
    for m in value:
        msg = dict(m)
        if "content" not in msg and isinstance(msg.get("parts"), list):
            msg = _from_parts(msg)
        elif "content" in msg:
            msg["content"] = _text(msg["content"])
        out.append(msg)
    return out


def _system(value: Any, following: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The system instructions as a message, unless `following` (the input messages) already opens with it
    (OpenLIT sends the system prompt both ways)."""
    value = _json(value)
    text = _text(value) if isinstance(value, list) else value
    if not isinstance(text, str) or not text:
        return []
    if following and following[0].get("role") == "system" and following[0].get("content") == text:
        return []
    return [{"role": "system", "content": text}]


def _indexed(attrs: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
    found: dict[str, dict[int, dict[str, Any]]] = {"prompt": {}, "completion": {}, "input": {}, "output": {}}
    oi_parts: dict[tuple[str, int], dict[int, Any]] = {}
    calls: dict[tuple[str, int], dict[int, dict[str, Any]]] = {}
    for key, value in attrs.items():
        m = _INDEXED.match(key)
        if m:
            found[m.group(1)].setdefault(int(m.group(2)), {})[m.group(3)] = value
            continue
        m = _INDEXED_CALL.match(key)
        if m:
            field = m.group(4)
            calls.setdefault((m.group(1), int(m.group(2))), {}).setdefault(int(m.group(3)), {})[field] = value
            continue
        m = _OI.match(key)
        if m:
            side, n, rest = m.group(1), int(m.group(2)), m.group(3)
            part = _OI_PART.match(rest)
            call = _OI_CALL.match(rest)
            if part and part.group(2) == "text":
                oi_parts.setdefault((side, n), {})[int(part.group(1))] = value
            elif call:
                field = call.group(2).removeprefix("function.")
                calls.setdefault((side, n), {}).setdefault(int(call.group(1)), {})[field] = value
            elif "." not in rest:
                found[side].setdefault(n, {})[rest] = value
    for (side, n), parts in oi_parts.items():
        msg = found[side].setdefault(n, {})
        if "content" not in msg:
            msg["content"] = "".join(str(parts[i]) for i in sorted(parts))
    for (side, n), by_index in calls.items():  # as OpenAI's `tool_calls`, like flywheel's own model spans
        msg = found[side].setdefault(n, {})
        msg.setdefault("role", "assistant")
        msg.setdefault("content", None)
        msg["tool_calls"] = [{"id": c.get("id"), "type": "function",
                              "function": {"name": c.get("name"), "arguments": _as_text(c.get("arguments")) or "{}"}}
                             for c in (by_index[i] for i in sorted(by_index))]

    def listed(side: str) -> list[dict[str, Any]] | None:
        items = found[side]
        return [items[i] for i in sorted(items)] if items else None

    return listed("prompt") or listed("input"), listed("completion") or listed("output")


def from_events(events: list[Event]) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
    """(input messages, output messages) from GenAI content events, in the order given."""
    inputs: list[dict[str, Any]] = []
    outputs: list[tuple[int, dict[str, Any]]] = []
    for name, attrs, body in events:
        body = body if isinstance(body, dict) else ({"content": body} if body is not None else {})
        if name in _ROLE_EVENTS:
            msg = {k: v for k, v in body.items() if k != "content"}
            if name == "gen_ai.tool.message" and "id" in msg and "tool_call_id" not in msg:
                msg["tool_call_id"] = msg.pop("id")  # the call it answers, under OpenAI's name
            msg["role"] = body.get("role") or _ROLE_EVENTS[name]
            msg["content"] = _text(body.get("content"))
            inputs.append(msg)
        elif name == "gen_ai.choice":
            message: dict[str, Any] = body["message"] if isinstance(body.get("message"), dict) else {}
            msg = {"role": message.get("role") or "assistant", "content": _text(message.get("content"))}
            for key in ("tool_calls", "finish_reason"):
                value = message.get(key, body.get(key))
                if value is not None:
                    msg[key] = value
            index = body.get("index")
            outputs.append((index if isinstance(index, int) else len(outputs), msg))
        elif name == DETAILS_EVENT:
            listed = messages(attrs.get("gen_ai.input.messages")) or []
            inputs.extend(_system(attrs.get("gen_ai.system_instructions"), listed))
            inputs.extend(listed)
            outputs.extend(enumerate(messages(attrs.get("gen_ai.output.messages")) or [], start=len(outputs)))
        elif name == "gen_ai.content.prompt":
            inputs.extend(_event_messages(attrs.get("gen_ai.prompt"), "user"))
        elif name == "gen_ai.content.completion":
            outputs.extend(enumerate(_event_messages(attrs.get("gen_ai.completion"), "assistant"), start=len(outputs)))
    answer = [m for _, m in sorted(outputs, key=lambda x: x[0])]
    return inputs or None, answer or None


def _event_messages(value: Any, role: str) -> list[dict[str, Any]]:
    """The messages of a `gen_ai.content.prompt|completion` event: a JSON message list, or plain text (OpenLIT
    1.x writes the prompt as `role: text` lines, the completion as its text) as one message of `role`."""
    listed = messages(value)
    if listed is not None:
        return listed
    return [{"role": role, "content": value}] if isinstance(value, str) and value.strip() else []


def content(attrs: dict[str, Any], events: list[Event] | None = None) -> tuple[Any, Any]:
    """(inputs, outputs) of a span from its attributes, else from its content events."""
    if isinstance(attrs.get("ai.operationId"), str):  # the Vercel AI SDK's span
        found = _ai_sdk(attrs)
        if found != (None, None):
            return found
    inputs: Any = next((m for m in (messages(attrs.get(k)) for k in INPUT_MESSAGES) if m is not None), None)
    if inputs is not None:
        inputs = _system(attrs.get("gen_ai.system_instructions"), inputs) + inputs
    outputs: Any = messages(attrs.get("gen_ai.output.messages"))
    indexed_in, indexed_out = _indexed(attrs)
    event_in, event_out = from_events(events or [])
    if inputs is None:
        legacy = attrs.get("gen_ai.prompt")
        inputs = messages(legacy) or (legacy if legacy is not None else None) or indexed_in
    if inputs is None:
        inputs = _generic(attrs, INPUT_VALUES, output=False)
    if inputs is None:
        inputs = event_in
    if outputs is None:
        legacy = attrs.get("gen_ai.completion")
        outputs = messages(legacy) or (legacy if legacy is not None else None) or indexed_out
    if outputs is None:
        outputs = _generic(attrs, OUTPUT_VALUES, output=True)
    if outputs is None:
        outputs = event_out
    return ({"messages": inputs} if isinstance(inputs, list) else inputs), outputs


def _generic(attrs: dict[str, Any], keys: tuple[str, ...], output: bool) -> Any:
    """A span's input or output from the SDKs' whole-value attributes (OpenInference's `input.value`,
    OpenLLMetry's `traceloop.entity.input`, Langfuse's `langfuse.observation.input` …): JSON is decoded, a
    decorated function's `{"args": [x], "kwargs": {}}` becomes `x`, and a single chat message answer becomes
    `[message]` like flywheel's own model spans; an OpenAI chat request or completion reads as its messages."""
    key = next((k for k in keys if attrs.get(k) is not None), None)
    if key is None:
        return None
    value = _json(attrs[key])
    if isinstance(value, dict) and value and set(value) <= {"args", "kwargs"}:
        args, kwargs = value.get("args") or [], value.get("kwargs") or {}
        if isinstance(args, list) and isinstance(kwargs, dict):
            if len(args) + len(kwargs) == 1:
                value = args[0] if args else next(iter(kwargs.values()))
            elif not args and not kwargs:
                return None
    if isinstance(value, dict) and not output and isinstance(value.get("messages"), list):
        value = value["messages"]  # a chat request: the model, its parameters and the messages
    elif isinstance(value, dict) and output and isinstance(value.get("choices"), list):
        value = _choices(value["choices"]) or value
    if output and isinstance(value, dict) and "role" in value and "content" in value:
        value = [value]
    return messages(value) or value


def _choices(choices: list[Any]) -> list[dict[str, Any]] | None:
    """The answer messages of an OpenAI chat completion's choices (its `finish_reason` on each), None-valued
    fields left out."""
    out = []
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            return None
        msg = {k: v for k, v in message.items() if v is not None}
        msg.setdefault("content", None)
        if choice.get("finish_reason") is not None:
            msg["finish_reason"] = choice["finish_reason"]
        out.append(msg)
    return out or None


# ------------------------------------------------------------------------------------------ the Vercel AI SDK


def _decoded(value: Any) -> Any:
    """An AI SDK value it wrote as JSON text (an object, a list, a quoted string: `ai.value` is `"hello"`)."""
    if isinstance(value, str) and value[:1] in ("[", "{", '"'):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _ai_sdk(attrs: dict[str, Any]) -> tuple[Any, Any]:
    """(inputs, outputs) of an AI SDK span by its `ai.operationId`: a provider call (`….doGenerate`,
    `….doStream`) has `{"messages"}` from `ai.prompt.messages` and the answer message (text, tool calls); the
    function around it (`ai.generateText` …) its `ai.prompt` as messages and the answer's text (or object); a
    tool call its arguments and result; an embedding call its text(s) and how many vectors it returned (not the
    vectors); a rerank its documents and ranking."""
    op = str(attrs["ai.operationId"])
    if op.endswith((".doGenerate", ".doStream")):
        prompt = _ai_messages(_decoded(attrs.get("ai.prompt.messages")))
        text, calls = attrs.get("ai.response.text"), _decoded(attrs.get("ai.response.toolCalls"))
        answer: dict[str, Any] = {"role": "assistant", "content": text if isinstance(text, str) else None}
        if answer["content"] is None and attrs.get("ai.response.object") is not None:
            answer["content"] = _as_text(_decoded(attrs["ai.response.object"]))
        if isinstance(calls, list) and calls:
            answer["tool_calls"] = [_ai_call(c) for c in calls if isinstance(c, dict)]
        if isinstance(attrs.get("ai.response.reasoning"), str):
            answer["reasoning"] = attrs["ai.response.reasoning"]
        finish = attrs.get("ai.response.finishReason")
        if isinstance(finish, str):
            answer["finish_reason"] = finish
        has_answer = answer["content"] is not None or "tool_calls" in answer
        return ({"messages": prompt} if prompt else None), ([answer] if has_answer else None)
    if op == "ai.toolCall":
        return _decoded(attrs.get("ai.toolCall.args")), _decoded(attrs.get("ai.toolCall.result"))
    if op.startswith("ai.embed"):  # (and ai.embedMany)
        many = attrs.get("ai.values")
        texts = [_decoded(v) for v in many] if isinstance(many, list) else _decoded(attrs.get("ai.value"))
        vectors = attrs.get("ai.embeddings", [attrs["ai.embedding"]] if "ai.embedding" in attrs else None)
        dims = _decoded(vectors[0]) if isinstance(vectors, list) and vectors else None
        return texts, (None if not isinstance(vectors, list) else
                       {"vectors": len(vectors), **({"dimensions": len(dims)} if isinstance(dims, list) else {})})
    if op.startswith("ai.rerank"):
        return _decoded(attrs.get("ai.documents")), _decoded(attrs.get("ai.ranking"))
    prompt = _decoded(attrs.get("ai.prompt"))  # ai.generateText / streamText / generateObject / streamObject
    inputs: Any = prompt
    if isinstance(prompt, dict):
        listed = prompt.get("messages", prompt.get("prompt"))
        msgs = (_ai_messages(listed) if isinstance(listed, list) else None) or (
            [{"role": "user", "content": listed}] if isinstance(listed, str) else [])
        if isinstance(prompt.get("system"), str) and prompt["system"]:
            msgs = [{"role": "system", "content": prompt["system"]}, *msgs]
        inputs = {"messages": msgs} if msgs else prompt
    output = attrs.get("ai.response.text")
    if output is None and attrs.get("ai.response.object") is not None:
        output = _decoded(attrs["ai.response.object"])
    return inputs, output


def _ai_call(call: dict[str, Any]) -> dict[str, Any]:
    """An AI SDK tool call (`{toolCallId, toolName, input}`; v4: `args`) as an OpenAI `tool_calls` entry."""
    args = call.get("input", call.get("args"))
    return {"id": call.get("toolCallId"), "type": "function",
            "function": {"name": call.get("toolName"), "arguments": _as_text(args) or "{}"}}


def _ai_messages(value: Any) -> list[dict[str, Any]] | None:
    """The AI SDK's prompt messages (content a text, or parts: `text`, `tool-call`, `tool-result`) in OpenAI's
    shape: text parts joined, tool calls as `tool_calls`, each tool result a `tool` message."""
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        return None
    out: list[dict[str, Any]] = []
    for m in value:
        parts = m.get("content")
        if not isinstance(parts, list):
            out.append({"role": m.get("role"), "content": parts})
            continue
        parts = [p for p in parts if isinstance(p, dict)]
        results = [p for p in parts if p.get("type") == "tool-result"]
        for p in results:  # (v5+: `output: {type, value}`; v4: `result`)
            result = p.get("output", p.get("result"))
            if isinstance(result, dict) and "value" in result and set(result) <= {"type", "value"}:
                result = result["value"]
            out.append({"role": "tool", "tool_call_id": p.get("toolCallId"), "content": _as_text(result)})
        rest = [p for p in parts if p.get("type") != "tool-result"]
        if rest or not results:
            texts = [p.get("text") for p in rest if p.get("type") == "text" and isinstance(p.get("text"), str)]
            msg: dict[str, Any] = {"role": m.get("role"), "content": "".join(texts) if texts else None}
            calls = [_ai_call(p) for p in rest if p.get("type") == "tool-call"]
            if calls:
                msg["tool_calls"] = calls
            if msg["content"] is None and not calls:
                msg["content"] = rest  # (images, files: as the SDK wrote them)
            out.append(msg)
    return out

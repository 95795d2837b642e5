"""Prompt and answer content of spans recorded by other instrumentations, in flywheel's span shape.

flywheel's model spans keep `inputs = {"messages": [{"role", "content"}, …]}` and `outputs` = the answer. Spans
received over OTLP carry their content in one of several conventions, read here in this order:

- OTel GenAI (current): `gen_ai.input.messages` / `gen_ai.output.messages` (JSON arrays of `{"role", "parts":
  [{"type": "text", "content"}]}`) and `gen_ai.system_instructions`, as span attributes or as the attributes of a
  `gen_ai.client.inference.operation.details` event;
- OTel GenAI (event-based, e.g. `opentelemetry-instrumentation-openai-v2`): log records or span events named
  `gen_ai.system.message`, `gen_ai.user.message`, `gen_ai.assistant.message`, `gen_ai.tool.message` (body
  `{"content"}`) and `gen_ai.choice` (body `{"index", "finish_reason", "message": {"role", "content"}}`);
  older span events `gen_ai.content.prompt` / `gen_ai.content.completion` (attributes `gen_ai.prompt` /
  `gen_ai.completion`);
- OpenLLMetry: `gen_ai.prompt.N.role|content` / `gen_ai.completion.N.role|content`;
- OpenInference: `llm.input_messages.N.message.role|content` / `llm.output_messages.N.message.…` (or
  `…message.contents.M.message_content.text`);
- whole values: OpenInference's `input.value` / `output.value`, OpenLLMetry's `traceloop.entity.input|output`,
  Langfuse's `langfuse.observation.input|output` (otlp_conventions.INPUT_VALUES / OUTPUT_VALUES).

Messages keep their own fields; a message given as `parts` gets a `content` with its text parts joined, so
previews, exports and `flywheel promote` read it like flywheel's own.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flywheel.tracing.otlp_conventions import INPUT_VALUES, OUTPUT_VALUES

_INDEXED = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(\w+)$")
_OI = re.compile(r"^llm\.(input|output)_messages\.(\d+)\.message\.(.+)$")
_OI_PART = re.compile(r"^contents\.(\d+)\.message_content\.(\w+)$")
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


def messages(value: Any) -> list[dict[str, Any]] | None:
    """A list of chat messages (GenAI parts form or role/content form), each with a `content`; else None."""
    value = _json(value)
    if not isinstance(value, list) or not value or not all(isinstance(m, dict) for m in value):
        return None
    out = []
    for m in value:
        msg = dict(m)
        if "content" not in msg and isinstance(msg.get("parts"), list):
            text = _text(msg["parts"])
            msg["content"] = text if isinstance(text, str) else None
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
    for key, value in attrs.items():
        m = _INDEXED.match(key)
        if m:
            found[m.group(1)].setdefault(int(m.group(2)), {})[m.group(3)] = value
            continue
        m = _OI.match(key)
        if m:
            side, n, rest = m.group(1), int(m.group(2)), m.group(3)
            part = _OI_PART.match(rest)
            if part and part.group(2) == "text":
                oi_parts.setdefault((side, n), {})[int(part.group(1))] = value
            elif "." not in rest:
                found[side].setdefault(n, {})[rest] = value
    for (side, n), parts in oi_parts.items():
        msg = found[side].setdefault(n, {})
        if "content" not in msg:
            msg["content"] = "".join(str(parts[i]) for i in sorted(parts))

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
            inputs.extend(messages(attrs.get("gen_ai.prompt")) or [])
        elif name == "gen_ai.content.completion":
            outputs.extend(enumerate(messages(attrs.get("gen_ai.completion")) or [], start=len(outputs)))
    answer = [m for _, m in sorted(outputs, key=lambda x: x[0])]
    return inputs or None, answer or None


def content(attrs: dict[str, Any], events: list[Event] | None = None) -> tuple[Any, Any]:
    """(inputs, outputs) of a span from its attributes, else from its content events."""
    inputs: Any = messages(attrs.get("gen_ai.input.messages"))
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
    `[message]` like flywheel's own model spans."""
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
    if output and isinstance(value, dict) and "role" in value and "content" in value:
        value = [value]
    return messages(value) or value

"""The fields of an imported record, read and checked (`flywheel traces import`): times in any epoch unit or ISO
8601, counts the store can hold, chat messages, answers and errors in the shapes logs keep them. A bad field
raises `Bad(field, message)`, which the importer reports as FILE:LINE with the field's name."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any

from flywheel.types import SpanKind

# what `flywheel traces import` reads
FORMATS = ("flywheel", "openai-log", "langfuse", "otlp", "phoenix", "langsmith")
SPAN_FORMATS = ("otlp", "phoenix", "langsmith")  # read as OTLP spans, by one reader (import_otlp)

# span times are kept as signed 64-bit nanoseconds: up to 2262-04-11; counts in the store's 64-bit integers
MAX_TIME = (2**63 - 1) / 1e9 - 366 * 86400.0  # (leaving a year for the call's latency)
MAX_COUNT = float(2**62)
MAX_LATENCY_MS = 366 * 86400e3
# the field holding the question of an input logged as an object (LangChain's `input`, a form's `text` …)
TEXT_KEYS = ("question", "query", "input", "prompt", "text", "message", "content")


@dataclass
class Step:
    """A span of the imported trace under its root (a Langfuse observation), already shaped: `key` is its id in
    the source (its span id derives from it), `parent` its parent's key (None: directly under the root)."""

    key: str
    parent: str | None
    name: str
    kind: SpanKind
    started: float  # Unix seconds
    ended: float | None
    inputs: Any
    outputs: Any
    error: str | None
    attributes: dict[str, Any]


@dataclass
class Record:
    """One past call, normalised."""

    line: int
    digest: str
    started: float  # Unix seconds
    latency_ms: float | None
    app: str | None
    model: str | None
    messages: list[dict[str, Any]]
    output: str | None
    tenant: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    error: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = (
        None  # the tools the model asked for (OpenAI's message.tool_calls)
    )
    steps: list[Step] = field(default_factory=list)  # the spans under the root; none: one model call
    source_id: str | None = None  # its id in the tool it came from: the same trace in two exports is one


class Bad(Exception):
    def __init__(self, field_name: str, message: str):
        self.field_name, self.message = field_name, message


def time_of(value: Any, name: str) -> float:
    if isinstance(value, bool) or value is None:
        raise Bad(name, "missing" if value is None else "a time is Unix seconds or an ISO 8601 date-time")
    if isinstance(value, (int, float)):
        t = float(value)
        # a number past 1e11 seconds (year 5138) is in a smaller unit: ms, µs or ns since the epoch
        for unit in (1e3, 1e6, 1e9):
            if t > 1e11:
                t = float(value) / unit
        if not math.isfinite(t) or not 0 <= t <= MAX_TIME:
            raise Bad(name, "not a valid Unix time (seconds, milliseconds, microseconds or nanoseconds)")
        return t
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise Bad(name, f"cannot read {value!r} as an ISO 8601 date-time") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        if not 0 <= parsed.timestamp() <= MAX_TIME:
            raise Bad(name, f"{value!r} is before 1970 or after 2262")
        return parsed.timestamp()
    raise Bad(name, "a time is Unix seconds or an ISO 8601 date-time")


def opt_str(obj: dict[str, Any], key: str, name: str | None = None, limit: int = 200) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise Bad(name or key, "must be a string")
    return str(value)[:limit]


def opt_num(value: Any, name: str, *, integer: bool = False, most: float = MAX_COUNT) -> Any:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise Bad(name, "must be a non-negative number")
    if value > most:
        raise Bad(name, f"{value} is too large (at most {most:g})")
    return int(value) if integer else float(value)


def chat_messages(value: Any, name: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if (
        isinstance(value, list)
        and value
        and all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in value)
    ):
        return [{"role": m["role"], "content": content_text(m.get("content"))} for m in value]
    if isinstance(value, dict):
        inner = value.get("messages")  # {"messages": [...]}, as LangChain's runs log their input
        if (
            isinstance(inner, list)
            and inner
            and all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in inner)
        ):
            return chat_messages(inner, f"{name}.messages")
        text = only_text(value)
        if text is None:  # `{"question": "…", "lang": "en"}`: its text, not the whole object as JSON
            text = next((value[k] for k in TEXT_KEYS if isinstance(value.get(k), str)), None)
        return [
            {"role": "user", "content": text if text is not None else json.dumps(value, ensure_ascii=False)}
        ]
    raise Bad(name, "a text, or a list of chat messages with `role` and `content`")


def only_text(value: dict[str, Any]) -> str | None:
    """The text of an object with a single field that is a text (`{"question": "…"}`), else None."""
    return (
        next(iter(value.values()))
        if len(value) == 1 and isinstance(next(iter(value.values())), str)
        else None
    )


def content_text(value: Any) -> str:
    if isinstance(value, list):  # content parts
        return "".join(str(p.get("text", "")) for p in value if isinstance(p, dict))
    return "" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def output_text(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("content", "text", "output", "completion"):
            if isinstance(value.get(key), str):
                return str(value[key])
        text = only_text(value)
        return text if text is not None else json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return (
            content_text(value)
            if all(isinstance(p, dict) for p in value)
            else json.dumps(value, ensure_ascii=False)
        )
    raise Bad(name, "a text (or null)")


def error_text(value: Any) -> str | None:
    """The error of a failed call: a text, or an API error object (`{"message", "type", …}`) as its message."""
    if isinstance(value, dict):
        message = value.get("message")
        value = message if isinstance(message, str) and message else json.dumps(value, ensure_ascii=False)
    return opt_str({"error": value}, "error", limit=20_000)


def meta_obj(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Bad(name, "must be an object")
    return value


def otlp_kvs(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    """Attributes as OTLP JSON key-values, for importers that hand their spans to the OTLP reader."""
    return [{"key": k, "value": otlp_value(v)} for k, v in attrs.items()]


def otlp_value(v: Any) -> dict[str, Any]:
    """One value as an OTLP JSON AnyValue (a list as an array; anything else not scalar as JSON text)."""
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, str):
        return {"stringValue": v}
    if isinstance(v, list):
        return {"arrayValue": {"values": [otlp_value(x) for x in v]}}
    return {"stringValue": json.dumps(v, ensure_ascii=False, default=str)}

"""Arize Phoenix's own span JSON, read as OTLP spans (`flywheel traces import --format phoenix`).

Phoenix gives spans as `{name, context: {trace_id, span_id}, span_kind, parent_id, start_time, end_time,
status_code, status_message, attributes, events}` (its REST API `GET /v1/projects/{project}/spans`, a page
`{"data": [span, …], "next_cursor"}`, and its UI's JSONL download), and its `get_spans_dataframe()` rows
saved with `to_json(orient="records", lines=True)` (or as one array, `orient="records"`; or
`orient="split"` / `"table"`) have the same fields flattened (`context.span_id`,
`attributes.llm.model_name`, times in epoch milliseconds). Each becomes the OTLP span it was received as:
attributes in OpenInference's flat names (`llm.input_messages.0.message.content`, whatever nesting Phoenix
returned them in), `span_kind` as `openinference.span.kind`, status and `exception` events kept; the OTLP
reader then maps them like any OpenInference span (import_otlp). Phoenix's `/spans/otlpv1` and "OTLP JSON"
downloads are OTLP already.
"""

from __future__ import annotations

from typing import Any

from flywheel.tracing.import_fields import otlp_kvs, time_of

_STATUS = {"OK": 1, "ERROR": 2}


def is_phoenix_span(obj: Any) -> bool:
    return isinstance(obj, dict) and (
        (isinstance(obj.get("context"), dict) and "span_id" in obj["context"]) or "context.span_id" in obj
    )


def to_request(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The OTLP request (`{"resourceSpans": …}`) holding the Phoenix span(s) of one JSON value; else None. A bad
    time raises import_fields.Bad naming it."""
    data = obj.get("data")
    spans: list[Any] = data if isinstance(data, list) else [obj]
    columns = obj.get("columns")
    if isinstance(columns, list) and all(isinstance(row, list) for row in spans):  # a dataframe's orient="split"
        spans = [dict(zip(columns, row, strict=False)) for row in spans]
    if not spans or not all(is_phoenix_span(s) for s in spans):
        return None
    return {"resourceSpans": [{"scopeSpans": [{"spans": [_span(s) for s in spans]}]}]}


def _span(row: dict[str, Any]) -> dict[str, Any]:
    context = row["context"] if isinstance(row.get("context"), dict) else {}
    attrs: dict[str, Any] = {}
    _flatten("", row.get("attributes") if isinstance(row.get("attributes"), dict) else {}, attrs)
    for key, value in row.items():  # a dataframe row: `attributes.llm.model_name` columns
        if key.startswith("attributes.") and value is not None:
            _flatten(key.removeprefix("attributes."), value, attrs)
    kind = row.get("span_kind")
    if isinstance(kind, str) and kind:
        attrs.setdefault("openinference.span.kind", kind)
    status = row.get("status_code")
    end = row.get("end_time")
    return {
        "traceId": context.get("trace_id", row.get("context.trace_id")),
        "spanId": context.get("span_id", row.get("context.span_id")),
        "parentSpanId": row.get("parent_id") or "",
        "name": row.get("name") or "span",
        "startTimeUnixNano": _nanos(row.get("start_time"), "start_time"),
        "endTimeUnixNano": None if end is None else _nanos(end, "end_time"),
        "attributes": otlp_kvs(attrs),
        "status": {"code": _STATUS.get(str(status).upper(), 0), "message": row.get("status_message") or ""},
        "events": [_event(e) for e in row.get("events") or [] if isinstance(e, dict)],
    }


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """OpenInference's flat attribute names from nested values: `{"llm": {"input_messages": [{"message":
    {"role": …}}]}}` → `llm.input_messages.0.message.role`."""
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, inner in enumerate(value):
            _flatten(f"{prefix}.{i}", inner, out)
    elif value is not None and prefix:
        out[prefix] = value


def _nanos(value: Any, name: str) -> str:
    return str(round(time_of(value, name) * 1e9))


def _event(event: dict[str, Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    _flatten("", event.get("attributes") if isinstance(event.get("attributes"), dict) else {}, attrs)
    return {"name": event.get("name"), "attributes": otlp_kvs(attrs)}



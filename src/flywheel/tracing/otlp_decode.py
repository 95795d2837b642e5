"""OTLP/JSON export requests as flywheel spans: the decoding shared by the live receiver (flywheel.server.otlp,
`POST /v1/traces` and `/v1/logs`) and the file import (`flywheel traces import --format otlp`).

Input is OTLP's JSON mapping (lowerCamelCase keys, hex ids) or MessageToDict of the protobuf (base64 ids);
`camel` turns keys written with the proto field names (`resource_spans`, `trace_id`, as
`MessageToJson(preserving_proto_field_name=True)` and Phoenix write them) into the former. Nothing here knows
the transport: a request that is not OTLP in shape raises OtlpError naming the JSON path of the bad field, and
each caller turns it into its own error (the receiver's 400, the import's FILE:LINE).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from flywheel.gateway import pricing
from flywheel.tracing import genai_content, otlp_conventions
from flywheel.types import Span

_HEX = re.compile(r"^[0-9a-f]+$")
MAX_NANOS = 2**63 - 1


class OtlpError(ValueError):
    """A request that is not OTLP in shape: `param` is the JSON path of the bad field."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.message, self.param = message, param


def camel(value: Any) -> Any:
    """Every object key in lowerCamelCase (OTLP/JSON's keys are proto field names; attribute names are values)."""
    if isinstance(value, dict):
        return {_camel_key(k): camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


def _camel_key(key: Any) -> Any:
    if not isinstance(key, str) or "_" not in key:
        return key
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _id(value: Any, nbytes: int, param: str) -> str | None:
    """OTLP ids: hex in OTLP/JSON, base64 after MessageToDict; flywheel keeps lowercase hex. All zeros is
    OTLP's invalid id, read as none (a root's parent, a log record tied to no span)."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise OtlpError(f"{param} must be a string", param)
    low = value.lower()
    if len(low) == nbytes * 2 and _HEX.match(low):
        return None if low.strip("0") == "" else low
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        data = b""
    if len(data) != nbytes:
        raise OtlpError(f"{param} is not a {nbytes}-byte id", param)
    return None if not data.strip(b"\0") else data.hex()


def _value(v: Any) -> Any:
    if not isinstance(v, dict):
        return None
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            return None
    if "arrayValue" in v:
        return [_value(x) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        return _attrs((v["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def _attrs(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in items if isinstance(items, list) else []:
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"]] = _value(kv.get("value"))
    return out


def _span_events(items: Any) -> list[genai_content.Event]:
    out: list[genai_content.Event] = []
    for ev in items if isinstance(items, list) else []:
        if isinstance(ev, dict) and genai_content.is_content_event(str(ev.get("name"))):
            attrs = _attrs(ev.get("attributes"))
            body = attrs.pop("body", None) if "body" in attrs else None
            out.append((str(ev["name"]), attrs, _json_body(body)))
    return out


def _exception(items: Any) -> str | None:
    """`Type: message` of the span's last `exception` event (MLflow sets the error status without a message)."""
    found = None
    for ev in items if isinstance(items, list) else []:
        if isinstance(ev, dict) and ev.get("name") == "exception":
            attrs = _attrs(ev.get("attributes"))
            kind, message = attrs.get("exception.type"), attrs.get("exception.message")
            kind = kind.rsplit(".", 1)[-1] if isinstance(kind, str) else None
            found = ": ".join(str(x) for x in (kind, message) if x) or found
    return found


def _json_body(body: Any) -> Any:
    if isinstance(body, str) and body[:1] == "{":
        try:
            return json.loads(body)
        except ValueError:
            return body
    return body


def _obj(value: Any, where: str) -> dict[str, Any]:
    """An OTLP message field: absent is empty, anything but an object is the sender's error (not a crash)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise OtlpError(f"{where} must be an object", where)
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise OtlpError(f"{where} must be a list", where)
    return value


def _nanos(value: Any, where: str) -> int | None:
    """A Unix-nanosecond timestamp (OTLP/JSON sends it as a string): the store keeps it in a signed 64-bit integer."""
    if value in (None, "", 0, "0"):
        return None
    try:
        ns = int(value)
    except (TypeError, ValueError):
        raise OtlpError(f"{where} is an integer (Unix nanoseconds)", where) from None
    if not 0 <= ns <= MAX_NANOS:
        raise OtlpError(f"{where} is out of range (Unix nanoseconds, 0 to {MAX_NANOS})", where)
    return ns


def to_spans(data: dict[str, Any], tenant: str) -> list[Span]:
    """Every span of the request, checked before any is kept: a malformed one raises OtlpError naming its path."""
    spans: list[Span] = []
    for r, rs in enumerate(_list(data.get("resourceSpans"), "resourceSpans")):
        rs = _obj(rs, f"resourceSpans.{r}")
        resource = _attrs(_obj(rs.get("resource"), f"resourceSpans.{r}.resource").get("attributes"))
        scope_key = "scopeSpans" if "scopeSpans" in rs else "instrumentationLibrarySpans"
        for s, ss in enumerate(_list(rs.get(scope_key), f"resourceSpans.{r}.{scope_key}")):
            ss = _obj(ss, f"resourceSpans.{r}.{scope_key}.{s}")
            for i, sp in enumerate(_list(ss.get("spans"), f"resourceSpans.{r}.{scope_key}.{s}.spans")):
                where = f"resourceSpans.{r}.{scope_key}.{s}.spans.{i}"
                if not isinstance(sp, dict):
                    raise OtlpError("a span is an object", where)
                spans.append(_span(sp, resource, tenant, where))
    return spans


def _span(sp: dict[str, Any], resource: dict[str, Any], tenant: str, where: str) -> Span:
    attrs = otlp_conventions.normalise(_attrs(sp.get("attributes")), resource.get("telemetry.sdk.name"))
    if "service.name" in resource:
        attrs.setdefault("service.name", resource["service.name"])
    attrs["flywheel.tenant"] = tenant  # the caller's tenant, never the sender's claim
    attrs["flywheel.source"] = "otlp"
    start = _nanos(sp.get("startTimeUnixNano"), f"{where}.startTimeUnixNano") or 0
    end = _nanos(sp.get("endTimeUnixNano"), f"{where}.endTimeUnixNano")
    trace_id = _id(sp.get("traceId"), 16, f"{where}.traceId")
    span_id = _id(sp.get("spanId"), 8, f"{where}.spanId")
    if trace_id is None or span_id is None:
        missing = f"{where}.traceId" if trace_id is None else f"{where}.spanId"
        raise OtlpError("a span needs a traceId and a spanId (not all zeros)", missing)
    status = _obj(sp.get("status"), f"{where}.status")
    failed = status.get("code") in (2, "2", "STATUS_CODE_ERROR")
    message = status.get("message")
    if message is not None and not isinstance(message, str):
        raise OtlpError("status.message is a string", f"{where}.status.message")
    inputs, outputs = genai_content.content(attrs, _span_events(sp.get("events")))
    kind = otlp_conventions.kind(attrs)
    # the text now lives in inputs/outputs: not kept twice, and gone with them under capture_content: false
    attrs = {k: v for k, v in attrs.items() if not otlp_conventions.is_content_key(k)}
    raw_name = sp.get("name")
    name = raw_name if isinstance(raw_name, str) and raw_name else "span"
    return Span(
        span_id=span_id,
        trace_id=trace_id,
        parent_id=_id(sp.get("parentSpanId"), 8, f"{where}.parentSpanId"),
        name=name[:200],
        kind=kind,
        start_ns=start,
        end_ns=end,
        inputs=inputs,
        outputs=outputs,
        output_state="missing" if outputs is None else "ok",
        error=(message or _exception(sp.get("events")) or "error") if failed else None,
        attributes=attrs,
    )


def priced(span: Span, models: dict[str, Any]) -> Span:
    """A model span that reports tokens but no cost (or a cost of 0) is priced from flywheel.yaml's `models:`
    when one of them (by alias, else the first by its `model:` name) is the span's model and has a price."""
    attrs = span.attributes
    model = attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model")
    if attrs.get("flywheel.cost_usd") or not isinstance(model, str) or not models:
        return span
    tokens_in, tokens_out = attrs.get("gen_ai.usage.input_tokens"), attrs.get("gen_ai.usage.output_tokens")
    used_in = isinstance(tokens_in, int) and tokens_in > 0
    used_out = isinstance(tokens_out, int) and tokens_out > 0
    if not used_in and not used_out:
        return (
            span  # (a cost of 0 for tokens used is a price the SDK did not know: OpenLIT offline, Langfuse)
        )
    alias = models.get(model) or next(
        (m for m in models.values() if getattr(m, "model", None) == model), None
    )
    price = getattr(alias, "price", None)
    if price is None or not (price.input or price.output):
        return span
    cost = pricing.cost_usd(
        price,
        tokens_in if isinstance(tokens_in, int) else 0,
        tokens_out if isinstance(tokens_out, int) else 0,
    )
    update = {"flywheel.cost_usd": cost, "flywheel.cost_priced_by": "flywheel.yaml"}
    return span.model_copy(update={"attributes": {**attrs, **update}})


def log_events(data: dict[str, Any]) -> dict[tuple[str, str], list[genai_content.Event]]:
    """GenAI content events of an OTLP logs request, by (trace id, span id); records tied to no span are skipped.
    OTel GenAI instrumentations that follow the event-based conventions (opentelemetry-instrumentation-openai-v2)
    send the prompt and the answer as log records tied to the model span, not as span attributes."""
    out: dict[tuple[str, str], list[genai_content.Event]] = {}
    for r, rl in enumerate(_list(data.get("resourceLogs"), "resourceLogs")):
        rl = _obj(rl, f"resourceLogs.{r}")
        for s, sl in enumerate(_list(rl.get("scopeLogs"), f"resourceLogs.{r}.scopeLogs")):
            sl = _obj(sl, f"resourceLogs.{r}.scopeLogs.{s}")
            records = _list(sl.get("logRecords"), f"resourceLogs.{r}.scopeLogs.{s}.logRecords")
            for i, rec in enumerate(records):
                where = f"resourceLogs.{r}.scopeLogs.{s}.logRecords.{i}"
                if not isinstance(rec, dict):
                    raise OtlpError("a log record is an object", where)
                attrs = _attrs(rec.get("attributes"))
                name = rec.get("eventName") or attrs.get("event.name")
                if not isinstance(name, str) or not genai_content.is_content_event(name):
                    continue
                trace_id = _id(rec.get("traceId"), 16, f"{where}.traceId")
                span_id = _id(rec.get("spanId"), 8, f"{where}.spanId")
                if trace_id is None or span_id is None:
                    continue
                body = _json_body(_value(rec.get("body")))
                out.setdefault((trace_id, span_id), []).append((name, attrs, body))
    return out


def with_events(span: Span, events: list[genai_content.Event]) -> Span:
    """`span` completed with the content of its log records: inputs and outputs it does not have already."""
    inputs, outputs = genai_content.from_events(events)
    update: dict[str, Any] = {}
    if span.inputs is None and inputs is not None:
        update["inputs"] = {"messages": inputs}
    if span.output_state == "missing" and outputs is not None:
        update.update(outputs=outputs, output_state="ok")
    return span.model_copy(update=update) if update else span


def stored_span(row: Any) -> Span:
    """A span as the `spans` table holds it (a row mapping), to complete with log events that came later."""
    fields = ("span_id", "trace_id", "parent_id", "name", "kind", "start_ns", "end_ns", "inputs", "outputs",
              "output_state", "error")
    return Span(**{f: row[f] for f in fields}, attributes=row["attributes"] or {})

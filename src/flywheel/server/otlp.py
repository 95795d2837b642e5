"""POST /v1/traces: an OTLP/HTTP receiver, so applications instrumented with OpenTelemetry (the OTel SDK,
OpenLLMetry, OpenInference, OpenLIT, Langfuse, Logfire, Pydantic AI, MLflow) get flywheel traces without calling
through the gateway.
Langfuse's SDK posts to /api/public/otel/v1/traces with Basic auth: the same handler, its secret key being the
flywheel API key. /v1/metrics is accepted and dropped (SDKs export metrics by default next to traces).
Attribute names of the different SDKs are mapped by one table, flywheel.tracing.otlp_conventions.

Accepts `application/x-protobuf` and `application/json` (OTLP's JSON mapping: hex ids), optionally gzip.
A request that is not OTLP in shape is a 400 naming the JSON path of the bad field, and none of its spans is kept.
Each span keeps its ids, parent, timestamps, status and attributes; prompt and completion content is lifted
from the common conventions into the span's inputs/outputs (`gen_ai.input.messages` / `gen_ai.output.messages`,
OpenLLMetry's `gen_ai.prompt.N.*` / `gen_ai.completion.N.*`, OpenInference's `input.value` / `output.value`).
Spans go through the tracer's sinks like flywheel's own, so they are scrubbed the same way; the caller's tenant
(the key's, or `x-flywheel-tenant` for the admin / an open server, else "default") is stamped on every span
(`flywheel.tenant`), overriding whatever the sender put there.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import zlib
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from flywheel.gateway import pricing
from flywheel.server import calls
from flywheel.server.errors import ApiError
from flywheel.store.schema import spans as spans_t
from flywheel.tracing import genai_content, otlp_conventions, tracer
from flywheel.types import Span

router = APIRouter()
_HEX = re.compile(r"^[0-9a-f]+$")
MAX_INFLATED = 64 * 1024 * 1024
MAX_NANOS = 2**63 - 1


def _decode_body(raw: bytes, encoding: str) -> bytes:
    if encoding in ("gzip", "deflate"):
        inflater = zlib.decompressobj(wbits=47 if encoding == "gzip" else 15)
        try:
            out = inflater.decompress(raw, MAX_INFLATED)
        except zlib.error:
            raise ApiError(400, f"the body is not valid {encoding}", code="invalid_encoding") from None
        if inflater.unconsumed_tail:
            raise ApiError(413, "the decompressed body is too large", code="body_too_large")
        return out
    if encoding not in ("", "identity"):
        raise ApiError(415, f"unsupported content-encoding {encoding!r}", code="unsupported_encoding")
    return raw


def _parse(raw: bytes, content_type: str, signal: str = "trace") -> dict[str, Any]:
    if "protobuf" in content_type:
        try:
            from google.protobuf.json_format import MessageToDict
        except ImportError:
            raise ApiError(415, "OTLP protobuf needs the OpenTelemetry packages ({pip_install('otel')}); "
                           "or send application/json", code="unsupported_media_type") from None
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        msg = ExportTraceServiceRequest() if signal == "trace" else ExportLogsServiceRequest()
        try:
            msg.ParseFromString(raw)
        except DecodeError:
            raise ApiError(400, f"the body is not an OTLP {type(msg).__name__} (protobuf)",
                           code="invalid_protobuf") from None
        return MessageToDict(msg)
    if "json" in content_type:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the body is not valid JSON: {exc}", code="invalid_json") from None
        if not isinstance(data, dict):
            top = "resourceSpans" if signal == "trace" else "resourceLogs"
            raise ApiError(400, f"an OTLP request is a JSON object with {top}", param=top, code="invalid_value")
        return data
    raise ApiError(415, "send application/x-protobuf or application/json", code="unsupported_media_type")


def _id(value: Any, nbytes: int, param: str) -> str | None:
    """OTLP ids: hex in OTLP/JSON, base64 after MessageToDict; flywheel keeps lowercase hex. All zeros is
    OTLP's invalid id, read as none (a root's parent, a log record tied to no span)."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{param} must be a string", param=param, code="invalid_value")
    low = value.lower()
    if len(low) == nbytes * 2 and _HEX.match(low):
        return None if low.strip("0") == "" else low
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        data = b""
    if len(data) != nbytes:
        raise ApiError(400, f"{param} is not a {nbytes}-byte id", param=param, code="invalid_value")
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
    """An OTLP message field: absent is empty, anything but an object is the sender's error (400, not a 500)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(400, f"{where} must be an object", param=where, code="invalid_value")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError(400, f"{where} must be a list", param=where, code="invalid_value")
    return value


def _nanos(value: Any, where: str) -> int | None:
    """A Unix-nanosecond timestamp (OTLP/JSON sends it as a string): the store keeps it in a signed 64-bit integer."""
    if value in (None, "", 0, "0"):
        return None
    try:
        ns = int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"{where} is an integer (Unix nanoseconds)", param=where, code="invalid_value") from None
    if not 0 <= ns <= MAX_NANOS:
        raise ApiError(400, f"{where} is out of range (Unix nanoseconds, 0 to {MAX_NANOS})", param=where,
                       code="invalid_value")
    return ns


def to_spans(data: dict[str, Any], tenant: str) -> list[Span]:
    """Every span of the request, checked before any is kept: a malformed one is a 400 naming its path."""
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
                    raise ApiError(400, "a span is an object", param=where, code="invalid_value")
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
        raise ApiError(400, "a span needs a traceId and a spanId (not all zeros)", param=missing,
                       code="invalid_value")
    status = _obj(sp.get("status"), f"{where}.status")
    failed = status.get("code") in (2, "2", "STATUS_CODE_ERROR")
    message = status.get("message")
    if message is not None and not isinstance(message, str):
        raise ApiError(400, "status.message is a string", param=f"{where}.status.message", code="invalid_value")
    inputs, outputs = genai_content.content(attrs, _span_events(sp.get("events")))
    kind = otlp_conventions.kind(attrs)
    # the text now lives in inputs/outputs: not kept twice, and gone with them under capture_content: false
    attrs = {k: v for k, v in attrs.items() if not otlp_conventions.is_content_key(k)}
    raw_name = sp.get("name")
    name = raw_name if isinstance(raw_name, str) and raw_name else "span"
    return Span(span_id=span_id, trace_id=trace_id, parent_id=_id(sp.get("parentSpanId"), 8, f"{where}.parentSpanId"),
                name=name[:200], kind=kind, start_ns=start, end_ns=end,
                inputs=inputs, outputs=outputs, output_state="missing" if outputs is None else "ok",
                error=(message or _exception(sp.get("events")) or "error") if failed else None,
                attributes=attrs)


def _credentials(headers: Any) -> Any:
    """The headers to authenticate with. Langfuse's SDK sends `Authorization: Basic base64(public:secret)`:
    its secret key is the flywheel API key (the public key is not checked)."""
    auth = headers.get("authorization") or ""
    if auth[:6].lower() != "basic ":
        return headers
    try:
        user_pass = base64.b64decode(auth[6:].strip(), validate=True).decode()
    except (binascii.Error, ValueError):
        raise ApiError(401, "the Basic credentials are not base64 of `public-key:secret-key`",
                       code="invalid_api_key") from None
    secret = user_pass.partition(":")[2]
    return {"x-api-key": headers.get("x-api-key"), "authorization": f"Bearer {secret}" if secret else ""}


def _priced(span: Span, models: dict[str, Any]) -> Span:
    """A model span that reports tokens but no cost (or a cost of 0) is priced from flywheel.yaml's `models:`
    when one of them (by alias, else the first by its `model:` name) is the span's model and has a price."""
    attrs = span.attributes
    model = attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model")
    if attrs.get("flywheel.cost_usd") or not isinstance(model, str) or not models:
        return span
    tokens_in, tokens_out = attrs.get("gen_ai.usage.input_tokens"), attrs.get("gen_ai.usage.output_tokens")
    if not (isinstance(tokens_in, int) and tokens_in > 0) and not (isinstance(tokens_out, int) and tokens_out > 0):
        return span  # (a cost of 0 for tokens used is a price the SDK did not know: OpenLIT offline, Langfuse)
    alias = models.get(model) or next((m for m in models.values() if getattr(m, "model", None) == model), None)
    price = getattr(alias, "price", None)
    if price is None or not (price.input or price.output):
        return span
    cost = pricing.cost_usd(price, tokens_in if isinstance(tokens_in, int) else 0,
                            tokens_out if isinstance(tokens_out, int) else 0)
    return span.model_copy(update={"attributes": {**attrs, "flywheel.cost_usd": cost,
                                                  "flywheel.cost_priced_by": "flywheel.yaml"}})


async def _receive(request: Request, signal: str) -> tuple[Any, str, str, dict[str, Any]]:
    """(server state, tenant, content type, the decoded export request) of an authenticated OTLP POST."""
    state = request.app.state.flywheel
    principal = state.authenticate(_credentials(request.headers))
    tenant = calls.resolve_tenant(principal, request.headers.get("x-flywheel-tenant"))
    content_type = request.headers.get("content-type", "").lower()
    raw = _decode_body(await request.body(), request.headers.get("content-encoding", "").lower().strip())
    return state, tenant, content_type, _parse(raw, content_type, signal)


@router.post("/v1/traces")
@router.post("/api/public/otel/v1/traces")  # where Langfuse's SDK sends them: LANGFUSE_HOST=<this server>
async def receive_traces(request: Request) -> Any:
    state, tenant, content_type, payload = await _receive(request, "trace")
    spans = to_spans(payload, tenant)
    models = state.project.config.models
    for span in spans:
        events = _take_pending(tenant, span.trace_id, span.span_id)
        # the tracer's own path to its sinks: the same redaction and store writer as flywheel's spans
        tracer.ingest(_priced(_with_events(span, events) if events else span, models))
    if "protobuf" in content_type:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        return Response(ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf")
    return JSONResponse({"partialSuccess": {}})


# ------------------------------------------------------------------------------------------------ logs
# OTel GenAI instrumentations that follow the event-based conventions (opentelemetry-instrumentation-openai-v2)
# send the prompt and the answer as log records tied to the model span (its trace and span id), not as span
# attributes. They are joined to their span here: a span already stored is rewritten with the content (through
# the tracer, so redaction applies); records that arrive before their span wait in this process until it comes.

MAX_PENDING = 10_000
_pending: OrderedDict[tuple[str, str, str], list[genai_content.Event]] = OrderedDict()
_pending_lock = threading.Lock()


def log_events(data: dict[str, Any]) -> dict[tuple[str, str], list[genai_content.Event]]:
    """GenAI content events of an OTLP logs request, by (trace id, span id); records tied to no span are skipped."""
    out: dict[tuple[str, str], list[genai_content.Event]] = {}
    for r, rl in enumerate(_list(data.get("resourceLogs"), "resourceLogs")):
        rl = _obj(rl, f"resourceLogs.{r}")
        for s, sl in enumerate(_list(rl.get("scopeLogs"), f"resourceLogs.{r}.scopeLogs")):
            sl = _obj(sl, f"resourceLogs.{r}.scopeLogs.{s}")
            for i, rec in enumerate(_list(sl.get("logRecords"), f"resourceLogs.{r}.scopeLogs.{s}.logRecords")):
                where = f"resourceLogs.{r}.scopeLogs.{s}.logRecords.{i}"
                if not isinstance(rec, dict):
                    raise ApiError(400, "a log record is an object", param=where, code="invalid_value")
                attrs = _attrs(rec.get("attributes"))
                name = rec.get("eventName") or attrs.get("event.name")
                if not isinstance(name, str) or not genai_content.is_content_event(name):
                    continue
                trace_id = _id(rec.get("traceId"), 16, f"{where}.traceId")
                span_id = _id(rec.get("spanId"), 8, f"{where}.spanId")
                if trace_id is None or span_id is None:
                    continue
                out.setdefault((trace_id, span_id), []).append((name, attrs, _json_body(_value(rec.get("body")))))
    return out


def _with_events(span: Span, events: list[genai_content.Event]) -> Span:
    inputs, outputs = genai_content.from_events(events)
    update: dict[str, Any] = {}
    if span.inputs is None and inputs is not None:
        update["inputs"] = {"messages": inputs}
    if span.output_state == "missing" and outputs is not None:
        update.update(outputs=outputs, output_state="ok")
    return span.model_copy(update=update) if update else span


def _take_pending(tenant: str, trace_id: str, span_id: str) -> list[genai_content.Event] | None:
    if not _pending:
        return None
    with _pending_lock:
        return _pending.pop((tenant, trace_id, span_id), None)


def _attach(store: Any, tenant: str, events: dict[tuple[str, str], list[genai_content.Event]]) -> None:
    tracer.flush()  # spans received just before their logs are written before they are looked up
    ids = [span_id for _, span_id in events]
    with store.connect() as conn:
        rows = {(r["trace_id"], r["span_id"]): dict(r) for r in conn.execute(
            select(spans_t).where(spans_t.c.span_id.in_(ids))).mappings()}
    for key, evs in events.items():
        row = rows.get(key)
        if row is None:
            with _pending_lock:
                _pending.setdefault((tenant, *key), []).extend(evs)
                while len(_pending) > MAX_PENDING:
                    _pending.popitem(last=False)
            continue
        if row["tenant"] != tenant:
            continue  # another tenant's span: its content is not this caller's to write
        span = Span(span_id=row["span_id"], trace_id=row["trace_id"], parent_id=row["parent_id"], name=row["name"],
                    kind=row["kind"], start_ns=row["start_ns"], end_ns=row["end_ns"], inputs=row["inputs"],
                    outputs=row["outputs"], output_state=row["output_state"], error=row["error"],
                    attributes=row["attributes"] or {})
        updated = _with_events(span, evs)
        if updated is not span:
            tracer.ingest(updated)


@router.post("/v1/logs")
async def receive_logs(request: Request) -> Any:
    state, tenant, content_type, payload = await _receive(request, "logs")
    events = log_events(payload)
    if events:
        await run_in_threadpool(_attach, state.store, tenant, events)
    if "protobuf" in content_type:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

        return Response(ExportLogsServiceResponse().SerializeToString(), media_type="application/x-protobuf")
    return JSONResponse({"partialSuccess": {}})


@router.post("/v1/metrics")
async def receive_metrics(request: Request) -> Any:
    """OTLP metrics are accepted and not kept (OpenLLMetry and OpenLIT export them by default next to their
    traces): the caller is authenticated, its body is not read. flywheel's metrics come from the traces."""
    request.app.state.flywheel.authenticate(_credentials(request.headers))
    if "protobuf" in request.headers.get("content-type", "").lower():
        return Response(b"", media_type="application/x-protobuf")
    return JSONResponse({"partialSuccess": {}})

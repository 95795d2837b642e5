"""POST /v1/traces: an OTLP/HTTP receiver, so applications instrumented with OpenTelemetry (the OTel SDK,
OpenLLMetry, OpenInference, OpenLIT, Langfuse, Logfire, Pydantic AI, MLflow) get flywheel traces without calling
through the gateway.
Langfuse's SDK posts to /api/public/otel/v1/traces with Basic auth: the same handler, its secret key being the
flywheel API key. /v1/metrics is accepted and dropped (SDKs export metrics by default next to traces).
Attribute names of the different SDKs are mapped by one table, flywheel.tracing.otlp_conventions; the decoding
of an export request into spans is flywheel.tracing.otlp_decode's (shared with `flywheel traces import`).

Accepts `application/x-protobuf` and `application/json` (OTLP's JSON mapping: hex ids, keys in lowerCamelCase or
as the proto field names), optionally gzip.
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
import threading
import zlib
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from flywheel.server import calls
from flywheel.server.errors import ApiError
from flywheel.store.schema import spans as spans_t
from flywheel.text.install import pip_install
from flywheel.tracing import genai_content, otlp_decode, tracer
from flywheel.tracing.otlp_decode import OtlpError, camel, priced
from flywheel.tracing.otlp_decode import with_events as _with_events
from flywheel.types import Span

router = APIRouter()
MAX_INFLATED = 64 * 1024 * 1024


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
            raise ApiError(
                415,
                f"OTLP protobuf needs the OpenTelemetry packages ({pip_install('otel')}); "
                "or send application/json",
                code="unsupported_media_type",
            ) from None
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        msg = ExportTraceServiceRequest() if signal == "trace" else ExportLogsServiceRequest()
        try:
            msg.ParseFromString(raw)
        except DecodeError:
            raise ApiError(
                400, f"the body is not an OTLP {type(msg).__name__} (protobuf)", code="invalid_protobuf"
            ) from None
        return MessageToDict(msg)
    if "json" in content_type:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the body is not valid JSON: {exc}", code="invalid_json") from None
        if not isinstance(data, dict):
            top = "resourceSpans" if signal == "trace" else "resourceLogs"
            raise ApiError(
                400, f"an OTLP request is a JSON object with {top}", param=top, code="invalid_value"
            )
        # keys as the proto field names (`resource_spans`, `trace_id`: MessageToJson(preserving_proto_field_name))
        # are OTLP/JSON too; read as they are, every span of such a request would be missed without an error
        return camel(data)
    raise ApiError(415, "send application/x-protobuf or application/json", code="unsupported_media_type")


def _bad_request(exc: OtlpError) -> ApiError:
    return ApiError(400, exc.message, param=exc.param, code="invalid_value")


def to_spans(data: dict[str, Any], tenant: str) -> list[Span]:
    """Every span of the request, checked before any is kept: a malformed one is a 400 naming its path."""
    try:
        return otlp_decode.to_spans(data, tenant)
    except OtlpError as exc:
        raise _bad_request(exc) from None


def log_events(data: dict[str, Any]) -> dict[tuple[str, str], list[genai_content.Event]]:
    """GenAI content events of an OTLP logs request, by (trace id, span id); a malformed record is a 400."""
    try:
        return otlp_decode.log_events(data)
    except OtlpError as exc:
        raise _bad_request(exc) from None


def _credentials(headers: Any) -> Any:
    """The headers to authenticate with. Langfuse's SDK sends `Authorization: Basic base64(public:secret)`:
    its secret key is the flywheel API key (the public key is not checked)."""
    auth = headers.get("authorization") or ""
    if auth[:6].lower() != "basic ":
        return headers
    try:
        user_pass = base64.b64decode(auth[6:].strip(), validate=True).decode()
    except (binascii.Error, ValueError):
        raise ApiError(
            401, "the Basic credentials are not base64 of `public-key:secret-key`", code="invalid_api_key"
        ) from None
    secret = user_pass.partition(":")[2]
    return {"x-api-key": headers.get("x-api-key"), "authorization": f"Bearer {secret}" if secret else ""}


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
        tracer.ingest(priced(_with_events(span, events) if events else span, models))
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


def _take_pending(tenant: str, trace_id: str, span_id: str) -> list[genai_content.Event] | None:
    if not _pending:
        return None
    with _pending_lock:
        return _pending.pop((tenant, trace_id, span_id), None)


def _attach(store: Any, tenant: str, events: dict[tuple[str, str], list[genai_content.Event]]) -> None:
    tracer.flush()  # spans received just before their logs are written before they are looked up
    ids = [span_id for _, span_id in events]
    with store.connect() as conn:
        rows = {
            (r["trace_id"], r["span_id"]): dict(r)
            for r in conn.execute(select(spans_t).where(spans_t.c.span_id.in_(ids))).mappings()
        }
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
        span = otlp_decode.stored_span(row)
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

"""POST /v1/traces: an OTLP/HTTP receiver, so applications instrumented with OpenTelemetry (the OTel SDK,
OpenLLMetry, OpenInference) get flywheel traces without calling through the gateway.

Accepts `application/x-protobuf` and `application/json` (OTLP's JSON mapping: hex ids), optionally gzip.
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
import zlib
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from flywheel.server import calls
from flywheel.server.errors import ApiError
from flywheel.tracing import tracer
from flywheel.types import Span, SpanKind

router = APIRouter()
_HEX = re.compile(r"^[0-9a-f]+$")
_INDEXED = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(\w+)$")
_RENAMES = {"gen_ai.usage.prompt_tokens": "gen_ai.usage.input_tokens",
            "gen_ai.usage.completion_tokens": "gen_ai.usage.output_tokens", "gen_ai.system": "gen_ai.provider.name",
            "llm.model_name": "gen_ai.request.model", "llm.token_count.prompt": "gen_ai.usage.input_tokens",
            "llm.token_count.completion": "gen_ai.usage.output_tokens"}
_KINDS: dict[str, SpanKind] = {"chat": "llm", "text_completion": "llm", "generate_content": "llm", "embeddings": "embedding",
          "execute_tool": "tool", "LLM": "llm", "EMBEDDING": "embedding", "RETRIEVER": "retrieval",
          "TOOL": "tool", "CHAIN": "other", "AGENT": "other", "GUARDRAIL": "guard", "EVALUATOR": "eval"}
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


def _parse(raw: bytes, content_type: str) -> dict[str, Any]:
    if "protobuf" in content_type:
        try:
            from google.protobuf.json_format import MessageToDict
        except ImportError:
            raise ApiError(415, "OTLP protobuf needs the OpenTelemetry packages (pip install 'flywheel[otel]'); "
                           "or send application/json", code="unsupported_media_type") from None
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        msg = ExportTraceServiceRequest()
        try:
            msg.ParseFromString(raw)
        except DecodeError:
            raise ApiError(400, "the body is not an OTLP ExportTraceServiceRequest (protobuf)",
                           code="invalid_protobuf") from None
        return MessageToDict(msg)
    if "json" in content_type:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the body is not valid JSON: {exc}", code="invalid_json") from None
        if not isinstance(data, dict):
            raise ApiError(400, "an OTLP request is a JSON object with resourceSpans", param="resourceSpans",
                           code="invalid_value")
        return data
    raise ApiError(415, "send application/x-protobuf or application/json", code="unsupported_media_type")


def _id(value: Any, nbytes: int, param: str) -> str | None:
    """OTLP ids: hex in OTLP/JSON, base64 after MessageToDict; flywheel keeps lowercase hex."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{param} must be a string", param=param, code="invalid_value")
    low = value.lower()
    if len(low) == nbytes * 2 and _HEX.match(low):
        return low
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        data = b""
    if len(data) != nbytes:
        raise ApiError(400, f"{param} is not a {nbytes}-byte id", param=param, code="invalid_value")
    return data.hex()


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


def _content(attrs: dict[str, Any]) -> tuple[Any, Any]:
    """(inputs, outputs) from the GenAI / OpenLLMetry / OpenInference content attributes."""
    indexed: dict[str, dict[int, dict[str, Any]]] = {"prompt": {}, "completion": {}}
    for key, value in attrs.items():
        m = _INDEXED.match(key)
        if m:
            indexed[m.group(1)].setdefault(int(m.group(2)), {})[m.group(3)] = value

    def pick(*keys: str, side: str) -> Any:
        for key in keys:
            value = attrs.get(key)
            if isinstance(value, str):
                try:
                    return json.loads(value)
                except ValueError:
                    return value
            if value is not None:
                return value
        items = indexed[side]
        return [items[i] for i in sorted(items)] if items else None

    inputs = pick("gen_ai.input.messages", "gen_ai.prompt", "input.value", side="prompt")
    outputs = pick("gen_ai.output.messages", "gen_ai.completion", "output.value", side="completion")
    return ({"messages": inputs} if isinstance(inputs, list) else inputs), outputs


def to_spans(data: dict[str, Any], tenant: str) -> list[Span]:
    spans: list[Span] = []
    for r, rs in enumerate(data.get("resourceSpans") or []):
        resource = _attrs(((rs or {}).get("resource") or {}).get("attributes"))
        for s, ss in enumerate((rs or {}).get("scopeSpans") or (rs or {}).get("instrumentationLibrarySpans") or []):
            for i, sp in enumerate((ss or {}).get("spans") or []):
                where = f"resourceSpans.{r}.scopeSpans.{s}.spans.{i}"
                if not isinstance(sp, dict):
                    raise ApiError(400, "a span is an object", param=where, code="invalid_value")
                spans.append(_span(sp, resource, tenant, where))
    return spans


def _span(sp: dict[str, Any], resource: dict[str, Any], tenant: str, where: str) -> Span:
    attrs = _attrs(sp.get("attributes"))
    for old, new in _RENAMES.items():
        if old in attrs and new not in attrs:
            attrs[new] = attrs[old]
    if "service.name" in resource:
        attrs.setdefault("service.name", resource["service.name"])
    attrs["flywheel.tenant"] = tenant  # the caller's tenant, never the sender's claim
    attrs["flywheel.source"] = "otlp"
    try:
        start = int(sp.get("startTimeUnixNano") or 0)
        end = int(sp["endTimeUnixNano"]) if sp.get("endTimeUnixNano") else None
    except (TypeError, ValueError):
        raise ApiError(400, "timestamps are integers (ns)", param=f"{where}.startTimeUnixNano",
                       code="invalid_value") from None
    trace_id = _id(sp.get("traceId"), 16, f"{where}.traceId")
    span_id = _id(sp.get("spanId"), 8, f"{where}.spanId")
    if trace_id is None or span_id is None:
        raise ApiError(400, "a span needs traceId and spanId", param=f"{where}.traceId", code="invalid_value")
    status = sp.get("status") or {}
    failed = status.get("code") in (2, "STATUS_CODE_ERROR")
    kind_key = attrs.get("gen_ai.operation.name") or attrs.get("openinference.span.kind")
    inputs, outputs = _content(attrs)
    raw_name = sp.get("name")
    name = raw_name if isinstance(raw_name, str) and raw_name else "span"
    return Span(span_id=span_id, trace_id=trace_id, parent_id=_id(sp.get("parentSpanId"), 8, f"{where}.parentSpanId"),
                name=name[:200], kind=_KINDS.get(str(kind_key), "other"), start_ns=start, end_ns=end,
                inputs=inputs, outputs=outputs, output_state="missing" if outputs is None else "ok",
                error=(status.get("message") or "error") if failed else None, attributes=attrs)


@router.post("/v1/traces")
async def receive_traces(request: Request) -> Any:
    state = request.app.state.flywheel
    principal = state.authenticate(request.headers)
    tenant = calls.resolve_tenant(principal, request.headers.get("x-flywheel-tenant"))
    content_type = request.headers.get("content-type", "").lower()
    raw = _decode_body(await request.body(), request.headers.get("content-encoding", "").lower().strip())
    spans = to_spans(_parse(raw, content_type), tenant)
    for span in spans:
        # the tracer's own path to its sinks: the same redaction and store writer as flywheel's spans
        tracer.ingest(span)
    if "protobuf" in content_type:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        return Response(ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf")
    return JSONResponse({"partialSuccess": {}})

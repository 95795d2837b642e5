"""Export spans over OTLP/HTTP (protobuf) with the OpenTelemetry GenAI semantic conventions (`otel` extra).

    detach = attach_otlp("http://collector:4318")      # → POST http://collector:4318/v1/traces

Span and trace ids are flywheel's own (16/8 random bytes), so parent links and the trace id a caller got back
from `App.run()` match what the collector shows. Attributes: `gen_ai.*` keys as the gateway sets them
(gen_ai.operation.name, gen_ai.provider.name, gen_ai.request.model, gen_ai.response.model,
gen_ai.usage.input_tokens, gen_ai.usage.output_tokens …), flywheel's under `flywheel.*` (a key without a
namespace `k` is exported as `flywheel.k`), plus `flywheel.span.kind`, `flywheel.output_state` and, when content
capture is on, `flywheel.inputs` / `flywheel.outputs` as JSON. Errors set the span status and an `exception` event.
Conversion and export run on a background thread, after redaction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from flywheel.errors import UserError
from flywheel.store.writer import BatchWorker
from flywheel.tracing.redact import Redactor
from flywheel.tracing.tracer import tracer
from flywheel.types import Span

log = logging.getLogger("flywheel.tracing.otel")
MAX_CONTENT_CHARS = 16_000
_OPERATION = {"llm": "chat", "embedding": "embeddings", "tool": "execute_tool"}


def traces_url(endpoint: str) -> str:
    """OTLP/HTTP traces URL from a collector base URL (`http://host:4318`) or a full `…/v1/traces` URL."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def attach_otlp(endpoint: str, *, headers: Mapping[str, str] | None = None, service_name: str = "flywheel",
                redactor: Callable[[Span], Span] | None = None, timeout_s: float = 10.0,
                max_delay_s: float = 1.0) -> Callable[[], None]:
    """Export every finished span to an OTLP/HTTP collector. Returns `detach()` (flushes, then stops)."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    except ImportError:
        raise UserError("OTLP export needs the OpenTelemetry packages",
                        hint="pip install 'flywheel[otel]' or remove tracing.otlp_endpoint from flywheel.yaml") from None
    exporter = OTLPSpanExporter(endpoint=traces_url(endpoint), headers=dict(headers or {}), timeout=timeout_s)
    resource = Resource.create({"service.name": service_name})
    scope = InstrumentationScope("flywheel", _version())
    clean = redactor or tracer.redactor or Redactor.from_config()

    def export(records: list[Span]) -> None:
        out = []
        for rec in records:
            try:
                out.append(to_otel(clean(rec), resource, scope))
            except Exception:  # one bad span must not lose the batch
                log.exception("cannot convert span %s for OTLP", getattr(rec, "span_id", "?"))
        if out:
            result = exporter.export(out)
            if getattr(result, "name", "") != "SUCCESS":
                log.warning("OTLP export of %d spans to %s failed", len(out), endpoint)

    worker = BatchWorker(export, name="flywheel-otlp-export", batch_items=512, max_delay_s=max_delay_s)

    def sink(record: Span) -> None:
        worker.put(record)

    def flush() -> None:
        worker.flush()

    tracer.add_sink(sink, flush, redacts=True)

    def detach() -> None:
        tracer.remove_sink(sink, flush)
        worker.close()
        exporter.shutdown()

    return detach


def to_otel(rec: Span, resource: Any, scope: Any) -> Any:
    """A flywheel Span record (already redacted) as an OpenTelemetry SDK ReadableSpan."""
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    flags = TraceFlags(TraceFlags.SAMPLED)
    trace_id = int(rec.trace_id, 16)
    ctx = SpanContext(trace_id=trace_id, span_id=int(rec.span_id, 16), is_remote=False, trace_flags=flags)
    parent = (SpanContext(trace_id=trace_id, span_id=int(rec.parent_id, 16), is_remote=False, trace_flags=flags)
              if rec.parent_id else None)
    attrs = otel_attributes(rec)
    events = []
    status = Status(StatusCode.UNSET)
    if rec.error:
        etype, _, emsg = rec.error.partition(": ")
        status = Status(StatusCode.ERROR, rec.error[:1000])
        events.append(Event("exception", {"exception.type": etype if emsg else "Error",
                                          "exception.message": emsg or rec.error}, timestamp=rec.end_ns))
        attrs.setdefault("error.type", etype if emsg else "Error")
    kind = SpanKind.CLIENT if rec.kind in ("llm", "embedding") else SpanKind.INTERNAL
    return ReadableSpan(name=rec.name, context=ctx, parent=parent, resource=resource, attributes=attrs,
                        events=events, kind=kind, status=status, start_time=rec.start_ns,
                        end_time=rec.end_ns or rec.start_ns, instrumentation_scope=scope)


def otel_attributes(rec: Span) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (rec.attributes or {}).items():
        name = key if "." in key else f"flywheel.{key}"
        v = _otel_value(value)
        if v is not None:
            out[name] = v
    out["flywheel.span.kind"] = rec.kind
    out["flywheel.output_state"] = rec.output_state
    if rec.kind in _OPERATION and "gen_ai.operation.name" not in out:
        out["gen_ai.operation.name"] = _OPERATION[rec.kind]
    for field, name in (("inputs", "flywheel.inputs"), ("outputs", "flywheel.outputs")):
        value = getattr(rec, field)
        if value is not None:
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
            out[name] = text[:MAX_CONTENT_CHARS]
    return out


def _otel_value(value: Any) -> Any:
    """OTLP attribute values are primitives or homogeneous lists of primitives; anything else becomes JSON."""
    if value is None:
        return None
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and value:
        types = {type(v) for v in value}
        if len(types) == 1 and types.pop() in (str, bool, int, float):
            return list(value)
    return json.dumps(value, ensure_ascii=False, default=str)[:MAX_CONTENT_CHARS]


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("flywheel")
    except Exception:  # noqa: BLE001
        return "0"

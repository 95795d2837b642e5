"""Export spans over OTLP/HTTP (protobuf) with the OpenTelemetry GenAI semantic conventions (`otel` extra).

    detach = attach_otlp("http://collector:4318")      # → POST http://collector:4318/v1/traces
    detach = attach_otlp(exporter=my_span_exporter)    # or any OpenTelemetry SpanExporter

Span ids are flywheel's own (8 random bytes). Trace ids too — unless the flywheel trace started inside the
caller's OpenTelemetry span (or under a W3C `traceparent`, see `flywheel.tracing.remote_parent`): then its spans
are exported with the caller's trace id and the flywheel root as a child of the caller's span, so Langfuse,
Phoenix or Jaeger show flywheel's spans inside the caller's trace; flywheel's own trace id (what `App.run()`
returned, the key in `flywheel traces`) travels as `flywheel.trace_id`.

Attributes: `gen_ai.*` keys as the gateway sets them (gen_ai.operation.name, gen_ai.provider.name,
gen_ai.request.model, gen_ai.response.model, gen_ai.usage.input_tokens, gen_ai.usage.output_tokens …); on model
spans the content as the current GenAI conventions shape it, when content capture is on:
`gen_ai.input.messages` (`[{"role", "parts": [{"type": "text", "content"}]}]`), `gen_ai.output.messages`
(the same, with `finish_reason`) and the request parameters sent (`gen_ai.request.temperature`, …).
flywheel's own attributes go under `flywheel.*` (a key without a namespace `k` is exported as `flywheel.k`), plus
`flywheel.span.kind`, `flywheel.output_state` and, for other spans, `flywheel.inputs` / `flywheel.outputs` as
JSON. Errors set the span status and an `exception` event. Conversion and export run on a background thread,
after redaction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from flywheel.errors import UserError
from flywheel.store.writer import BatchWorker
from flywheel.text.install import pip_install
from flywheel.tracing.redact import Redactor
from flywheel.tracing.tracer import OTEL_PARENT, OTEL_TRACE, tracer
from flywheel.types import Span

log = logging.getLogger("flywheel.tracing.otel")
MAX_CONTENT_CHARS = 16_000
DETACH_WAIT_S = 2.0  # at exit, how long queued spans may take to export before a dead collector is given up
_OPERATION = {"llm": "chat", "embedding": "embeddings", "tool": "execute_tool"}


def traces_url(endpoint: str) -> str:
    """OTLP/HTTP traces URL from a collector base URL (`http://host:4318`) or a full `…/v1/traces` URL."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def attach_otlp(endpoint: str | None = None, *, headers: Mapping[str, str] | None = None,
                service_name: str = "flywheel", redactor: Callable[[Span], Span] | None = None,
                timeout_s: float = 10.0, max_delay_s: float = 1.0, exporter: Any = None) -> Callable[[], None]:
    """Export every finished span to an OTLP/HTTP collector at `endpoint`, or to `exporter` (any
    OpenTelemetry SpanExporter, e.g. the SDK's InMemorySpanExporter). Returns `detach()` (flushes, then stops)."""
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise UserError("OTLP export needs the OpenTelemetry packages",
                        hint=f"{pip_install('otel')} or remove tracing.otlp_endpoint from flywheel.yaml") from None
    if exporter is None:
        if not endpoint:
            raise UserError("attach_otlp needs a collector endpoint or an exporter",
                            hint="e.g. attach_otlp('http://127.0.0.1:4318')")
        exporter = OTLPSpanExporter(endpoint=traces_url(endpoint), headers=dict(headers or {}), timeout=timeout_s)
        # its retry warnings ("Transient error … retrying in 1.08s") would print on every CLI run while the
        # collector is down; flywheel logs one line per failed batch instead (unless you set that logger's level)
        for name in ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "opentelemetry.exporter.otlp.common.http"):
            logger = logging.getLogger(name)
            if not any(isinstance(f, _RetryNoise) for f in logger.filters):
                logger.addFilter(_RetryNoise())
    target = endpoint or type(exporter).__name__
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
                log.warning("OTLP export of %d spans to %s failed", len(out), target)

    # block_s=0: a slow or dead collector drops spans (counted in worker.dropped), it never slows the app
    worker = BatchWorker(export, name="flywheel-otlp-export", batch_items=512, max_delay_s=max_delay_s, block_s=0.0)

    def sink(record: Span) -> None:
        worker.put(record)

    stuck: list[bool] = []

    def flush() -> None:
        if not worker.flush(timeout=DETACH_WAIT_S):  # a dead collector's retries must not stall whoever flushes
            stuck.append(True)

    tracer.add_sink(sink, flush, redacts=True)

    def detach() -> None:
        tracer.remove_sink(sink, flush)
        # a dead collector must not hold the process up: the exporter retries with backoff up to its timeout,
        # and shutdown() is what interrupts that backoff
        if stuck:  # a flush already waited for it in vain: interrupt its retries first
            exporter.shutdown()
        worker.close(timeout=DETACH_WAIT_S)
        if not stuck:
            exporter.shutdown()

    return detach


class _RetryNoise(logging.Filter):
    """Drops the OTLP exporter's per-retry lines; flywheel logs one warning per batch that failed."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Transient error", "Failed to export", "Shutdown in progress"))


def to_otel(rec: Span, resource: Any, scope: Any) -> Any:
    """A flywheel Span record (already redacted) as an OpenTelemetry SDK ReadableSpan."""
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    flags = TraceFlags(TraceFlags.SAMPLED)
    attrs_in = rec.attributes or {}
    linked = _hex(attrs_in.get(OTEL_TRACE), 32)  # the caller's trace this flywheel trace runs inside
    trace_id = int(linked or rec.trace_id, 16)
    parent_id = rec.parent_id or (_hex(attrs_in.get(OTEL_PARENT), 16) if linked else None)
    ctx = SpanContext(trace_id=trace_id, span_id=int(rec.span_id, 16), is_remote=False, trace_flags=flags)
    parent = (SpanContext(trace_id=trace_id, span_id=int(parent_id, 16), is_remote=not rec.parent_id,
                          trace_flags=flags) if parent_id else None)
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
    attrs = rec.attributes or {}
    for key, value in attrs.items():
        if key in (OTEL_TRACE, OTEL_PARENT):
            continue
        name = key if "." in key else f"flywheel.{key}"
        v = _otel_value(value)
        if v is not None:
            out[name] = v
    if OTEL_TRACE in attrs:
        out["flywheel.trace_id"] = rec.trace_id
    out["flywheel.span.kind"] = rec.kind
    out["flywheel.output_state"] = rec.output_state
    if rec.kind in _OPERATION and "gen_ai.operation.name" not in out:
        out["gen_ai.operation.name"] = _OPERATION[rec.kind]
    messages = _messages(rec.inputs) if rec.kind == "llm" else None
    if messages is not None:
        out["gen_ai.input.messages"] = _json(messages)
        params = rec.inputs.get("params") if isinstance(rec.inputs, dict) else None
        for key, value in (params or {}).items():
            param = _PARAMS.get(key)
            if param and param not in out and _otel_value(value) is not None:
                out[param] = _otel_value(value)
        if rec.output_state != "missing" and rec.outputs is not None:
            finish = attrs.get("gen_ai.response.finish_reasons")
            message: dict[str, Any] = {"role": "assistant", "parts": [_part(rec.outputs)]}
            if isinstance(finish, list | tuple) and finish:
                message["finish_reason"] = str(finish[0])
            out["gen_ai.output.messages"] = _json([message])
        return out
    for field, name in (("inputs", "flywheel.inputs"), ("outputs", "flywheel.outputs")):
        value = getattr(rec, field)
        if value is not None:
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
            out[name] = text[:MAX_CONTENT_CHARS]
    return out


_PARAMS = {"temperature": "gen_ai.request.temperature", "max_tokens": "gen_ai.request.max_tokens",
           "top_p": "gen_ai.request.top_p", "stop": "gen_ai.request.stop_sequences",
           "seed": "gen_ai.request.seed", "frequency_penalty": "gen_ai.request.frequency_penalty",
           "presence_penalty": "gen_ai.request.presence_penalty"}


def _messages(inputs: Any) -> list[dict[str, Any]] | None:
    """Chat messages of a model span's inputs in the GenAI semconv shape, or None when there are none."""
    msgs = inputs.get("messages") if isinstance(inputs, dict) else None
    if not isinstance(msgs, list) or not msgs:
        return None
    out = []
    for m in msgs:
        if isinstance(m, dict) and "role" in m:
            out.append({"role": str(m["role"]), "parts": [_part(m.get("content"))]})
    return out or None


def _part(content: Any) -> dict[str, Any]:
    """A text part, its content cut at MAX_CONTENT_CHARS (cut here, so the attribute stays valid JSON)."""
    text = content if isinstance(content, str) else _json(content)
    return {"type": "text", "content": text[:MAX_CONTENT_CHARS]}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _hex(value: Any, n: int) -> str | None:
    if isinstance(value, str) and len(value) == n and all(c in "0123456789abcdef" for c in value):
        return value
    return None


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

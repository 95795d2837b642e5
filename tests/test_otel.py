"""OTLP export: spans reach a real OTLP/HTTP collector (in-process, protobuf) with GenAI attributes and links."""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from flywheel.config import TracingConfig
from flywheel.store import Store
from flywheel.tracing import attach_otlp, attach_store, tracer


class Collector:
    """A minimal OTLP/HTTP trace collector on 127.0.0.1: decodes every POST /v1/traces."""

    def __init__(self) -> None:
        self.spans: list = []  # (resource attributes, span) pairs
        self.paths: list[str] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                with collector.lock:
                    collector.paths.append(self.path)
                    for rs in req.resource_spans:
                        res = {a.key: _value(a.value) for a in rs.resource.attributes}
                        for ss in rs.scope_spans:
                            collector.spans.extend((res, sp) for sp in ss.spans)
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def by_name(self) -> dict:
        with self.lock:
            return {sp.name: sp for _, sp in self.spans}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _value(v):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def _attrs(span) -> dict:
    return {a.key: _value(a.value) for a in span.attributes}


@pytest.fixture
def collector():
    c = Collector()
    yield c
    c.close()


def test_spans_are_exported_with_genai_attributes_ids_and_parent_links(collector):
    detach = attach_otlp(collector.url, service_name="docs-service")
    try:
        with tracer.span("docs_qa", kind="app", inputs={"question": "q?"}, k=5) as app:
            with tracer.span("gateway.chat", kind="llm") as top:
                with tracer.span("chat gpt-x", kind="llm", **{
                        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai_compat",
                        "gen_ai.request.model": "gpt-x", "gen_ai.response.model": "gpt-x-2025",
                        "gen_ai.usage.input_tokens": 42, "gen_ai.usage.output_tokens": 7,
                        "flywheel.cost_usd": 0.0021, "flywheel.alias": "strong", "flywheel.attempt": 1,
                        "gen_ai.response.finish_reasons": ["stop"]}) as attempt:
                    attempt.set(outputs="an answer")
                top.set(outputs="an answer")
            with pytest.raises(RuntimeError), tracer.span("guard", kind="guard"):
                raise RuntimeError("blocked by policy")
            app.set(outputs={"answer": "an answer"})
        tracer.flush()
    finally:
        detach()

    assert collector.paths and all(p == "/v1/traces" for p in collector.paths)
    spans = collector.by_name()
    assert set(spans) == {"docs_qa", "gateway.chat", "chat gpt-x", "guard"}
    root, top, call, guard = spans["docs_qa"], spans["gateway.chat"], spans["chat gpt-x"], spans["guard"]
    # flywheel's own ids and parent links survive the trip
    assert root.trace_id.hex() == app.trace_id and root.span_id.hex() == app.span_id
    assert {s.trace_id.hex() for s in spans.values()} == {app.trace_id}
    assert root.parent_span_id == b""
    assert top.parent_span_id == root.span_id and call.parent_span_id == top.span_id
    assert guard.parent_span_id == root.span_id
    assert call.start_time_unix_nano == attempt.start_ns and call.end_time_unix_nano == attempt.end_ns

    a = _attrs(call)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai_compat"
    assert a["gen_ai.request.model"] == "gpt-x" and a["gen_ai.response.model"] == "gpt-x-2025"
    assert a["gen_ai.usage.input_tokens"] == 42 and a["gen_ai.usage.output_tokens"] == 7
    assert a["flywheel.cost_usd"] == pytest.approx(0.0021)
    assert a["flywheel.alias"] == "strong" and a["flywheel.attempt"] == 1
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["flywheel.span.kind"] == "llm" and a["flywheel.outputs"] == "an answer"
    assert call.kind == 3  # SPAN_KIND_CLIENT: a call to a model provider
    assert _attrs(top)["gen_ai.operation.name"] == "chat"  # filled in for llm spans
    assert _attrs(root)["flywheel.k"] == 5  # un-namespaced attributes go under flywheel.*
    assert '"question": "q?"' in _attrs(root)["flywheel.inputs"]

    assert guard.status.code == 2 and "blocked by policy" in guard.status.message  # STATUS_CODE_ERROR
    (event,) = guard.events
    assert event.name == "exception"
    assert {x.key: _value(x.value) for x in event.attributes}["exception.type"] == "RuntimeError"
    res = collector.spans[0][0]
    assert res["service.name"] == "docs-service"


def test_exported_spans_are_redacted(collector):
    secret = "sk-ant-api03-QWErty123456789ASDfgh"
    detach = attach_otlp(collector.url)
    try:
        with tracer.span("call", kind="llm", inputs=f"key {secret}", **{"http.authorization": f"Bearer {secret}"}):
            pass
        tracer.flush()
    finally:
        detach()
    raw = str(collector.spans)
    assert "call" in collector.by_name()
    assert secret not in raw and "[REDACTED]" in raw


def test_otlp_endpoint_in_tracing_config_is_attached_with_the_store(collector, tmp_path):
    with Store.open(f"sqlite:///{tmp_path}/s.db") as store:
        detach = attach_store(store, TracingConfig(otlp_endpoint=collector.url + "/v1/traces"))
        try:
            with tracer.span("configured", kind="app"):
                pass
            tracer.flush()
        finally:
            detach()
    assert "configured" in collector.by_name()


def test_export_to_a_dead_collector_never_fails_the_traced_code():
    detach = attach_otlp("http://127.0.0.1:9", timeout_s=0.5)  # discard port: nothing listens
    try:
        with tracer.span("unexported") as sp:
            sp.set(outputs="fine")
    finally:
        detach()
    assert sp.outputs == "fine"


# ------------------------------------------------------------------ the caller's OpenTelemetry trace


@pytest.fixture
def user_otel():
    """An application's own OpenTelemetry setup: an SDK tracer writing to an in-memory exporter."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("user-app"), exporter
    provider.shutdown()


def test_flywheel_spans_nest_inside_the_callers_active_otel_span(user_otel):
    from flywheel.config import ModelAlias
    from flywheel.gateway import Gateway
    from flywheel.testing.fake_llm import FakeLLM
    from flywheel.types import ChatRequest, Message

    user_tracer, exporter = user_otel
    detach = attach_otlp(exporter=exporter)
    try:
        with FakeLLM() as llm:
            llm.add("capital", "Paris.")
            gw = Gateway({"m": ModelAlias(model="fake-model", base_url=llm.base_url)})
            with user_tracer.start_as_current_span("handle-request") as user_span:
                result = gw.chat(ChatRequest(model="m", temperature=0.2, messages=[
                    Message(role="system", content="Be brief."),
                    Message(role="user", content="What is the capital of France?")]))
            gw.close()
        tracer.flush()
    finally:
        detach()

    spans = {s.name: s for s in exporter.get_finished_spans()}
    user, top, attempt = spans["handle-request"], spans["gateway.chat"], spans["chat fake-model"]
    user_ctx = user_span.get_span_context()
    # one trace: flywheel's spans carry the caller's trace id, and flywheel's root is the caller span's child
    assert {s.context.trace_id for s in spans.values()} == {user_ctx.trace_id}
    assert top.parent.span_id == user_ctx.span_id and attempt.parent.span_id == top.context.span_id
    assert user.parent is None
    # flywheel's own trace id (returned to the caller, the key in the store) travels as an attribute
    assert top.attributes["flywheel.trace_id"] == result.trace_id != f"{user_ctx.trace_id:032x}"
    assert "flywheel.otel.trace_id" not in attempt.attributes
    # content in the current GenAI semantic-convention shape, with the parameters this attempt sent
    sent = json.loads(attempt.attributes["gen_ai.input.messages"])
    assert sent == [{"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
                    {"role": "user", "parts": [{"type": "text", "content": "What is the capital of France?"}]}]
    got = json.loads(attempt.attributes["gen_ai.output.messages"])
    assert got == [{"role": "assistant", "parts": [{"type": "text", "content": "Paris."}], "finish_reason": "stop"}]
    assert attempt.attributes["gen_ai.request.temperature"] == 0.2
    assert "flywheel.inputs" not in attempt.attributes


def test_a_w3c_traceparent_parents_the_flywheel_trace(user_otel):
    from flywheel.tracing import remote_parent

    _, exporter = user_otel
    header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    detach = attach_otlp(exporter=exporter)
    try:
        with remote_parent(header), tracer.span("docs_qa", kind="app") as root, tracer.span("retrieve"):
            pass
        with remote_parent("not-a-traceparent"), tracer.span("unlinked", kind="app") as plain:
            pass
        tracer.flush()
    finally:
        detach()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["docs_qa"].context.trace_id == int("0af7651916cd43dd8448eb211c80319c", 16)
    assert spans["docs_qa"].parent.span_id == int("b7ad6b7169203331", 16) and spans["docs_qa"].parent.is_remote
    assert spans["retrieve"].context.trace_id == spans["docs_qa"].context.trace_id
    assert spans["retrieve"].parent.span_id == int(root.span_id, 16)
    assert spans["unlinked"].context.trace_id == int(plain.trace_id, 16) and spans["unlinked"].parent is None

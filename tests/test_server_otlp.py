"""The OTLP/HTTP receiver: spans from the official OpenTelemetry exporter (protobuf) and OTLP/JSON become
flywheel traces with their own ids, parents, timestamps, GenAI attributes and content."""

from __future__ import annotations

import httpx
import pytest

from flywheel.tracing import get_trace, tracer


def _stored(live, trace_id: str):
    for _ in range(100):
        tracer.flush()
        trace = get_trace(live.state.store, trace_id)
        if trace is not None and trace["status"] != "incomplete":
            return trace
    return get_trace(live.state.store, trace_id)


def test_official_otlp_exporter_spans_become_traces(live):
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "their-app"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=live.url + "/v1/traces")))
    otel = provider.get_tracer("test")
    with otel.start_as_current_span("handle request") as root, otel.start_as_current_span("chat gpt-4o") as llm:
        llm.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                            "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 3,
                            "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "What is 2+2?",
                            "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "4",
                            "flywheel.tenant": "someone-else"})
    provider.shutdown()
    trace_id = format(root.get_span_context().trace_id, "032x")
    trace = _stored(live, trace_id)
    assert trace is not None and trace["status"] == "ok" and trace["tenant"] == "default"
    assert trace["input_tokens"] == 12 and trace["output_tokens"] == 3
    top = trace["spans"][0]
    assert top["name"] == "handle request" and top["span_id"] == format(root.get_span_context().span_id, "016x")
    child = top["children"][0]
    assert child["kind"] == "llm" and child["model"] == "gpt-4o"
    assert child["start_ns"] == llm.start_time and child["end_ns"] == llm.end_time  # their timestamps
    assert child["inputs"]["messages"][0]["content"] == "What is 2+2?" and child["outputs"][0]["content"] == "4"


def test_otlp_json_and_bad_payloads(live):
    body = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "retrieve",
        "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000500000000",
        "attributes": [{"key": "openinference.span.kind", "value": {"stringValue": "RETRIEVER"}},
                       {"key": "input.value", "value": {"stringValue": "pin a version"}}],
        "status": {"code": 2, "message": "index offline"}}]}]}]}
    resp = httpx.post(live.url + "/v1/traces", json=body)
    assert resp.status_code == 200
    trace = _stored(live, "5b8efff798038103d269b633813fc60c")
    assert trace["status"] == "error" and trace["latency_ms"] == 500.0
    assert trace["spans"][0]["kind"] == "retrieval" and trace["spans"][0]["inputs"] == "pin a version"

    bad_id = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz", "spanId": "eee19b7ec3c1b174"}]}]}]}
    resp = httpx.post(live.url + "/v1/traces", json=bad_id)
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "resourceSpans.0.scopeSpans.0.spans.0.traceId"
    resp = httpx.post(live.url + "/v1/traces", content=b"\x00\xffnot protobuf",
                      headers={"content-type": "application/x-protobuf"})
    assert resp.status_code == 400
    assert httpx.post(live.url + "/v1/traces", content=b"x", headers={"content-type": "text/plain"}).status_code == 415

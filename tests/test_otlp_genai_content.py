"""Spans from other instrumentations over OTLP: the prompt and answer land on the model span and on the trace
(its question and answer in `flywheel traces`), whichever convention carried them — OTel GenAI event logs
(`opentelemetry-instrumentation-openai-v2`, sent to /v1/logs before or after their span), GenAI `parts`
messages, OpenInference `llm.*_messages` — and a span delivered twice (OTLP retries) is stored once, counted
once, without failing the writer's batch. Payloads are built with the OpenTelemetry SDK and exporters the venv
has, or as OTLP/JSON by hand, shaped like what those instrumentations send."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

from flywheel.tracing import get_trace, list_traces, tracer


def _stored(live, trace_id: str):
    for _ in range(100):
        tracer.flush()
        trace = get_trace(live.state.store, trace_id)
        if trace is not None and trace["status"] != "incomplete":
            return trace
    return get_trace(live.state.store, trace_id)


def _listed(live, trace_id: str) -> dict:
    tracer.flush()
    return next(t for t in list_traces(live.state.store, last=500) if t["trace_id"] == trace_id)


def _kv(key: str, value) -> dict:
    kind = "intValue" if isinstance(value, int) else "stringValue"
    return {"key": key, "value": {kind: str(value) if kind == "intValue" else value}}


def _request(*spans: dict) -> dict:
    return {"resourceSpans": [{"resource": {"attributes": [_kv("service.name", "their-app")]},
                               "scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}]}]}


def _span(trace_id: str, span_id: str, name: str, attrs: dict, parent: str | None = None, start: int = 0) -> dict:
    base = 1_800_000_000_000_000_000 + start * 1_000_000
    return {"traceId": trace_id, "spanId": span_id, **({"parentSpanId": parent} if parent else {}), "name": name,
            "startTimeUnixNano": str(base), "endTimeUnixNano": str(base + 250_000_000),
            "attributes": [_kv(k, v) for k, v in attrs.items()]}


def test_genai_event_logs_become_the_model_spans_content(live):
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from opentelemetry._logs import LogRecord
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import set_span_in_context

    provider = TracerProvider(resource=Resource.create({"service.name": "their-app"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=live.url + "/v1/traces")))
    logs = LoggerProvider()
    logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=live.url + "/v1/logs")))
    otel, logger = provider.get_tracer("test"), logs.get_logger("opentelemetry.instrumentation.openai_v2")

    def event(name: str, body: dict, span) -> None:  # what openai-v2 emits: an event tied to the model span
        logger.emit(LogRecord(event_name=name, body=body, attributes={"gen_ai.system": "openai"},
                              context=set_span_in_context(span)))

    # 1. the way openai-v2 sends them: the prompt events during the call (before the span is exported), the
    #    answer at its end
    with otel.start_as_current_span("handle question") as root, otel.start_as_current_span("chat gpt-4o-mini") as llm:
        llm.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                            "gen_ai.usage.input_tokens": 9, "gen_ai.usage.output_tokens": 5})
        event("gen_ai.system.message", {"content": "Be brief."}, llm)
        event("gen_ai.user.message", {"content": "Wie spät ist es?"}, llm)
        event("gen_ai.choice", {"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": "Es ist zwölf Uhr."}}, llm)
    trace_id = format(root.get_span_context().trace_id, "032x")
    trace = _stored(live, trace_id)
    child = trace["spans"][0]["children"][0]
    assert child["inputs"]["messages"] == [{"role": "system", "content": "Be brief."},
                                           {"role": "user", "content": "Wie spät ist es?"}]
    assert child["outputs"][0]["content"] == "Es ist zwölf Uhr." and child["output_state"] == "ok"
    row = _listed(live, trace_id)  # the root (their request span) has no content: the trace shows the model's
    assert row["input_preview"] == "Wie spät ist es?" and row["output_preview"] == "Es ist zwölf Uhr."
    assert row["model"] == "gpt-4o-mini" and row["input_tokens"] == 9 and row["latency_ms"] > 0

    # 2. logs that arrive after their trace was stored (a batching log processor) rewrite the stored span
    with otel.start_as_current_span("handle question") as root2, otel.start_as_current_span("chat") as llm2:
        llm2.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"})
    trace_id2 = format(root2.get_span_context().trace_id, "032x")
    assert _stored(live, trace_id2)["spans"][0]["children"][0]["output_state"] == "missing"
    event("gen_ai.user.message", {"content": "现在几点？"}, llm2)
    event("gen_ai.choice", {"index": 0, "message": {"content": "十二点。"}}, llm2)
    child2 = _stored(live, trace_id2)["spans"][0]["children"][0]
    assert child2["inputs"]["messages"] == [{"role": "user", "content": "现在几点？"}]
    assert child2["outputs"] == [{"role": "assistant", "content": "十二点。"}]
    row2 = _listed(live, trace_id2)
    assert row2["input_preview"] == "现在几点？" and row2["output_preview"] == "十二点。"
    assert row2["span_count"] == 2  # rewritten, not added
    provider.shutdown()
    logs.shutdown()


def test_genai_parts_messages_and_openinference_messages(live):
    parts = _request(
        _span("aa" * 16, "a1" * 8, "handle", {}),
        _span("aa" * 16, "a2" * 8, "chat gpt-4o", {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
            "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Answer in French."}]),
            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]),
            "gen_ai.output.messages": json.dumps([{"role": "assistant", "finish_reason": "stop",
                                                    "parts": [{"type": "text", "content": "Bonjour"}]}])},
              parent="a1" * 8, start=1))
    response = {"id": "chatcmpl-1", "choices": [{"message": {"role": "assistant", "content": "Pin it."}}]}
    openinference = _request(
        _span("bb" * 16, "b1" * 8, "agent", {"openinference.span.kind": "CHAIN"}),
        _span("bb" * 16, "b2" * 8, "ChatCompletion", {
            "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "llm.provider": "openai",
            "llm.token_count.prompt": 7, "llm.token_count.completion": 2,
            "input.value": json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}),
            "input.mime_type": "application/json", "output.value": json.dumps(response),
            "llm.input_messages.0.message.role": "system", "llm.input_messages.0.message.content": "Be brief.",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.contents.0.message_content.type": "text",
            "llm.input_messages.1.message.contents.0.message_content.text": "How do I pin a version?",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "Pin it."}, parent="b1" * 8, start=1))
    for body in (parts, openinference):
        resp = httpx.post(live.url + "/v1/traces", content=gzip.compress(json.dumps(body).encode()),
                          headers={"content-type": "application/json", "content-encoding": "gzip"})
        assert resp.status_code == 200
    chat = _stored(live, "aa" * 16)["spans"][0]["children"][0]
    assert [(m["role"], m["content"]) for m in chat["inputs"]["messages"]] == [
        ("system", "Answer in French."), ("user", "Hi")]
    assert chat["outputs"][0]["content"] == "Bonjour" and chat["outputs"][0]["finish_reason"] == "stop"
    assert _listed(live, "aa" * 16)["output_preview"] == "Bonjour"

    llm = _stored(live, "bb" * 16)["spans"][0]["children"][0]
    assert llm["kind"] == "llm" and llm["model"] == "gpt-4o-mini" and llm["provider"] == "openai"
    assert llm["inputs"]["messages"] == [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "How do I pin a version?"}]
    assert llm["outputs"] == [{"role": "assistant", "content": "Pin it."}]  # not the raw response JSON
    row = _listed(live, "bb" * 16)
    assert row["input_preview"] == "How do I pin a version?" and row["output_preview"] == "Pin it."
    assert (row["input_tokens"], row["output_tokens"]) == (7, 2)


def test_a_span_sent_twice_is_stored_once_without_writer_errors(live):
    tid = "cc" * 16
    root = _span(tid, "c1" * 8, "handle", {"input.value": "first question"})
    llm = _span(tid, "c2" * 8, "chat", {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 4,
                                        "gen_ai.usage.output_tokens": 1}, parent="c1" * 8, start=1)
    assert httpx.post(live.url + "/v1/traces", json=_request(llm, root)).status_code == 200
    _stored(live, tid)
    # the exporter retries (its first attempt timed out) and the retry carries a span of another trace too
    errors = live.state.store.writer.errors
    other = _span("dd" * 16, "d1" * 8, "other", {"input.value": "second question"})
    assert httpx.post(live.url + "/v1/traces", json=_request(llm, root, other)).status_code == 200
    assert _stored(live, "dd" * 16) is not None
    # a plain INSERT failed the batch on the duplicate key: retried item by item, with an error logged per span
    assert live.state.store.writer.errors == errors
    row = _listed(live, tid)
    assert row["span_count"] == 2 and row["input_tokens"] == 4 and row["output_tokens"] == 1
    assert row["input_preview"] == "first question"


def test_logs_without_content_events_or_bad_ids(live):
    body = {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"eventName": "app.started", "body": {"stringValue": "hello"}},
        {"eventName": "gen_ai.user.message", "body": {"kvlistValue": {"values": [_kv("content", "hi")]}}}]}]}]}
    assert httpx.post(live.url + "/v1/logs", json=body).status_code == 200  # nothing tied to a span: ignored
    body["resourceLogs"][0]["scopeLogs"][0]["logRecords"][1].update(traceId="zz", spanId="e1" * 8)
    resp = httpx.post(live.url + "/v1/logs", json=body)
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "resourceLogs.0.scopeLogs.0.logRecords.1.traceId"
    resp = httpx.post(live.url + "/v1/logs", content=b"\x00\xffnope", headers={"content-type": "application/x-protobuf"})
    assert resp.status_code == 400

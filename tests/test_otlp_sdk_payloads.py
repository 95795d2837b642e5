"""Traces from the instrumentation SDKs users already run, as those SDKs put them on the wire: the payloads under
tests/data/otlp_sdks/ were captured from real runs (the `openai` SDK calling fake_llm, English and Chinese
questions, one call failing with a 500) of

- Langfuse Python SDK 5.2.0 (`langfuse.openai` wrapper + `@observe`, `propagate_attributes(user_id, session_id)`),
  sent to `{LANGFUSE_HOST}/api/public/otel/v1/traces` with Basic auth, protobuf, gzip;
- OpenLLMetry `traceloop-sdk` 0.62.4 (`@workflow` / `@task`, association properties user_id / session_id);
- OpenLLMetry `opentelemetry-instrumentation-openai` 0.40.14 (the indexed `gen_ai.prompt.N.*` /
  `llm.request.type` / `llm.usage.total_tokens` names of releases before the GenAI conventions);
- OpenLIT 1.45.0 (`openlit.init()`: spans with `gen_ai.*` content and `gen_ai.usage.cost`, plus a
  `gen_ai.client.inference.operation.details` log record per call; it prices nothing offline: cost 0).

Each must land as flywheel traces with the model, content, tokens, cost, latency, error, session / user ids and
parent/child structure mapped, secrets masked, content kept once (in inputs/outputs, not again as attributes)."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import httpx
import pytest

from flywheel.server import otlp
from flywheel.tracing import genai_content, get_trace, list_traces, tracer

DATA = Path(__file__).parent / "data" / "otlp_sdks"


def _payload(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


def _by_name(name: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for span in otlp.to_spans(_payload(name), "default"):
        out.setdefault(span.name, []).append(span)
    return out


def _content_attrs(span) -> list[str]:
    from flywheel.tracing.otlp_conventions import is_content_key

    return [k for k in span.attributes if is_content_key(k)]


def test_langfuse_observations_map_to_flywheel_fields():
    spans = _by_name("langfuse_v5")
    (root,) = spans["handle-question"]
    ok_en, ok_zh, failed = spans["OpenAI-generation"]
    assert root.parent_id is None and all(s.parent_id == root.span_id for s in (ok_en, ok_zh, failed))
    assert root.kind == "other" and {ok_en.kind, ok_zh.kind, failed.kind} == {"llm"}
    assert root.inputs is None  # `{"args": [], "kwargs": {}}`: the decorated function took nothing
    assert root.outputs == ["Paris.", "巴黎。", "error: InternalServerError"]
    assert ok_en.inputs == {"messages": [
        {"role": "system", "content": "Be brief. Internal key sk-proj-SECRETSECRETSECRET123456"},
        {"role": "user", "content": "What is the capital of France?"}]}  # scrubbed by the sinks, see below
    assert ok_en.outputs == [{"role": "assistant", "content": "Paris."}]
    assert ok_zh.inputs == {"messages": [{"role": "user", "content": "法国的首都是哪里？"}]}
    assert ok_zh.outputs == [{"role": "assistant", "content": "巴黎。"}]
    a = ok_en.attributes
    assert a["gen_ai.request.model"] == "fake-model" and a["gen_ai.request.temperature"] == 0.2
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (17, 2)
    assert "gen_ai.request.max_tokens" not in a  # Langfuse sends "Infinity" for an unset max_tokens
    assert (a["flywheel.session_id"], a["flywheel.user_id"]) == ("s-7", "u-42")
    assert root.attributes["flywheel.session_id"] == "s-7"
    assert failed.error == "Error code: 500 - internal server error (injected by fake_llm)"
    assert failed.attributes["flywheel.cost_usd"] == 0 and failed.output_state == "missing"
    assert ok_en.end_ns is not None and ok_en.end_ns > ok_en.start_ns
    assert all(_content_attrs(s) == [] for s in (root, ok_en, ok_zh, failed))


def test_openllmetry_workflow_task_and_chat_spans():
    spans = _by_name("openllmetry_traceloop_sdk")
    (workflow,) = spans["handle_question.workflow"]
    (task,) = spans["answer.task"]
    chats = spans["openai.chat"]
    assert workflow.parent_id is None and task.parent_id == workflow.span_id
    assert all(c.parent_id == task.span_id and c.kind == "llm" for c in chats)
    assert workflow.kind == task.kind == "other"
    assert workflow.inputs == "capital?"  # traceloop.entity.input {"args": ["capital?"], "kwargs": {}}
    assert task.outputs == ["Paris.", "巴黎。", "error: InternalServerError"]
    for span in (workflow, task, *chats):
        assert (span.attributes["flywheel.session_id"], span.attributes["flywheel.user_id"]) == ("s-7", "u-42")
    en, zh, failed = sorted(chats, key=lambda s: s.start_ns)
    assert en.inputs["messages"][1] == {"role": "user", "parts": [
        {"content": "What is the capital of France?", "type": "text"}], "content": "What is the capital of France?"}
    assert zh.outputs[0]["content"] == "巴黎。" and zh.attributes["gen_ai.usage.input_tokens"] == 9
    assert failed.error and failed.attributes["error.type"] == "InternalServerError"
    assert all(_content_attrs(s) == [] for s in (workflow, task, *chats))


def test_openllmetry_legacy_indexed_attributes():
    en, zh, failed = sorted(_by_name("openllmetry_legacy_0_40")["openai.chat"], key=lambda s: s.start_ns)
    assert {en.kind, zh.kind, failed.kind} == {"llm"}  # from llm.request.type = "chat"
    assert en.inputs["messages"][0] == {"role": "system",
                                        "content": "Be brief. Internal key sk-proj-SECRETSECRETSECRET123456"}
    assert en.outputs == [{"finish_reason": "stop", "role": "assistant", "content": "Paris."}]
    assert zh.inputs == {"messages": [{"role": "user", "content": "法国的首都是哪里？"}]}
    a = zh.attributes
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"], a["gen_ai.usage.total_tokens"]) == (
        9, 3, 12)
    assert a["gen_ai.provider.name"] == "OpenAI" and a["gen_ai.operation.name"] == "chat"
    assert failed.error and failed.outputs is None
    assert _content_attrs(en) == []


def test_openlit_spans_and_details_logs():
    en, zh, failed = sorted(_by_name("openlit_traces")["chat fake-model"] + _by_name("openlit_traces")[
        "chat broken-model"], key=lambda s: s.start_ns)
    assert {en.kind, zh.kind, failed.kind} == {"llm"}
    # the system prompt comes as gen_ai.system_instructions AND inside gen_ai.input.messages: kept once
    assert [m["role"] for m in en.inputs["messages"]] == ["system", "user"]
    assert en.outputs[0]["content"] == "Paris." and zh.outputs[0]["content"] == "巴黎。"
    assert en.attributes["flywheel.cost_usd"] == 0 and en.attributes["gen_ai.usage.input_tokens"] == 17
    assert failed.error == "InternalServerError: Error code: 500 - internal server error (injected by fake_llm)"
    events = otlp.log_events(_payload("openlit_logs"))
    (first,) = [evs for (_, span_id), evs in events.items() if span_id == en.span_id]
    inputs, outputs = genai_content.from_events(first)
    assert [m["role"] for m in inputs] == ["system", "user"] and outputs[0]["content"] == "Paris."
    assert _content_attrs(en) == []


def _stored(live, trace_id: str, spans: int):
    for _ in range(100):
        tracer.flush()
        trace = get_trace(live.state.store, trace_id)
        if trace is not None and trace["status"] != "incomplete" and trace["span_count"] >= spans:
            return trace
    return get_trace(live.state.store, trace_id)


def _hex_trace_id(payload: dict) -> str:
    return base64.b64decode(payload["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]).hex()


def test_sdks_sent_to_flywheel_serve(live):
    pytest.importorskip("opentelemetry.proto")
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    key, _ = live.state.keys.create("langfuse-user")  # from here on the server requires a key
    langfuse = _payload("langfuse_v5")
    body = gzip.compress(ParseDict(langfuse, ExportTraceServiceRequest()).SerializeToString())
    headers = {"content-type": "application/x-protobuf", "content-encoding": "gzip",
               "authorization": "Basic " + base64.b64encode(f"pk-lf-anything:{key}".encode()).decode()}
    assert httpx.post(live.url + "/api/public/otel/v1/traces", content=body, headers=headers).status_code == 200
    bad = {**headers, "authorization": "Basic " + base64.b64encode(b"pk-lf-anything:sk-lf-wrong").decode()}
    assert httpx.post(live.url + "/api/public/otel/v1/traces", content=body, headers=bad).status_code == 401
    assert httpx.post(live.url + "/v1/metrics", content=b"", headers={
        "content-type": "application/x-protobuf", "authorization": f"Bearer {key}"}).status_code == 200
    assert httpx.post(live.url + "/v1/metrics", content=b"",
                      headers={"content-type": "application/x-protobuf"}).status_code == 401
    legacy = _payload("openllmetry_legacy_0_40")
    assert httpx.post(live.url + "/v1/traces", json=legacy,
                      headers={"authorization": f"Bearer {key}"}).status_code == 200

    trace = _stored(live, _hex_trace_id(langfuse), 4)
    assert trace["session_id"] == "s-7" and trace["user_id"] == "u-42"
    assert trace["input_tokens"] == 26 and trace["output_tokens"] == 5 and trace["error_count"] == 1
    # no cost in the payload: priced from the project's `gpt` alias (model fake-model, $0.125 per output token)
    assert trace["cost_usd"] == pytest.approx(5 * 0.125)
    listed = next(t for t in list_traces(live.state.store, last=500) if t["trace_id"] == trace["trace_id"])
    assert listed["input_preview"] == "What is the capital of France?"  # the root had no input of its own
    generations = trace["spans"][0]["children"]
    assert len(generations) == 3 and {g["kind"] for g in generations} == {"llm"}
    stored = json.dumps(trace, ensure_ascii=False)
    assert "sk-proj-SECRETSECRETSECRET123456" not in stored and "[REDACTED]" in stored
    assert "巴黎。" in stored and "langfuse.observation.input" not in stored

    legacy_trace = _stored(live, _hex_trace_id(legacy), 1)
    assert legacy_trace is not None and legacy_trace["spans"][0]["kind"] == "llm"

    auth = {"authorization": f"Bearer {key}"}
    openlit = _payload("openlit_traces")
    assert httpx.post(live.url + "/v1/logs", json=_payload("openlit_logs"), headers=auth).status_code == 200
    assert httpx.post(live.url + "/v1/traces", json=openlit, headers=auth).status_code == 200
    lit = _stored(live, _hex_trace_id(openlit), 1)
    assert lit["cost_usd"] == pytest.approx(2 * 0.125)  # OpenLIT's cost 0 (no price offline): flywheel.yaml's
    (span,) = lit["spans"]
    assert span["attributes"]["flywheel.cost_priced_by"] == "flywheel.yaml"
    assert span["inputs"]["messages"][0]["content"] == "Be brief. Internal key [REDACTED]"
    assert legacy_trace is not None and legacy_trace["spans"][0]["kind"] == "llm"


def test_kind_and_alias_table():
    from flywheel.tracing import otlp_conventions as conv

    assert conv.kind({"gen_ai.operation.name": "invoke_agent", "traceloop.span.kind": "tool"}) == "tool"
    assert conv.kind({"openinference.span.kind": "RETRIEVER"}) == "retrieval"
    assert conv.kind({"langfuse.observation.type": "generation"}) == "llm"
    assert conv.kind({"traceloop.span.kind": "workflow"}) == conv.kind({}) == "other"
    # the sender's own flywheel name wins; a JSON usage object is read field by field; non-numbers are dropped
    attrs = conv.normalise({"gen_ai.usage.input_tokens": 5, "llm.usage.prompt_tokens": 9,
                            "langfuse.observation.usage_details": '{"input": 7, "output": 3}',
                            "langfuse.observation.model.parameters": '{"max_tokens": "Infinity"}'})
    assert attrs["gen_ai.usage.input_tokens"] == 5 and attrs["gen_ai.usage.output_tokens"] == 3
    assert "gen_ai.request.max_tokens" not in attrs

"""Traces from Pydantic Logfire, Pydantic AI, MLflow and opentelemetry-instrumentation-openai-v2, as those SDKs put
them on the wire. The payloads under tests/data/otlp_sdks/ (`*_traces.json`, `*_logs.json`) were captured once by
`python scripts/capture_otlp_sdk_payloads.py SCENARIO` (see that script: the official `openai` SDK or a Pydantic
AI agent calling fake_llm — an English and a Chinese question, a tool round trip, a call failing with a 500 —
under a span with user and session ids) with

- logfire 5.4.0 (`logfire.configure(send_to_logfire=False)` + OTEL_EXPORTER_OTLP_ENDPOINT,
  `instrument_openai` → logfire_openai, `instrument_pydantic_ai` → logfire_pydantic_ai);
- pydantic-ai-slim 2.68.0 (`Agent.instrument_all()`, formerly `instrument=True`, on a plain OTel SDK →
  pydantic_ai: `gen_ai.input.messages`, `gen_ai.system_instructions`, `gen_ai.tool.definitions`,
  `pydantic_ai.all_messages`, `final_result`, `execute_tool` spans);
- mlflow-tracing 3.17.2 (`mlflow.openai.autolog()` + `@mlflow.trace`, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT →
  mlflow: `mlflow.*` attributes, every value JSON-encoded; with MLFLOW_ENABLE_OTEL_GENAI_SEMCONV=true →
  mlflow_genai_semconv);
- opentelemetry-instrumentation-openai-v2 2.4b0 with OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental and
  OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY (openai_v2_span) or EVENT_ONLY
  (openai_v2_event_only: `gen_ai.client.inference.operation.details` log records), and 2.1b0 with `true` (the
  event mode of releases before 2.4: `gen_ai.user.message` / `gen_ai.choice` … log records, openai_v2_events).

No SDK is needed to run these tests; tests/test_otlp_sdks_live.py runs the SDKs themselves when installed."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from flywheel.server import otlp
from flywheel.tracing import genai_content, get_trace, list_traces, tracer
from flywheel.tracing.otlp_conventions import is_content_key

DATA = Path(__file__).parent / "data" / "otlp_sdks"
SYSTEM = "Be brief. Internal key sk-proj-SECRETSECRETSECRET123456"
TOOL_CALL = {"id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def _payload(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


def _spans(name: str) -> list:
    spans = sorted(otlp.to_spans(_payload(name), "default"), key=lambda s: s.start_ns)
    assert all([k for k in s.attributes if is_content_key(k)] == [] for s in spans)  # content kept once
    return spans


def _roles(span) -> list[str]:
    return [m["role"] for m in span.inputs["messages"]]


def _tool_calls(message: dict) -> list[dict]:
    return [{**c, "function": {**c["function"], "arguments": json.loads(c["function"]["arguments"])}}
            for c in message["tool_calls"]]


def _check_openai_calls(chats: list, *, parts: bool) -> None:
    """The five openai SDK calls of the capture script, as model spans."""
    en, zh, ask, answer, failed = chats
    assert {s.kind for s in chats} == {"llm"}
    assert [(m["role"], m["content"]) for m in en.inputs["messages"]] == [
        ("system", SYSTEM), ("user", "What is the capital of France?")]
    assert en.outputs[0]["content"] == "Paris." and zh.outputs[0]["content"] == "巴黎。"
    assert zh.inputs["messages"][-1]["content"] == "法国的首都是哪里？"
    a = en.attributes
    assert a["gen_ai.request.model"] == "fake-model" and a["gen_ai.request.temperature"] == 0.2
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (17, 2)
    assert (zh.attributes["gen_ai.usage.input_tokens"], zh.attributes["gen_ai.usage.output_tokens"]) == (9, 3)
    # the model asked for the tool: its call in OpenAI's shape (from GenAI `tool_call` parts when sent so)
    call = ask.outputs[0]
    assert call["content"] is None and _tool_calls(call) == [
        {**TOOL_CALL, "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
    assert ask.outputs[0]["finish_reason"] == "tool_calls"
    tool_result = answer.inputs["messages"][-1]
    assert (tool_result["role"], tool_result["tool_call_id"]) == ("tool", "call_w1")
    assert json.loads(tool_result["content"]) == {"temp": 21}
    assert answer.outputs[0]["content"] == "It is 21 °C in Paris."
    assert failed.error and "internal server error (injected by fake_llm)" in failed.error
    assert failed.outputs is None and failed.output_state == "missing"
    assert failed.attributes["gen_ai.request.model"] == "broken-model"
    assert ("parts" in en.inputs["messages"][0]) is parts


def test_logfire_instrument_openai():
    root, *chats = _spans("logfire_openai_traces")
    assert root.name == "handle question" and root.parent_id is None and root.kind == "other"
    assert all(c.parent_id == root.span_id for c in chats)
    _check_openai_calls(chats, parts=True)
    assert chats[0].attributes["gen_ai.provider.name"] == "openai"
    assert "get_weather" in chats[2].attributes["gen_ai.tool.definitions"]  # the tools offered: not content
    assert chats[-1].error.startswith("InternalServerError: Error code: 500")  # from the span's exception event
    # Logfire's scrubber replaced session.id (its name matches "session"): not taken for an id
    assert root.attributes["flywheel.user_id"] == "u-42"
    assert "flywheel.session_id" not in root.attributes and "session.id" not in root.attributes


def _check_pydantic_ai(spans: list, *, logfire: bool) -> None:
    by_name: dict[str, list] = {}
    for s in spans:
        by_name.setdefault(s.name, []).append(s)
    (root,) = by_name["handle question"]
    weather, capital = by_name["invoke_agent weather_agent"]
    (broken,) = by_name["invoke_agent broken_agent"]
    (tool,) = by_name["execute_tool get_weather"]
    ask, answer, zh = by_name["chat fake-model"]
    (failed,) = by_name["chat broken-model"]
    assert {weather.parent_id, capital.parent_id, broken.parent_id} == {root.span_id}
    assert ask.parent_id == answer.parent_id == tool.parent_id == weather.span_id and zh.parent_id == capital.span_id
    assert {weather.kind, broken.kind, root.kind} == {"other"} and tool.kind == "tool"
    assert {ask.kind, answer.kind, zh.kind, failed.kind} == {"llm"}
    # the agent run: its conversation in, its final result out
    assert _roles(weather) == ["system", "user", "assistant", "tool", "assistant"]
    assert weather.inputs["messages"][0]["content"] == SYSTEM and weather.outputs == "It is 21 °C in Paris."
    assert capital.outputs == "巴黎。" and capital.inputs["messages"][1]["content"] == "法国的首都是哪里？"
    # the tool span: arguments in, result out
    assert (tool.inputs, tool.outputs) == ({"city": "Paris"}, {"temp": 21})
    assert tool.attributes["gen_ai.tool.name"] == "get_weather"
    # the model calls: system instructions first, the tool call and its result in OpenAI's shape
    assert _roles(ask) == ["system", "user"] and ask.inputs["messages"][0]["content"] == SYSTEM
    assert _tool_calls(ask.outputs[0]) == [{**TOOL_CALL, "function": {"name": "get_weather",
                                                                      "arguments": {"city": "Paris"}}}]
    assert _roles(answer) == ["system", "user", "assistant", "tool"]
    assert answer.inputs["messages"][3]["tool_call_id"] == "call_w1"
    assert json.loads(answer.inputs["messages"][3]["content"]) == {"temp": 21}
    assert answer.outputs[0]["content"] == "It is 21 °C in Paris."
    assert (ask.attributes["gen_ai.usage.input_tokens"], ask.attributes["gen_ai.usage.output_tokens"]) == (17, 9)
    assert zh.outputs[0]["content"] == "巴黎。" and ask.attributes["gen_ai.request.model"] == "fake-model"
    assert failed.error.startswith("ModelServerError: status_code: 500") and broken.error == failed.error
    # Pydantic AI's conversation id is each model span's session; the trace's comes from its root
    assert ask.attributes["flywheel.session_id"] == ask.attributes["gen_ai.conversation.id"]
    assert root.attributes["flywheel.user_id"] == "u-42"
    assert ("flywheel.session_id" in root.attributes) is not logfire  # Logfire scrubs session.id


def test_pydantic_ai_instrumented():
    _check_pydantic_ai(_spans("pydantic_ai_traces"), logfire=False)


def test_logfire_instrument_pydantic_ai():
    _check_pydantic_ai(_spans("logfire_pydantic_ai_traces"), logfire=True)


def test_mlflow_tracing():
    spans = _spans("mlflow_traces")
    root = spans[0]
    chats = [s for s in spans if s.name == "Completions"]
    (tool,) = [s for s in spans if s.name == "get_weather"]
    assert root.name == "handle_question" and root.parent_id is None and root.kind == "other"
    assert all(s.parent_id == root.span_id for s in spans[1:])
    # MLflow JSON-encodes every attribute: read decoded
    assert (root.inputs, root.outputs) == ({"question": "capital?"}, "done")
    assert (root.attributes["flywheel.session_id"], root.attributes["flywheel.user_id"]) == ("s-7", "u-42")
    assert root.attributes["mlflow.spanType"] == "AGENT"
    _check_openai_calls(chats, parts=False)
    assert chats[0].attributes["gen_ai.usage.total_tokens"] == 19
    assert tool.kind == "tool" and (tool.inputs, tool.outputs) == ({"city": "Paris"}, {"temp": 21})
    # the failed call: error status without a message, its exception event says what happened
    assert chats[-1].error == "InternalServerError: Error code: 500 - internal server error (injected by fake_llm)"


def test_mlflow_tracing_in_genai_conventions():
    """MLFLOW_ENABLE_OTEL_GENAI_SEMCONV=true: GenAI names, MLflow's own gone, but the values it JSON-encoded for
    the caller (session.id …) still are: the resource's telemetry.sdk.name says to decode them."""
    root, *spans = _spans("mlflow_genai_semconv_traces")
    assert root.name == "invoke_agent handle_question" and root.kind == "other"
    assert (root.attributes["flywheel.session_id"], root.attributes["flywheel.user_id"]) == ("s-7", "u-42")
    chats = [s for s in spans if s.kind == "llm"]
    (tool,) = [s for s in spans if s.kind == "tool"]
    assert len(chats) == 5 and (tool.inputs, tool.outputs) == ({"city": "Paris"}, {"temp": 21})
    en, zh, ask, answer, failed = chats
    assert [m["role"] for m in en.inputs["messages"]] == ["system", "user"] and en.outputs[0]["content"] == "Paris."
    assert zh.outputs[0]["content"] == "巴黎。" and en.attributes["gen_ai.usage.output_tokens"] == 2
    assert ask.outputs[0]["tool_calls"][0]["id"] == "call_w1"
    assert answer.inputs["messages"][-1]["tool_call_id"] == "call_w1"
    assert failed.error == "InternalServerError: Error code: 500 - internal server error (injected by fake_llm)"
    assert en.attributes["model"] == "fake-model"  # decoded


def test_openai_v2_latest_conventions_on_the_span():
    root, *chats = _spans("openai_v2_span_traces")
    assert all(c.parent_id == root.span_id for c in chats)
    _check_openai_calls(chats, parts=True)
    assert (root.attributes["flywheel.session_id"], root.attributes["flywheel.user_id"]) == ("s-7", "u-42")


@pytest.mark.parametrize("mode", ["openai_v2_event_only", "openai_v2_events"])
def test_openai_v2_content_as_log_events(mode):
    _root, *chats = _spans(f"{mode}_traces")
    assert all(c.inputs is None and c.output_state == "missing" for c in chats)  # no content on the spans
    events = otlp.log_events(_payload(f"{mode}_logs"))
    joined = [otlp._with_events(c, events.get((c.trace_id, c.span_id), [])) for c in chats]
    _check_openai_calls(joined, parts=mode == "openai_v2_event_only")


def _stored(live, trace_id: str, spans: int) -> dict:
    for _ in range(100):
        tracer.flush()
        trace = get_trace(live.state.store, trace_id)
        if trace is not None and trace["status"] != "incomplete" and trace["span_count"] >= spans:
            return trace
    raise AssertionError(f"trace {trace_id} was not stored with {spans} spans")


def _post(url: str, name: str, headers: dict | None = None) -> str:
    """`name`'s payload as the SDK sent it (protobuf); its trace id."""
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    payload = _payload(name)
    logs = "resourceLogs" in payload
    body = ParseDict(payload, ExportLogsServiceRequest() if logs else ExportTraceServiceRequest())
    resp = httpx.post(url + ("/v1/logs" if logs else "/v1/traces"), content=body.SerializeToString(),
                      headers={"content-type": "application/x-protobuf", **(headers or {})})
    assert resp.status_code == 200, resp.text
    first = payload["resourceLogs" if logs else "resourceSpans"][0]
    record = (first["scopeLogs"][0]["logRecords"] if logs else first["scopeSpans"][0]["spans"])[0]
    return base64.b64decode(record["traceId"]).hex()


def _model_spans(trace: dict) -> list[dict]:
    out, todo = [], list(trace["spans"])
    while todo:
        span = todo.pop()
        out += [span] if span["kind"] == "llm" else []
        todo += span.get("children", [])
    return sorted(out, key=lambda s: s["start_ns"])


def test_each_sdk_lands_in_flywheel_serve(live):
    pytest.importorskip("opentelemetry.proto")
    expected = {"logfire_openai_traces": 6, "logfire_pydantic_ai_traces": 9, "pydantic_ai_traces": 9,
                "mlflow_traces": 7, "mlflow_genai_semconv_traces": 7, "openai_v2_span_traces": 6}
    for name, count in expected.items():
        trace = _stored(live, _post(live.url, name), count)
        row = next(t for t in list_traces(live.state.store, last=500) if t["trace_id"] == trace["trace_id"])
        assert row["user_id"] == "u-42", name
        assert row["session_id"] == (None if name.startswith("logfire") else "s-7"), name
        assert row["error_count"] >= 1 and row["model"] in ("fake-model", "broken-model"), name
        assert row["input_preview"], name
        llm = _model_spans(trace)
        assert all(s["model"] for s in llm if not s["error"]) and sum(s["output_tokens"] or 0 for s in llm) == row["output_tokens"]
        # no SDK sent a cost: each call priced from flywheel.yaml's `gpt` alias ($0.125 per output token)
        assert row["cost_usd"] == pytest.approx(row["output_tokens"] * 0.125), name
        priced = [s for s in llm if s["output_tokens"]]
        assert priced and all(s["attributes"]["flywheel.cost_priced_by"] == "flywheel.yaml" for s in priced)
        stored = json.dumps(trace, ensure_ascii=False)
        assert "sk-proj-SECRETSECRETSECRET123456" not in stored and "巴黎。" in stored, name
        page = httpx.get(f"{live.url}/ui/traces/{trace['trace_id']}")
        assert page.status_code == 200 and "fake-model" in page.text, name

    # content sent as log records: before their spans (event mode) or after (EVENT_ONLY), joined either way
    for mode, logs_first in (("openai_v2_events", True), ("openai_v2_event_only", False)):
        names = [f"{mode}_logs", f"{mode}_traces"] if logs_first else [f"{mode}_traces", f"{mode}_logs"]
        trace_id, _ = (_post(live.url, n) for n in names)  # both posted, in that order
        llm = _model_spans(_stored(live, trace_id, 6))
        assert [s["outputs"][0]["content"] for s in llm[:2]] == ["Paris.", "巴黎。"], mode
        assert llm[2]["outputs"][0]["tool_calls"][0]["id"] == "call_w1", mode
        assert llm[0]["inputs"]["messages"][0]["content"] == "Be brief. Internal key [REDACTED]", mode


def test_capture_content_false_drops_what_each_sdk_sent(tmp_path, server_llm):
    pytest.importorskip("opentelemetry.proto")
    from server_support import PROJECT_YAML, serve_project

    server = serve_project(tmp_path, PROJECT_YAML.format(base=server_llm.base_url)
                           + "tracing: {capture_content: false}\n")
    try:
        for name, count in (("pydantic_ai_traces", 9), ("mlflow_traces", 7), ("logfire_openai_traces", 6)):
            trace = _stored(server, _post(server.url, name), count)
            stored = json.dumps(trace, ensure_ascii=False)
            for text in ("What is the capital of France?", "巴黎。", "Paris", '"temp"', '\\"temp\\"', "capital?"):
                assert text not in stored, (name, text)
            assert trace["input_tokens"] > 0 and _model_spans(trace)[0]["model"] == "fake-model"
    finally:
        server.stop()


def test_tool_parts_and_choices_read_as_openai_messages():
    msgs = genai_content.messages([
        {"role": "assistant", "parts": [{"type": "text", "content": "Let me look."},
                                        {"type": "tool_call", "id": "c1", "name": "f", "arguments": {"x": 1}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": {"y": 2}}]},
        {"role": "user", "parts": [{"type": "tool_call_response", "id": "c2", "result": "ok"},
                                   {"type": "tool_call_response", "id": "c3", "result": "fine"}]}])
    assert msgs[0]["content"] == "Let me look." and msgs[0]["tool_calls"] == [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}]
    assert (msgs[1]["role"], msgs[1]["tool_call_id"], msgs[1]["content"]) == ("tool", "c1", '{"y": 2}')
    assert (msgs[2]["role"], msgs[2]["content"]) == ("tool", "ok\nfine") and "tool_call_id" not in msgs[2]
    _, outputs = genai_content.content({"output.value": json.dumps(
        {"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hi",
                                                                        "refusal": None}}]})})
    assert outputs == [{"role": "assistant", "content": "Hi", "finish_reason": "stop"}]
    inputs, _ = genai_content.content({"input.value": json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": "Q"}]})})
    assert inputs == {"messages": [{"role": "user", "content": "Q"}]}

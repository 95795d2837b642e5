"""Capture what an instrumentation SDK really puts on the OTLP wire, for tests/data/otlp_sdks/.

    python scripts/capture_otlp_sdk_payloads.py SCENARIO [OUT_DIR]
    python scripts/capture_otlp_sdk_payloads.py SCENARIO --endpoint http://127.0.0.1:8300   # to flywheel serve

One scenario per process (OpenTelemetry's global providers are set once): it starts fake_llm and a recorder
that answers OTLP/HTTP like a collector and keeps every body, points the SDK's exporter at the recorder, runs
the same calls every time — the official `openai` SDK asking fake_llm an English question, a Chinese one,
a question answered with a tool call, and one call that fails with a 500 — under a span carrying user and
session ids, then writes `<scenario>_traces.json` (and `<scenario>_logs.json` when the SDK sent logs) in
OTLP's protobuf-JSON form (`MessageToDict`: base64 ids), the form the tests replay. With `--endpoint` the SDK
exports to that OTLP/HTTP endpoint instead (tests/test_otlp_sdks_live.py: a real `flywheel serve`) and nothing is
recorded. Needs the SDK installed
(not a flywheel dependency): logfire, pydantic-ai-slim[openai], mlflow-tracing,
opentelemetry-instrumentation-openai-v2.

Scenarios: logfire_openai, logfire_pydantic_ai, pydantic_ai, mlflow, mlflow_genai_semconv, openai_v2_events (the event mode of
opentelemetry-instrumentation-openai-v2 releases up to 2.1b0, which later releases no longer have),
openai_v2_event_only, openai_v2_span.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from flywheel.testing.fake_llm import FakeLLM, Fault, ToolCall

SYSTEM = "Be brief. Internal key sk-proj-SECRETSECRETSECRET123456"
USER, SESSION = "u-42", "s-7"


class Recorder(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies: list[tuple[str, bytes]] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        if "json" in (self.headers.get("content-type") or ""):
            raise SystemExit("expected protobuf")
        self.server.bodies.append((self.path, raw))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _script(llm: FakeLLM) -> None:
    llm.add(r"weather", ToolCall("get_weather", {"city": "Paris"}, id="call_w1"))
    llm.add(r'"temp"', "It is 21 °C in Paris.")
    llm.add(r"capital of France", "Paris.")
    llm.add(r"法国的首都", "巴黎。")


def _weather(city: str) -> dict[str, int]:
    return {"temp": 21}


def _openai_calls(client: Any, run_tool: Callable[[str], dict[str, int]] = _weather) -> None:
    """English, Chinese, a tool round trip, a failure; each its own request."""
    client.chat.completions.create(model="fake-model", temperature=0.2, messages=[
        {"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is the capital of France?"}])
    client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "法国的首都是哪里？"}])
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                               "parameters": {"type": "object",
                                                              "properties": {"city": {"type": "string"}}}}}]
    asked = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(model="fake-model", messages=asked, tools=tools)
    call = first.choices[0].message.tool_calls[0]
    client.chat.completions.create(model="fake-model", tools=tools, messages=[
        *asked, first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps(run_tool(**json.loads(call.function.arguments)))}])
    with contextlib.suppress(Exception):  # the failure is the point: its span carries the error
        client.chat.completions.create(
            model="broken-model", messages=[{"role": "user", "content": "capital of France?"}])


def _openai(llm: FakeLLM) -> Any:
    import openai

    return openai.OpenAI(base_url=llm.base_url, api_key="sk-test", max_retries=0)  # the 500 fails at once


def logfire_openai(llm: FakeLLM) -> Callable[[], None]:
    import logfire

    logfire.configure(send_to_logfire=False, service_name="support-bot", console=False)
    client = _openai(llm)
    logfire.instrument_openai(client)
    with logfire.span("handle question", **{"user.id": USER, "session.id": SESSION}):
        _openai_calls(client)
    return logfire.force_flush


def _pydantic_ai_run(llm: FakeLLM) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel("fake-model", provider=OpenAIProvider(base_url=llm.base_url, api_key="sk-test"))
    agent = Agent(model, instructions=SYSTEM, name="weather_agent")

    @agent.tool_plain
    def get_weather(city: str) -> dict[str, int]:
        """Weather in a city."""
        return {"temp": 21}

    agent.run_sync("What is the weather in Paris?")
    agent.run_sync("法国的首都是哪里？")
    broken = Agent(OpenAIChatModel("broken-model", provider=OpenAIProvider(
        base_url=llm.base_url, api_key="sk-test")), name="broken_agent")
    with contextlib.suppress(Exception):
        broken.run_sync("capital of France?")


def logfire_pydantic_ai(llm: FakeLLM) -> Callable[[], None]:
    import logfire

    logfire.configure(send_to_logfire=False, service_name="support-bot", console=False)
    logfire.instrument_pydantic_ai()
    with logfire.span("handle question", **{"user.id": USER, "session.id": SESSION}):
        _pydantic_ai_run(llm)
    return logfire.force_flush


def pydantic_ai(llm: FakeLLM) -> Callable[[], None]:
    """Pydantic AI's own `instrument=True` on a plain OpenTelemetry SDK (no logfire configure)."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    from pydantic_ai import Agent

    Agent.instrument_all()  # what `instrument=True` on each Agent did before Pydantic AI 2
    with trace.get_tracer("app").start_as_current_span("handle question", attributes={
            "user.id": USER, "session.id": SESSION}):
        _pydantic_ai_run(llm)
    return provider.shutdown


def mlflow(llm: FakeLLM) -> Callable[[], None]:
    os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT")  # MLflow reads the traces endpoint only
    import mlflow as ml

    ml.openai.autolog()
    client = _openai(llm)

    @ml.trace(name="handle_question", span_type="AGENT")
    def handle(question: str) -> str:
        # session_id / user land in the trace's metadata, which MLflow's OTLP export does not send (and trace
        # tags break the root span's export in mlflow-tracing 3.17): span attributes travel
        ml.update_current_trace(session_id=SESSION, user=USER)
        ml.get_current_active_span().set_attributes({"session.id": SESSION, "user.id": USER})
        _openai_calls(client, run_tool=ml.trace(_weather, name="get_weather", span_type="TOOL"))
        return "done"

    handle("capital?")
    from mlflow.tracing.provider import provider

    return provider.get().force_flush


def mlflow_genai_semconv(llm: FakeLLM) -> Callable[[], None]:
    """MLflow's export translated to the OTel GenAI conventions (MLFLOW_ENABLE_OTEL_GENAI_SEMCONV=true)."""
    os.environ["MLFLOW_ENABLE_OTEL_GENAI_SEMCONV"] = "true"
    return mlflow(llm)


def _openai_v2(llm: FakeLLM) -> Callable[[], None]:
    from opentelemetry import _logs, trace
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": "support-bot"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
    _logs.set_logger_provider(logs)
    try:  # the event API the releases of the event mode emit through (gone from opentelemetry-api 1.39)
        from opentelemetry import _events
        from opentelemetry.sdk._events import EventLoggerProvider

        _events.set_event_logger_provider(EventLoggerProvider(logs))
    except ImportError:
        pass
    OpenAIInstrumentor().instrument()
    client = _openai(llm)
    with trace.get_tracer("app").start_as_current_span("handle question", attributes={
            "user.id": USER, "session.id": SESSION}):
        _openai_calls(client)

    def flush() -> None:
        provider.shutdown()
        logs.shutdown()
    return flush


def openai_v2_events(llm: FakeLLM) -> Callable[[], None]:
    """The event mode: OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true, content as gen_ai.* log events."""
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"
    return _openai_v2(llm)


def openai_v2_event_only(llm: FakeLLM) -> Callable[[], None]:
    """The latest experimental conventions with content as gen_ai.client.inference.operation.details log events."""
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "EVENT_ONLY"
    return _openai_v2(llm)


def openai_v2_span(llm: FakeLLM) -> Callable[[], None]:
    """The latest experimental conventions with content on the span (gen_ai.input.messages …)."""
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_ONLY"
    return _openai_v2(llm)


SCENARIOS: dict[str, Callable[[FakeLLM], Callable[[], Any]]] = {
    f.__name__: f for f in (logfire_openai, logfire_pydantic_ai, pydantic_ai, mlflow, mlflow_genai_semconv,
                            openai_v2_events, openai_v2_event_only, openai_v2_span)}


def _merge(bodies: list[bytes], signal: str) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    top = "resourceSpans" if signal == "traces" else "resourceLogs"
    out: dict[str, Any] = {top: []}
    for raw in bodies:
        msg = ExportTraceServiceRequest() if signal == "traces" else ExportLogsServiceRequest()
        msg.ParseFromString(raw)
        out[top].extend(MessageToDict(msg).get(top, []))
    return out


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in SCENARIOS:
        print(__doc__)
        return 2
    name, rest = argv[0], argv[1:]
    endpoint = rest[rest.index("--endpoint") + 1] if "--endpoint" in rest else None
    out_dir = Path(rest[0] if rest and not endpoint else "tests/data/otlp_sdks")
    recorder = None if endpoint else Recorder()
    url = endpoint or (recorder.url if recorder else "")
    os.environ.update({"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                       "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": url + "/v1/traces",
                       "OTEL_METRICS_EXPORTER": "none", "OTEL_SERVICE_NAME": "support-bot"})
    with FakeLLM() as llm:
        _script(llm)
        llm.fail(Fault.SERVER_ERROR, model="broken-model", times=None)
        flush = SCENARIOS[name](llm)
        flush()
    if recorder is None:
        return 0
    for signal in ("traces", "logs"):
        bodies = [raw for path, raw in recorder.bodies if path.endswith("/v1/" + signal)]
        if bodies:
            path = out_dir / f"{name}_{signal}.json"
            path.write_text(json.dumps(_merge(bodies, signal), ensure_ascii=False, indent=1) + "\n",
                            encoding="utf-8")
            print(f"{path}: {len(bodies)} request(s), {path.stat().st_size} bytes")
    recorder.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

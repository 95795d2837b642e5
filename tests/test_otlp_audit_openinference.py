"""OpenInference's `openinference-instrumentation-openai` on the official `openai` SDK, exporting OTLP (protobuf)
to a real `flywheel serve`: a Chinese question, a model call that asks for a tool, and a failed call under the
app's own span. The SDK runs in its own process (it patches `openai` globally); skipped when not installed (not
a flywheel dependency)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import pytest

from flywheel.testing.fake_llm import Fault, ToolCall
from flywheel.tracing import get_trace, tracer

SCRIPT = textwrap.dedent("""
    import sys
    import openai
    from openinference.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    endpoint, base_url = sys.argv[1], sys.argv[2]
    provider = TracerProvider(resource=Resource.create({"service.name": "shop-bot"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint + "/v1/traces")))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    client = openai.OpenAI(base_url=base_url, api_key="sk-test-abcdefghijklmnopqrstuvwxyz012345", max_retries=0)
    tools = [{"type": "function", "function": {"name": "track", "parameters": {"type": "object"}}}]
    with provider.get_tracer("app").start_as_current_span("handle") as root:
        root.set_attribute("user.id", "u-7")
        client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "订单到哪了？"}])
        client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "track A-1"}],
                                       tools=tools)
        try:
            client.chat.completions.create(model="broken-model", messages=[{"role": "user", "content": "x"}])
        except openai.APIError:
            pass
    provider.shutdown()
    print(format(root.get_span_context().trace_id, "032x"))
""")


def _walk(spans: list[dict]) -> list[dict]:
    out: list[dict] = []
    for span in spans:
        out += [span, *_walk(span.get("children", []))]
    return out


def test_openinference_openai_spans_become_a_flywheel_trace(live, server_llm):
    if importlib.util.find_spec("openinference.instrumentation.openai") is None:
        pytest.skip("openinference-instrumentation-openai is not installed (not a flywheel dependency)")
    server_llm.reset()
    server_llm.add("订单", "已发货，明天送达。")
    server_llm.add("track", ToolCall("track", {"order": "A-1"}, id="call_1"))
    server_llm.fail(Fault.SERVER_ERROR, model="broken-model", times=None)
    run = subprocess.run([sys.executable, "-c", SCRIPT, live.url, server_llm.base_url], capture_output=True,
                         text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    trace_id = run.stdout.strip().splitlines()[-1]
    trace = None
    for _ in range(100):  # exported before the process ended: only the store's writer may lag
        tracer.flush()
        trace = get_trace(live.state.store, trace_id)
        if trace is not None and trace["span_count"] >= 4:
            break
    assert trace is not None and trace["span_count"] == 4 and trace["user_id"] == "u-7"
    assert trace["error_count"] == 1
    spans = _walk(trace["spans"])
    llm = sorted((s for s in spans if s["kind"] == "llm"), key=lambda s: s["start_ns"])
    assert [s["model"] for s in llm[:2]] == ["fake-model", "fake-model"] and llm[2]["error"]
    assert llm[0]["inputs"]["messages"][-1]["content"] == "订单到哪了？"
    assert "已发货，明天送达。" in str(llm[0]["outputs"])
    assert "track" in str(llm[1]["outputs"]) and "A-1" in str(llm[1]["outputs"])
    assert trace["input_tokens"] > 0 and trace["cost_usd"] == pytest.approx(trace["output_tokens"] * 0.125)
    assert "sk-test-abc" not in str(trace)

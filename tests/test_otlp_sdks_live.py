"""Each instrumentation SDK itself, exporting to a real `flywheel serve`: Pydantic Logfire, Pydantic AI, MLflow
tracing and opentelemetry-instrumentation-openai-v2, each run in its own process by
scripts/capture_otlp_sdk_payloads.py (`--endpoint`: the official `openai` SDK or a Pydantic AI agent calling
fake_llm — English and Chinese questions, a tool round trip, a failed call — under a span with user and session
ids). None of these SDKs is a flywheel dependency: a test whose SDK is not installed is skipped (its wire format
is covered without it by tests/test_otlp_sdk_payloads_genai.py, from payloads these SDKs sent)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from flywheel.tracing import get_trace, list_traces, tracer

SCRIPT = Path(__file__).parents[1] / "scripts" / "capture_otlp_sdk_payloads.py"
# scenario → (modules it needs, spans in its trace)
SCENARIOS = {
    "logfire_openai": (("logfire", "openai"), 6),
    "logfire_pydantic_ai": (("logfire", "pydantic_ai"), 9),
    "pydantic_ai": (("pydantic_ai",), 9),
    "mlflow": (("mlflow", "openai"), 7),
    "mlflow_genai_semconv": (("mlflow", "openai"), 7),
    "openai_v2_span": (("opentelemetry.instrumentation.openai_v2", "opentelemetry.util.genai.handler"), 6),
    "openai_v2_event_only": (("opentelemetry.instrumentation.openai_v2", "opentelemetry.util.genai.handler"), 6),
    # the event mode of the releases before 2.4, on the OpenTelemetry SDKs that still have the event API
    "openai_v2_events": (("opentelemetry.instrumentation.openai_v2", "opentelemetry._events"), 6),
}


def _missing(modules: tuple[str, ...]) -> str | None:
    for name in modules:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except ImportError:
            return name
    return None


def _model_spans(trace: dict) -> list[dict]:
    out, todo = [], list(trace["spans"])
    while todo:
        span = todo.pop()
        out += [span] if span["kind"] == "llm" else []
        todo += span.get("children", [])
    return sorted(out, key=lambda s: s["start_ns"])


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_sdk_exports_to_flywheel_serve(request, scenario):
    modules, span_count = SCENARIOS[scenario]
    missing = _missing(modules)
    if missing:
        pytest.skip(f"{missing} is not installed (not a flywheel dependency)")
    live = request.getfixturevalue("live")  # (started only when an SDK is there to send to it)
    tracer.flush()
    before = {t["trace_id"] for t in list_traces(live.state.store, last=500)}
    run = subprocess.run([sys.executable, str(SCRIPT), scenario, "--endpoint", live.url], capture_output=True,
                         text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    new: list[dict] = []
    for _ in range(100):  # the SDK exported before its process ended: only the store's writer may lag
        tracer.flush()
        new = [t for t in list_traces(live.state.store, last=500) if t["trace_id"] not in before]
        if new and new[0]["span_count"] >= span_count and new[0]["status"] != "incomplete":
            break
    (row,) = new
    assert row["span_count"] == span_count and row["user_id"] == "u-42"
    assert row["session_id"] == (None if scenario.startswith("logfire") else "s-7")  # Logfire scrubs session.id
    assert row["error_count"] >= 1 and row["input_tokens"] > 0
    assert row["cost_usd"] == pytest.approx(row["output_tokens"] * 0.125)  # priced from flywheel.yaml
    trace = get_trace(live.state.store, row["trace_id"])
    llm = _model_spans(trace)
    assert llm and all(s["model"] in ("fake-model", "broken-model") for s in llm if not s["error"])
    answered = [s for s in llm if s["output_state"] == "ok"]
    assert answered and all(s["inputs"]["messages"] for s in answered)
    stored = json.dumps(trace, ensure_ascii=False)
    assert "巴黎。" in stored and "法国的首都是哪里？" in stored and "call_w1" in stored
    assert "sk-proj-SECRETSECRETSECRET123456" not in stored
    assert any(s["error"] for s in llm)

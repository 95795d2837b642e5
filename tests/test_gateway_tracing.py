"""Every gateway attempt is an `llm` span with GenAI attributes, under one `gateway.chat` span."""
# ruff: noqa: F811 - pytest fixtures imported from gateway_support are redefined as parameters

from __future__ import annotations

import pytest
from gateway_support import llm, server  # noqa: F401 - fixtures

from flywheel.config import ModelAlias, Price
from flywheel.errors import GatewayError
from flywheel.gateway import Gateway, RetryPolicy
from flywheel.testing.fake_llm import Fault
from flywheel.tracing import tracer
from flywheel.types import ChatRequest


@pytest.fixture
def gw(llm):
    return Gateway({
        "primary": ModelAlias(model="primary-model", version="2025-06-01", base_url=llm.base_url, max_retries=1,
                              fallbacks=["backup"], price=Price(input=1.0, output=2.0)),
        "backup": ModelAlias(model="backup-model", base_url=llm.base_url, price=Price(input=3.0, output=5.0)),
    }, retry=RetryPolicy(base_s=0.01, max_s=0.02))


def test_one_span_per_attempt_with_genai_attributes_and_parentage(gw, llm, spans):
    llm.fail(Fault.RATE_LIMIT, times=1, model="primary-model")
    llm.fail(Fault.SERVER_ERROR, times=1, model="primary-model")
    with tracer.span("my-app", "app") as app:
        result = gw.chat(ChatRequest.of("capital of France?", model="primary", metadata={"tenant": "acme"}))
    top = next(s for s in spans if s.name == "gateway.chat")
    attempts = sorted((s for s in spans if s.parent_id == top.span_id), key=lambda s: s.start_ns)
    assert top.parent_id == app.span_id and top.trace_id == app.trace_id == result.trace_id
    assert [s.kind for s in attempts] == ["llm"] * 3
    assert [s.attributes["flywheel.attempt"] for s in attempts] == [1, 2, 3]
    assert [s.attributes["flywheel.alias"] for s in attempts] == ["primary", "primary", "backup"]
    assert [s.attributes["gen_ai.request.model"] for s in attempts] == ["primary-model", "primary-model",
                                                                       "backup-model"]
    for s in attempts:
        assert s.attributes["gen_ai.operation.name"] == "chat"
        assert s.attributes["gen_ai.provider.name"] == "openai_compat"
        assert s.trace_id == result.trace_id
    failed1, failed2, ok = attempts
    assert failed1.attributes["flywheel.model.version"] == "2025-06-01"
    assert failed1.error and "429" in failed1.attributes["error.type"]
    assert failed2.attributes["http.response.status_code"] == 500
    assert "gen_ai.usage.input_tokens" not in failed1.attributes  # nothing reported, nothing charged
    assert failed1.attributes["flywheel.usage.estimated_input_tokens"] > 0
    assert ok.error is None and ok.outputs == "Paris."
    assert ok.attributes["gen_ai.response.model"] == "backup-model"
    assert ok.attributes["gen_ai.usage.input_tokens"] == result.usage.input_tokens
    assert ok.attributes["gen_ai.usage.output_tokens"] == result.usage.output_tokens
    assert ok.attributes["flywheel.cost_usd"] == pytest.approx(result.cost_usd)
    assert "flywheel.model.version" not in ok.attributes  # backup has no pinned version
    assert top.attributes["flywheel.attempts"] == 3 and top.attributes["flywheel.tenant"] == "acme"
    assert top.inputs == {"messages": [{"role": "user", "content": "capital of France?"}]}
    assert top.outputs == "Paris." and top.error is None
    # tokens and cost only on attempt spans, so summing spans never double counts
    assert "gen_ai.usage.input_tokens" not in top.attributes and "flywheel.cost_usd" not in top.attributes


def test_failed_call_records_the_error_on_every_span(gw, llm, spans):
    llm.fail(Fault.SERVER_ERROR, times=None, status=503)
    with pytest.raises(GatewayError):
        gw.chat(ChatRequest.of("capital?", model="primary"))
    top = next(s for s in spans if s.name == "gateway.chat")
    attempts = [s for s in spans if s.parent_id == top.span_id]
    assert len(attempts) == 5 and all(s.error for s in attempts)  # 2 on primary, 3 on backup
    assert top.error and "GatewayError" in top.error and top.output_state == "missing"
    assert tracer.current() is None


def test_spans_reach_the_store_with_tokens_and_cost(gw, llm, tmp_path):
    from flywheel.store import Store
    from flywheel.tracing import attach_store, get_trace

    store = Store.open(f"sqlite:///{tmp_path}/t.db")
    detach = attach_store(store)
    try:
        llm.fail(Fault.SERVER_ERROR, times=1)
        result = gw.chat(ChatRequest.of("capital?", model="primary"))
        tracer.flush()
        trace = get_trace(store, result.trace_id)
    finally:
        detach()
        store.close()
    assert trace is not None
    assert trace["input_tokens"] == result.usage.input_tokens
    assert trace["output_tokens"] == result.usage.output_tokens
    assert trace["cost_usd"] == pytest.approx(result.cost_usd)
    (root,) = trace["spans"]
    assert root["name"] == "gateway.chat"
    assert [c["error"] is not None for c in root["children"]] == [True, False]
    assert [c["model"] for c in root["children"]] == ["primary-model", "primary-model"]

"""Malformed OTLP exports are the sender's error: a 400 naming the JSON path, and none of the request's spans kept
(a valid span before the bad one included). Values the store cannot hold (timestamps or token counts past its
64-bit integers) are refused or dropped at the receiver, not lost later in the store's writer."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest

from flywheel.tracing import get_trace, tracer


def _span(trace_id: str, **extra: Any) -> dict[str, Any]:
    return {"traceId": trace_id, "spanId": os.urandom(8).hex(), "name": "chat",
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000500000000", **extra}


def _body(*spans: Any) -> dict[str, Any]:
    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": list(spans)}]}]}


def _stored(live, trace_id: str, spans: int):
    trace = None
    for _ in range(100):
        tracer.flush()
        trace = get_trace(live.state.store, trace_id)
        if trace is not None and trace["span_count"] >= spans:
            break
    return trace


@pytest.mark.parametrize(("body", "param"), [
    ({"resourceSpans": {"spans": []}}, "resourceSpans"),
    ({"resourceSpans": ["not an object"]}, "resourceSpans.0"),
    ({"resourceSpans": [{"resource": "svc", "scopeSpans": []}]}, "resourceSpans.0.resource"),
    ({"resourceSpans": [{"scopeSpans": "x"}]}, "resourceSpans.0.scopeSpans"),
    ({"resourceSpans": [{"scopeSpans": [{"spans": {"a": 1}}]}]}, "resourceSpans.0.scopeSpans.0.spans"),
])
def test_malformed_structure_is_a_400_naming_the_path(live, body, param):
    resp = httpx.post(live.url + "/v1/traces", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param


@pytest.mark.parametrize(("field", "value", "param"), [
    ("status", "ERROR", "status"),
    ("status", {"code": 2, "message": {"detail": "x"}}, "status.message"),
    ("startTimeUnixNano", "-5", "startTimeUnixNano"),
    ("endTimeUnixNano", str(10**23), "endTimeUnixNano"),
    ("traceId", "0" * 32, "traceId"),
    ("spanId", "AAAAAAAAAAA=", "spanId"),  # (base64 of 8 zero bytes, as MessageToDict writes ids)
])
def test_a_bad_span_rejects_the_whole_request(live, field, value, param):
    trace_id = os.urandom(16).hex()
    good, bad = _span(trace_id), _span(trace_id, **{field: value})
    resp = httpx.post(live.url + "/v1/traces", json=_body(good, bad))
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == f"resourceSpans.0.scopeSpans.0.spans.1.{param}"
    tracer.flush()
    assert get_trace(live.state.store, trace_id) is None  # the valid first span was not kept either


def test_logs_with_a_malformed_structure_are_a_400(live):
    resp = httpx.post(live.url + "/v1/logs", json={"resourceLogs": [{"scopeLogs": {"logRecords": []}}]})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "resourceLogs.0.scopeLogs"


def test_token_counts_the_store_cannot_hold_do_not_lose_the_span(live):
    trace_id = os.urandom(16).hex()
    root = _span(trace_id, name="agent")
    child = _span(trace_id, parentSpanId=root["spanId"], attributes=[
        {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": str(10**24)}},
        {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "-3"}}])
    assert httpx.post(live.url + "/v1/traces", json=_body(root, child)).status_code == 200
    trace = _stored(live, trace_id, 2)
    assert trace is not None and trace["span_count"] == 2
    llm = trace["spans"][0]["children"][0]
    assert llm["kind"] == "llm" and llm["input_tokens"] is None and llm["output_tokens"] is None


def test_an_all_zero_parent_is_a_root(live):
    trace_id = os.urandom(16).hex()
    resp = httpx.post(live.url + "/v1/traces", json=_body(_span(trace_id, parentSpanId="0" * 16)))
    assert resp.status_code == 200, resp.text
    trace = _stored(live, trace_id, 1)
    assert trace is not None and trace["spans"][0]["parent_id"] is None

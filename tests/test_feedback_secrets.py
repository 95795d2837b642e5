"""Credentials pasted into feedback never reach the store: POST /v1/feedback with a browser's feedback token (and
feedback.record from Python) scrub comments and text values the way `flywheel feedback` does. Before, only the CLI
scrubbed, so a key typed into a web widget's comment box was stored and shown on the dashboard verbatim."""

from __future__ import annotations

import httpx

from flywheel import feedback

OPENAI_KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


def test_feedback_over_http_is_scrubbed_before_it_is_stored(live, server_llm):
    server_llm.add(r"退款", "退款需要 5 个工作日。")
    answer = httpx.post(f"{live.url}/v1/apps/support", json={"input": "退款需要多久？"}, timeout=30).json()
    token, trace_id = answer["feedback"]["token"], answer["trace_id"]
    posts = [{"name": "thumbs", "value": "down", "comment": f"my key is {OPENAI_KEY}, 答案错了"},
             {"name": "correction", "value": f"退款 5 天; aws key {AWS_KEY}"},
             {"name": "edited", "value": "password=hunter2 kept"}]
    for body in posts:
        assert httpx.post(f"{live.url}/v1/feedback", json={"token": token, **body}, timeout=30).status_code == 201
    stored = {e.name: e for e in feedback.for_trace(live.state.store, trace_id)}
    assert stored["thumbs"].value == 0 and stored["thumbs"].comment == "my key is [REDACTED], 答案错了"
    assert stored["correction"].value == "退款 5 天; aws key [REDACTED]"
    assert stored["edited"].value == "password=[REDACTED] kept"
    everything = repr(feedback.for_trace(live.state.store, trace_id))
    assert OPENAI_KEY not in everything and AWS_KEY not in everything and "hunter2" not in everything


def test_record_keeps_ordinary_text(live):
    trace_id = httpx.post(f"{live.url}/v1/apps/support", json={"input": "hello"}, timeout=30).json()["trace_id"]
    event = feedback.record(live.state.store, trace_id, "correction", "Set `version:` on the alias; 固定版本。",
                            comment="trace 5f87f6aedfa9e34c1195e18a593e3b01 was wrong")
    assert event.value == "Set `version:` on the alias; 固定版本。"
    assert event.comment == "trace 5f87f6aedfa9e34c1195e18a593e3b01 was wrong"

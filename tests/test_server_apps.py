"""The app API and feedback over HTTP: Answer + feedback token, SSE, token rules (forged / expired / other
trace → rejected), explicit and implicit events, and the feedback table itself."""

from __future__ import annotations

import json

import httpx
import pytest

from flywheel import feedback
from flywheel.errors import UserError
from flywheel.store import schema_diff


def _run(live, name: str, text: str, **body) -> httpx.Response:
    return httpx.post(f"{live.url}/v1/apps/{name}", json={"input": text, **body}, timeout=30)


def _feedback(live, **body) -> httpx.Response:
    return httpx.post(live.url + "/v1/feedback", json=body, timeout=30)


def test_app_answer_with_feedback_token(live, server_llm):
    server_llm.add(r"refund", "Refunds take 5 days.")
    resp = _run(live, "support", "How long does a refund take?")
    assert resp.status_code == 200
    answer = resp.json()
    assert answer["text"] == "Refunds take 5 days." and answer["app"] == "support"
    assert answer["trace_id"] == resp.headers["x-flywheel-trace-id"]
    assert answer["usage"]["output_tokens"] == 5 and answer["cost_usd"] == 0.625  # "Refunds take 5 days ."
    assert answer["models"] == {"gpt": "fake-model"} and answer["refused"] is False
    assert answer["feedback"]["token"] and answer["feedback"]["expires_at"] > 0


def test_app_streaming_sse(live, server_llm):
    server_llm.add(r"shipping", "We ship worldwide. Delivery takes a week.")
    with httpx.stream("POST", f"{live.url}/v1/apps/support", json={"input": "shipping?", "stream": True},
                      timeout=30) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line for line in resp.iter_lines() if line]
    names = [e.split(": ", 1)[1] for e in events if e.startswith("event:")]
    datas = [json.loads(e.split(": ", 1)[1]) for e in events if e.startswith("data:")]
    assert names[-1] == "answer" and set(names[:-1]) == {"delta"}
    assert "".join(d["text"] for d in datas[:-1]) == datas[-1]["text"] == "We ship worldwide. Delivery takes a week."
    assert datas[-1]["feedback"]["token"]


def test_feedback_token_is_bound_to_its_trace_and_expires(live, server_clock):
    first, second = _run(live, "support", "hello one").json(), _run(live, "support", "hello two").json()
    token = first["feedback"]["token"]
    ok = _feedback(live, token=token, name="thumbs", value="down", comment="too vague", actor="visitor-9")
    assert ok.status_code == 201 and ok.json()["trace_id"] == first["trace_id"]
    assert _feedback(live, token=token, name="edited", value="Hello, one!").status_code == 201
    assert _feedback(live, token=token, name="copied").status_code == 201

    other = _feedback(live, token=token, trace_id=second["trace_id"], name="thumbs", value="up")
    assert other.status_code == 403 and other.json()["error"]["param"] == "trace_id"
    assert _feedback(live, token=token, name="label", value="pass", source="annotator").status_code == 403
    body, sig = token.split(".")
    forged = body + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
    assert _feedback(live, token=forged, name="thumbs", value="up").status_code == 401
    import base64

    payload = base64.urlsafe_b64decode(body + "==").decode().replace(first["trace_id"], second["trace_id"])
    swapped = base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode() + "." + sig
    assert _feedback(live, token=swapped, name="thumbs", value="up").status_code == 401
    assert _feedback(live, token="garbage", name="thumbs", value="up").status_code == 401

    events = feedback.for_trace(live.state.store, first["trace_id"])
    assert [(e.name, e.value, e.source) for e in events] == [("thumbs", 0, "user"), ("edited", "Hello, one!", "user"),
                                                            ("copied", None, "user")]
    assert events[0].comment == "too vague" and events[0].actor == "visitor-9" and events[0].tenant == "default"
    assert feedback.for_trace(live.state.store, second["trace_id"]) == []

    server_clock.advance(7 * 24 * 3600 + 1)
    expired = _feedback(live, token=second["feedback"]["token"], name="thumbs", value="up")
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "invalid_feedback_token"


@pytest.mark.parametrize(("body", "param"), [
    ({"name": "thumbs", "value": "sideways"}, "value"),
    ({"name": "score", "value": 1.5}, "value"),
    ({"name": "made_up"}, "name"),
    ({"name": "comment"}, "comment"),
    ({"name": "edited"}, "value"),
])
def test_bad_feedback_is_400_naming_the_field(live, body, param):
    token = _run(live, "support", "hello bad feedback").json()["feedback"]["token"]
    resp = _feedback(live, token=token, **body)
    assert resp.status_code == 400 and resp.json()["error"]["param"] == param


def test_feedback_with_key_auth_needs_an_existing_trace(live):
    trace_id = _run(live, "support", "hello key").json()["trace_id"]
    assert _feedback(live, trace_id=trace_id, name="label", value="fail", source="annotator").status_code == 201
    assert _feedback(live, trace_id="ab" * 16, name="thumbs", value="up").status_code == 404
    assert _feedback(live, name="thumbs", value="up").status_code == 400


def test_unknown_app_and_bad_input(live):
    assert _run(live, "nope", "hi").status_code == 404
    assert httpx.post(f"{live.url}/v1/apps/support", json={"input": 3}).json()["error"]["param"] == "input"
    assert httpx.post(f"{live.url}/v1/apps/support", json={"input": "   "}).status_code == 400


def test_feedback_table_and_python_api(live):
    assert schema_diff(live.state.store, ["feedback", "api_keys", "rate_windows"]) == []
    from review_support import add_traces

    [tid] = add_traces(live.state.store, [{}])  # feedback names a stored trace (a missing one is a UserError)
    event = feedback.record(live.state.store, tid, "score", 0.75, source="judge", actor="judge:v1")
    assert event.id and event.value == 0.75
    assert feedback.record(live.state.store, tid, "my.check", {"passed": True}, source="check").name == "my.check"
    with pytest.raises(UserError, match="trace_id"):
        feedback.record(live.state.store, "NOT HEX", "thumbs", "up")
    with pytest.raises(UserError, match="unknown event"):
        feedback.record(live.state.store, tid, "my.check", 1)  # users are held to the known events

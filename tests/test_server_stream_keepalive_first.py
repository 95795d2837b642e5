"""Keep-alive before the first chunk, on every streaming wire of `flywheel serve` (keepalive.py): an upstream that
sends nothing for longer than FLYWHEEL_STREAM_PING_SECONDS (a model thinking) gets the stream opened anyway with
the wire's keep-alive (OpenAI chat and legacy completions, Responses: `: keep-alive`; Anthropic: message_start +
ping), the official SDKs still parse the whole answer, an upstream failure after that is the wire's in-stream
error, one before it keeps its HTTP status, and a client that hangs up during the silence is settled.

No timing is asserted: the fake upstream answers only once the client has received the keep-alive (a `Gate`
opened by an httpx transport watching the response bytes), so the bytes' order is what the tests check.
"""

from __future__ import annotations

import threading
import time
from types import ModuleType
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from server_support import serving

from flywheel.testing.fake_llm import FakeLLM, Fault

PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0,
        price: {{input: 125000.0, output: 125000.0}}}}
  claude: {{provider: anthropic, base_url: "{base}", model: fake-claude, max_retries: 0}}
cache: {{exact: false}}
apps:
  support: {{kind: chat, model: gpt}}
"""
ANSWER = "Thought it through: forty-two."
KEEP_ALIVE, PING = b": keep-alive", b"event: ping"


class Gate:
    """A fake_llm reply that waits (on the fake's thread) until the test opens it, then answers `text`, or fails
    (a 500 from the upstream) when `text` is None. The wait is bounded, so a server that never sends the
    keep-alive fails the test instead of hanging it."""

    def __init__(self, text: str | None = ANSWER):
        self.text, self.opened = text, threading.Event()
        self.released = False  # opened by the test (the client saw the keep-alive), not given up on

    def __call__(self, body: dict[str, Any]) -> str:
        self.released = self.opened.wait(10)
        if self.text is None:
            raise RuntimeError("the model gave up after thinking")
        return self.text


class Watch:
    """Response bytes as a client received them, opening `gate` once `marker` is among them: `client()` is an
    HTTP client (of `http`: the openai SDK's httpx, the anthropic SDK's httpx2) whose transport records them."""

    def __init__(self, gate: Gate, marker: bytes):
        self.gate, self.marker = gate, marker
        self.received = bytearray()

    def client(self, http: ModuleType = httpx) -> Any:
        watch = self

        class Tap(http.SyncByteStream):  # type: ignore[name-defined,misc]
            def __init__(self, inner: Any):
                self.inner = inner

            def __iter__(self) -> Any:
                for chunk in self.inner:
                    watch.received += chunk
                    if watch.marker in watch.received:
                        watch.gate.opened.set()
                    yield chunk

            def close(self) -> None:
                self.inner.close()

        class Transport(http.BaseTransport):  # type: ignore[name-defined,misc]
            inner = http.HTTPTransport()

            def handle_request(self, request: Any) -> Any:
                response = self.inner.handle_request(request)
                response.stream = Tap(response.stream)
                return response

        return http.Client(transport=Transport(), timeout=30)


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, llm):
    with serving(tmp_path_factory.mktemp("keepalive_first"), PROJECT.format(base=llm.url)) as server:
        yield server


@pytest.fixture(autouse=True)
def short_interval(monkeypatch):
    monkeypatch.setenv("FLYWHEEL_STREAM_PING_SECONDS", "0.2")


@pytest.fixture
def gated(llm, request):
    """A rule answering the test's own question through a Gate (opened at teardown in any case)."""
    gates: list[Gate] = []

    def add(question: str, text: str | None = ANSWER) -> Gate:
        gate = Gate(text)
        gates.append(gate)
        llm.add(question, gate)
        return gate

    yield add
    for gate in gates:
        gate.opened.set()


def _openai(live, watch: Watch, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=key, max_retries=0,
                         http_client=watch.client())


def _anthropic(live, watch: Watch, key: str = "unused") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=live.url, api_key=key, max_retries=0,
                               http_client=watch.client(httpx2))


def _before(received: bytes, first: bytes, then: bytes) -> bool:
    return first in received and then in received and received.index(first) < received.index(then)


def test_chat_stream_opens_with_a_keep_alive_while_the_model_thinks(live, gated):
    gate = gated("chat thinking")
    watch = Watch(gate, KEEP_ALIVE)
    chunks = list(_openai(live, watch).chat.completions.create(
        model="gpt", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "chat thinking"}]))
    assert gate.released  # the client had the keep-alive while the model was still thinking
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert _before(watch.received, KEEP_ALIVE, b'"content": "Thought')
    assert watch.received.rstrip().endswith(b"data: [DONE]")


def test_legacy_completion_stream_opens_with_a_keep_alive(live, gated):
    gate = gated("legacy thinking")
    watch = Watch(gate, KEEP_ALIVE)
    text = "".join(c.choices[0].text for c in _openai(live, watch).completions.create(
        model="gpt", prompt="legacy thinking", stream=True) if c.choices)
    assert gate.released and text == ANSWER
    assert watch.received.startswith(KEEP_ALIVE)  # nothing else to open a text-completion stream with


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_messages_stream_opens_with_message_start_and_ping(live, gated, model):
    gate = gated(f"messages thinking {model}")
    watch = Watch(gate, PING)
    with _anthropic(live, watch).messages.stream(
            model=model, max_tokens=100, messages=[{"role": "user", "content": f"messages thinking {model}"}]) as s:
        final = s.get_final_message()
    assert gate.released and final.content[0].text == ANSWER and final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0  # from message_delta
    assert _before(watch.received, b"event: message_start", PING)
    assert _before(watch.received, PING, b"event: content_block_start")


def test_responses_stream_opens_with_created_in_progress_and_a_keep_alive(live, gated):
    gate = gated("responses thinking")
    watch = Watch(gate, KEEP_ALIVE)
    with _openai(live, watch).responses.stream(model="gpt", input="responses thinking") as s:
        final = s.get_final_response()
    assert gate.released and final.output_text == ANSWER and final.status == "completed" and final.usage.output_tokens > 0
    received = bytes(watch.received)
    assert _before(received, b"event: response.created", b"event: response.in_progress")
    assert _before(received, b"event: response.in_progress", KEEP_ALIVE)
    assert _before(received, KEEP_ALIVE, b"event: response.output_text.delta")


def test_app_stream_opens_with_a_keep_alive_while_its_model_thinks(live, gated):
    gate = gated("app thinking")
    watch = Watch(gate, KEEP_ALIVE)
    text = "".join(c.choices[0].delta.content or "" for c in _openai(live, watch).chat.completions.create(
        model="app:support", stream=True, messages=[{"role": "user", "content": "app thinking"}]) if c.choices)
    assert gate.released and text == ANSWER
    assert _before(watch.received, KEEP_ALIVE, b'"content": "Thought')


# ---- an upstream failure after the stream opened: the wire's in-stream error, which the SDK raises

def test_chat_failure_after_the_interval_is_an_in_stream_error(live, gated):
    gate = gated("chat gives up", text=None)
    watch = Watch(gate, KEEP_ALIVE)
    with pytest.raises(openai.APIError) as err:
        list(_openai(live, watch).chat.completions.create(
            model="gpt", stream=True, messages=[{"role": "user", "content": "chat gives up"}]))
    assert gate.released and not isinstance(err.value, openai.APIStatusError)  # a 200 stream, broken in-band
    assert _before(watch.received, KEEP_ALIVE, b'data: {"error"')


def test_messages_failure_after_the_interval_is_an_error_event(live, gated):
    gate = gated("messages gives up", text=None)
    watch = Watch(gate, PING)
    stream = _anthropic(live, watch).messages.stream(
        model="gpt", max_tokens=100, messages=[{"role": "user", "content": "messages gives up"}])
    with pytest.raises(anthropic.APIStatusError) as err, stream as s:
        s.get_final_message()
    assert gate.released and err.value.status_code == 200 and err.value.body["error"]["type"]
    assert _before(watch.received, PING, b"event: error")


def test_responses_failure_after_the_interval_is_error_then_failed(live, gated):
    gate = gated("responses gives up", text=None)
    watch = Watch(gate, KEEP_ALIVE)
    events = list(_openai(live, watch).responses.create(model="gpt", input="responses gives up", stream=True))
    kinds = [e.type for e in events]
    assert gate.released and kinds == ["response.created", "response.in_progress", "error", "response.failed"]
    assert events[2].message and events[3].response.status == "failed"
    helper = _openai(live, Watch(gated("the helper sees the failure", text=None), KEEP_ALIVE))
    stream = helper.responses.stream(model="gpt", input="the helper sees the failure")
    with pytest.raises(RuntimeError, match="response.completed"), stream as s:  # the SDK's helper raises at the end
        s.get_final_response()


def test_failure_within_the_interval_keeps_its_http_status(live, llm, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_STREAM_PING_SECONDS", "60")  # the failure surely comes first
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)
    llm.fail(Fault.SERVER_ERROR, times=1, status=500)
    with pytest.raises(openai.APIStatusError) as err:
        list(client.chat.completions.create(model="gpt", stream=True,
                                            messages=[{"role": "user", "content": "fails at once"}]))
    assert err.value.status_code == 502
    llm.fail(Fault.SERVER_ERROR, times=1, status=500)
    with pytest.raises(openai.APIStatusError) as err:
        list(client.responses.create(model="gpt", input="fails at once", stream=True))
    assert err.value.status_code == 502
    llm.fail(Fault.SERVER_ERROR, times=1, status=500)
    ant = anthropic.Anthropic(base_url=live.url, api_key="unused", max_retries=0)
    stream = ant.messages.stream(model="gpt", max_tokens=50, messages=[{"role": "user", "content": "fails"}])
    with pytest.raises(anthropic.APIStatusError) as err2, stream as s:
        s.get_final_message()
    assert err2.value.status_code == 502


# ---- keys: from here on the server requires them (keep these tests last in the module)

def _wait_for_trace(live, trace_id: str) -> dict:
    from flywheel.tracing import get_trace, tracer

    trace = None
    for _ in range(200):  # the server notices the hang-up and ends the trace (a poll, not a timing assertion)
        tracer.flush()
        trace = get_trace(live.state.store, trace_id)
        if trace is not None and trace["status"] != "incomplete":
            break
        time.sleep(0.05)
    assert trace is not None
    return trace


def _row(live, name: str) -> dict:
    return next(r for r in live.state.keys.list() if r["name"] == name)


def test_a_late_stream_is_charged_like_the_same_answer_unstreamed(live, gated):
    streamer, _ = live.state.keys.create("late-streamer", budget_usd=1000.0)
    plain, _ = live.state.keys.create("plain-caller", budget_usd=1000.0)
    gate = gated("charge the thinking")
    watch = Watch(gate, KEEP_ALIVE)
    text = "".join(c.choices[0].delta.content or "" for c in _openai(live, watch, streamer).chat.completions.create(
        model="gpt", stream=True, messages=[{"role": "user", "content": "charge the thinking"}]) if c.choices)
    same = _openai(live, watch, plain).chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "charge the thinking"}])  # the gate is open by now
    assert gate.released and text == same.choices[0].message.content == ANSWER
    late, unstreamed = _row(live, "late-streamer"), _row(live, "plain-caller")
    assert late["spent_usd"] == unstreamed["spent_usd"] > 0 and late["reserved_usd"] == 0.0


@pytest.mark.parametrize(("path", "marker", "body"), [
    ("/v1/chat/completions", KEEP_ALIVE,
     {"model": "gpt", "stream": True, "messages": [{"role": "user", "content": "hang up on chat"}]}),
    ("/v1/messages", PING,
     {"model": "gpt", "stream": True, "max_tokens": 50, "messages": [{"role": "user", "content": "hang up on messages"}]}),
    ("/v1/responses", KEEP_ALIVE, {"model": "gpt", "stream": True, "input": "hang up on responses"}),
])
def test_a_client_hanging_up_during_the_silence_is_settled(live, gated, path, marker, body):
    from flywheel.types import Message

    name = "hang-up-" + path.rsplit("/", 1)[-1]
    key, _ = live.state.keys.create(name, budget_usd=1000.0)
    question = body["messages"][0]["content"] if "messages" in body else body["input"]
    gate = gated(question)
    seen = bytearray()
    with httpx.stream("POST", live.url + path, json=body, timeout=30,
                      headers={"authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"}) as resp:
        assert resp.status_code == 200
        trace_id = resp.headers["x-flywheel-trace-id"]
        for chunk in resp.iter_bytes():
            seen += chunk
            if marker in seen:
                break  # hang up while the model is still thinking
    trace = _wait_for_trace(live, trace_id)
    assert not gate.released  # the upstream had answered nothing when the client left
    assert trace["status"] == "error" and "client disconnected" in (trace["spans"][0]["error"] or "")
    row = _row(live, name)
    prompt_cost = live.state.cut_stream_usage("gpt", [Message(role="user", content=question)], "")[2]
    assert row["reserved_usd"] == 0.0 and row["spent_usd"] == prompt_cost > 0  # the prompt it was sent


def test_a_client_hanging_up_before_any_byte_is_settled(live, gated):
    """A client gone before the stream opened (the route still waiting for the first chunk) is settled too."""
    import json
    import socket

    from flywheel.types import Message

    key, _ = live.state.keys.create("gone-early", budget_usd=1000.0)
    gate = gated("gone before any byte")
    body = json.dumps({"model": "gpt", "stream": True,
                       "messages": [{"role": "user", "content": "gone before any byte"}]}).encode()
    host, port = live.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s" % (key.encode(), len(body), body))
    row = _row(live, "gone-early")
    for _ in range(200):  # the server notices the hang-up and settles (a poll, not a timing assertion)
        row = _row(live, "gone-early")
        if row["spent_usd"] and row["reserved_usd"] == 0.0:
            break
        time.sleep(0.05)
    assert not gate.released
    prompt_cost = live.state.cut_stream_usage("gpt", [Message(role="user", content="gone before any byte")], "")[2]
    assert row["reserved_usd"] == 0.0 and row["spent_usd"] == prompt_cost > 0

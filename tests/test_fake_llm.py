"""The fake LLM server, exercised through the real openai and anthropic SDKs (and raw httpx for wire details)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from click.testing import CliRunner

from flywheel.errors import ConfigError
from flywheel.testing.fake_llm import FakeLLM, Fault
from flywheel.testing.fake_llm_wire import count_tokens

USER = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def client(llm):
    with openai.OpenAI(base_url=llm.base_url, api_key="test", max_retries=0, timeout=5) as c:
        yield c


@pytest.fixture
def claude(llm):
    with anthropic.Anthropic(base_url=llm.anthropic_base_url, api_key="test", max_retries=0, timeout=5) as c:
        yield c


def ask(client, text: str, **kw):
    return client.chat.completions.create(model=kw.pop("model", "m"), messages=[{"role": "user", "content": text}],
                                          **kw)


def _wait_for(condition, timeout: float = 20.0) -> None:
    """Wait (not assert) until `condition()` holds; the test's own assertions follow."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)


def in_thread(fn, *args, **kw) -> tuple[threading.Thread, list]:
    """Run fn in a thread; the list receives its result or the exception it raised."""
    outcome: list = []

    def target():
        try:
            outcome.append(fn(*args, **kw))
        except Exception as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


# ------------------------------------------------------------------ scripting

def test_rules_callables_default_and_recorded_requests(llm, client):
    llm.add(r"capital of France", "Paris.")
    llm.add(r"json please", lambda req: json.dumps({"model": req["model"]}))
    llm.add(r"capital", "never used: the first matching rule wins")
    answer = client.chat.completions.create(
        model="gpt-x", messages=[{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "json please"},
                                 {"role": "assistant", "content": "ok"}, *USER])
    assert answer.choices[0].message.content == "Paris."  # the LAST user message decides
    assert answer.model == "gpt-x" and answer.object == "chat.completion"
    assert answer.choices[0].finish_reason == "stop"
    assert json.loads(ask(client, "JSON PLEASE", model="abc").choices[0].message.content) == {"model": "abc"}
    assert ask(client, "unmatched words").choices[0].message.content == "You said: unmatched words"
    llm.default = "I don't know."
    assert ask(client, "unmatched").choices[0].message.content == "I don't know."
    seen = llm.requests
    assert [r["path"] for r in seen] == ["/v1/chat/completions"] * 4
    assert seen[0]["model"] == "gpt-x" and seen[1]["messages"][0]["content"] == "JSON PLEASE"
    llm.reset()
    assert llm.requests == [] and ask(client, "capital of France").choices[0].message.content != "Paris."


def test_model_specific_rules_and_multimodal_content(llm, client):
    llm.add(r"hello", "from small", model="small")
    llm.add(r"hello", "from anyone else")
    assert ask(client, "hello", model="small").choices[0].message.content == "from small"
    assert ask(client, "hello", model="strong").choices[0].message.content == "from anyone else"
    parts = [{"type": "text", "text": "say hello"}, {"type": "image_url", "image_url": {"url": "data:,"}}]
    answer = client.chat.completions.create(model="small", messages=[{"role": "user", "content": parts}])
    assert answer.choices[0].message.content == "from small"


def test_usage_counts_max_tokens_and_n(llm, client):
    llm.add("count", "one two, three 四五")
    answer = client.chat.completions.create(
        model="m", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "count it"}])
    assert count_tokens("one two, three 四五") == 6  # words, punctuation and each CJK character
    assert answer.usage.completion_tokens == 6
    assert answer.usage.prompt_tokens == count_tokens("Be brief.") + count_tokens("count it") == 5
    assert answer.usage.total_tokens == 11
    cut = ask(client, "count", max_tokens=2)
    assert cut.choices[0].message.content == "one two" and cut.choices[0].finish_reason == "length"
    assert cut.usage.completion_tokens == 2
    several = ask(client, "count", n=2)
    assert [c.index for c in several.choices] == [0, 1] and several.usage.completion_tokens == 12
    structured = ask(client, "count", response_format={"type": "json_object"})  # accepted, ignored
    assert structured.choices[0].message.content == "one two, three 四五"


def test_streaming_deltas_finish_reason_and_usage_chunk(llm, client):
    llm.add("story", "Once upon a time, there was a fake model.")
    chunks = list(ask(client, "a story please", stream=True, stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" and c.model == "m" for c in chunks)
    text_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(text_chunks) > 3
    assert "".join(c.choices[0].delta.content for c in text_chunks) == "Once upon a time, there was a fake model."
    assert chunks[-2].choices[0].finish_reason == "stop"
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage.completion_tokens == 11
    assert usage_chunk.usage.prompt_tokens == 3
    plain = list(ask(client, "story", stream=True, max_tokens=3))
    assert all(c.usage is None for c in plain)
    assert "".join(c.choices[0].delta.content or "" for c in plain) == "Once upon a"
    assert plain[-1].choices[0].finish_reason == "length"


def test_latency_global_and_per_rule_without_serialising_requests(llm):
    llm.latency = 0.2
    ten = threading.Barrier(10, timeout=20)

    def together(body: dict) -> str:
        ten.wait()  # only passes once all ten requests are being served at the same time
        return "You said: " + body["messages"][-1]["content"]

    llm.add("slow", together)

    async def main():
        async with openai.AsyncOpenAI(base_url=llm.base_url, api_key="t", max_retries=0, timeout=30) as c:
            start = time.perf_counter()
            answers = await asyncio.gather(*[
                c.chat.completions.create(model="m", messages=[{"role": "user", "content": f"slow {i}"}])
                for i in range(10)])
            return answers, time.perf_counter() - start

    answers, slow = asyncio.run(main())
    assert sorted(a.choices[0].message.content for a in answers) == sorted(f"You said: slow {i}" for i in range(10))
    assert slow >= 0.2  # the global latency was applied (a lower bound: the server did wait)
    # a rule's own latency overrides the global one: with 60 s globally, a 5 s client timeout proves it
    llm.latency = 60.0
    llm.add("fast", "quick", latency=0.0)
    with openai.OpenAI(base_url=llm.base_url, api_key="t", max_retries=0, timeout=5) as c:
        assert ask(c, "fast").choices[0].message.content == "quick"


def test_concurrent_clients_while_rules_change(llm):
    def worker(i: int) -> list[str]:
        llm.add(f"^worker {i}$", f"answer {i}")
        with openai.OpenAI(base_url=llm.base_url, api_key="t", max_retries=0, timeout=10) as c:
            return [ask(c, f"worker {i}").choices[0].message.content for _ in range(15)]

    threads = [in_thread(worker, i) for i in range(6)]
    for thread, _ in threads:
        thread.join(30)
    assert [outcome[0] for _, outcome in threads] == [[f"answer {i}"] * 15 for i in range(6)]
    assert len(llm.requests) == 90


def test_chunk_latency_spreads_the_stream_over_time(llm, client):
    llm.add("spread", "one two three four five")
    llm.chunk_latency = 0.05
    start = time.perf_counter()
    arrivals = [time.perf_counter() - start for _ in ask(client, "spread", stream=True)]
    assert arrivals[-1] - arrivals[0] >= 0.2 and len(arrivals) == 7


def test_keep_alive_reuses_one_connection(llm, client):
    for _ in range(30):
        ask(client, "hi")
    llm.fail(Fault.RATE_LIMIT)
    llm.fail(Fault.SERVER_ERROR)
    for _ in range(2):
        with pytest.raises(openai.APIStatusError):
            ask(client, "hi")
    ask(client, "hi")
    assert llm.connections == 1  # error answers keep the connection too


# ------------------------------------------------------------------ faults

def test_rate_limit_has_retry_after_and_faults_are_used_in_order(llm, client):
    llm.fail(Fault.RATE_LIMIT, times=2, retry_after=0.1)
    llm.fail(Fault.SERVER_ERROR, times=1)
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as info:
            ask(client, "hi")
        assert info.value.response.headers["retry-after"] == "0.1"
        assert info.value.response.headers["retry-after-ms"] == "100"
        assert info.value.body["code"] == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError) as info:
        ask(client, "hi")
    assert info.value.status_code == 500 and info.value.body["type"] == "server_error"
    assert ask(client, "hi").choices[0].message.content == "You said: hi"
    assert len(llm.requests) == 4  # failed attempts are recorded too


def test_sdk_retries_honour_retry_after(llm):
    llm.fail(Fault.RATE_LIMIT, times=2, retry_after=0.2)
    with openai.OpenAI(base_url=llm.base_url, api_key="t", max_retries=2) as c:
        start = time.perf_counter()
        assert ask(c, "hi").choices[0].message.content == "You said: hi"
    assert time.perf_counter() - start >= 0.4 and len(llm.requests) == 3


def test_faults_for_one_model_only_and_until_cleared(llm, client):
    llm.fail(Fault.SERVER_ERROR, times=None, model="strong", status=503)
    for _ in range(3):
        with pytest.raises(openai.InternalServerError) as info:
            ask(client, "hi", model="strong")
        assert info.value.status_code == 503
        assert ask(client, "hi", model="small").choices[0].message.content == "You said: hi"
    llm.clear_faults()
    assert ask(client, "hi", model="strong").choices[0].message.content == "You said: hi"


def test_hang_times_out_the_client_without_blocking_others_or_stop():
    llm = FakeLLM().start()
    try:
        llm.fail(Fault.HANG, seconds=30, model="slow")
        with openai.OpenAI(base_url=llm.base_url, api_key="t", max_retries=0, timeout=0.3) as c:
            ask(c, "warm up the SDK", model="fast")
            start = time.perf_counter()
            hung, outcome = in_thread(ask, c, "x", model="slow")
            _wait_for(lambda: len(llm.requests) == 2)  # the hanging request has reached the server
            assert ask(c, "still served", model="fast").choices[0].message.content == "You said: still served"
            assert hung.is_alive()  # the other request was answered while this one hangs
            hung.join(20)  # the server hangs for 30 s: only the client's 0.3 s timeout ends it sooner
            assert not hung.is_alive() and time.perf_counter() - start >= 0.3
            assert isinstance(outcome[0], openai.APITimeoutError)
        # a second hang still pending on another connection when stop() is called
        llm.fail(Fault.HANG, seconds=30)
        pending, outcome = in_thread(httpx.post, llm.base_url + "/chat/completions",
                                     json={"model": "m", "messages": USER}, timeout=60)
        _wait_for(lambda: len(llm.requests) == 4)
    finally:
        llm.stop()
    pending.join(20)  # the hang is 30 s and the client waits 60 s: only stop() can end it this soon
    assert not pending.is_alive()
    assert isinstance(outcome[0], httpx.RemoteProtocolError)  # stop() closed the hanging connection


def test_hang_shorter_than_timeout_is_a_slow_answer(llm, client):
    llm.fail(Fault.HANG, seconds=0.2)
    start = time.perf_counter()
    assert ask(client, "hi").choices[0].message.content == "You said: hi"
    assert time.perf_counter() - start >= 0.2


def test_drop_truncated_and_invalid_json(llm, client):
    llm.fail(Fault.DROP)
    with pytest.raises(openai.APIConnectionError):
        ask(client, "hi")
    llm.fail(Fault.TRUNCATED_STREAM)
    with pytest.raises(openai.APIConnectionError):  # body shorter than its Content-Length
        ask(client, "hi")
    llm.add("long", "a fairly long answer with many words so the stream has many chunks")
    llm.fail(Fault.TRUNCATED_STREAM)
    received = []
    # openai 2.x lets httpx's error through mid-stream; openai 3.x wraps it as APIConnectionError
    with pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError)):
        for chunk in ask(client, "long", stream=True):
            received.append(chunk.choices[0].delta.content or "")
    assert received and "".join(received) != "a fairly long answer with many words so the stream has many chunks"
    llm.fail(Fault.INVALID_JSON)
    with pytest.raises(json.JSONDecodeError):
        ask(client, "hi")
    llm.fail(Fault.INVALID_JSON)
    with pytest.raises(json.JSONDecodeError):
        list(ask(client, "hi", stream=True))
    assert ask(client, "hi").choices[0].message.content == "You said: hi"  # healthy again


def outcomes(seed: int, n: int = 30) -> list[str]:
    with FakeLLM() as llm, openai.OpenAI(base_url=llm.base_url, api_key="t", max_retries=0, timeout=0.1) as c:
        llm.fault_rate(0.5, faults=[Fault.RATE_LIMIT, Fault.SERVER_ERROR, Fault.HANG], seed=seed,
                       hang_seconds=0.5)
        seen = []
        for _ in range(n):
            try:
                ask(c, "hi")
                seen.append("ok")
            except openai.APIError as exc:
                seen.append(type(exc).__name__)
        return seen


def test_fault_rate_is_reproducible_with_a_seed():
    first, again, other = outcomes(seed=7), outcomes(seed=7), outcomes(seed=8)
    assert first == again and first != other
    assert {"ok", "RateLimitError", "InternalServerError", "APITimeoutError"} <= set(first)
    assert 6 <= first.count("ok") <= 24


def test_fault_rate_per_model(llm, client):
    llm.fault_rate(1.0, faults=[Fault.SERVER_ERROR], model="primary")
    with pytest.raises(openai.InternalServerError):
        ask(client, "hi", model="primary")
    assert ask(client, "hi", model="fallback").choices[0].message.content == "You said: hi"
    llm.fault_rate(0.0, model="primary")
    assert ask(client, "hi", model="primary").choices[0].message.content == "You said: hi"


def test_injected_lists_the_faults_made_in_order_until_reset(llm, client):
    llm.fail(Fault.RATE_LIMIT, model="primary")
    llm.fault_rate(1.0, faults=[Fault.SERVER_ERROR], model="other")
    for model in ("fine", "primary", "other"):
        try:
            ask(client, "hi", model=model)
        except openai.APIStatusError:
            pass
    assert llm.injected == [(Fault.RATE_LIMIT, "primary"), (Fault.SERVER_ERROR, "other")]
    assert len(llm.requests) == 3  # the request log counts every request, faulted or not
    llm.reset()
    assert llm.injected == []


def test_reply_callable_errors_become_500(llm, client):
    llm.add("boom", lambda req: 1 / 0)
    with pytest.raises(openai.InternalServerError, match="ZeroDivisionError"):
        ask(client, "boom")


# ------------------------------------------------------------------ other endpoints and errors

def cosine(a, b):
    return sum(x * y for x, y in zip(a, b))


def test_embeddings_shape_normalisation_and_similarity(llm, client):
    texts = ["the cat sat on the mat", "a cat sat on a mat", "quarterly revenue grew strongly"]
    result = client.embeddings.create(model="emb", input=texts)  # the SDK asks for base64 by default
    vectors = [d.embedding for d in result.data]
    assert [d.index for d in result.data] == [0, 1, 2] and result.model == "emb"
    assert all(len(v) == 384 and math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-5)
               for v in vectors)
    assert cosine(vectors[0], vectors[1]) > 0.5 and cosine(vectors[0], vectors[2]) < 0.2
    assert result.usage.prompt_tokens == sum(count_tokens(t) for t in texts)
    one = client.embeddings.create(model="emb", input="the cat sat on the mat", dimensions=64,
                                   encoding_format="float")
    assert len(one.data[0].embedding) == 64
    again = client.embeddings.create(model="emb", input=texts[0])
    assert again.data[0].embedding == vectors[0]  # deterministic
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="emb", input=[])


def test_models_list(llm, client):
    llm.add("x", "y", model="small")
    assert {m.id for m in client.models.list()} >= {"fake-model", "small"}


def test_wire_errors_404_400_and_api_key(llm):
    with httpx.Client(base_url=llm.url) as raw:
        missing = raw.post("/v1/nothing", json={})
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
        bad = raw.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
        assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
        empty = raw.post("/v1/chat/completions", json={"model": "m", "messages": []})
        assert empty.status_code == 400 and empty.json()["error"]["type"] == "invalid_request_error"
        llm.api_key = "sk-right"
        assert raw.post("/v1/chat/completions", json={"model": "m", "messages": USER}).status_code == 401
        ok = raw.post("/v1/chat/completions", json={"model": "m", "messages": USER},
                      headers={"authorization": "Bearer sk-right"})
        assert ok.status_code == 200
    assert [r["path"] for r in llm.requests][:2] == ["/v1/nothing", "/v1/chat/completions"]


def test_not_running_is_a_clear_error():
    with pytest.raises(RuntimeError, match="not running"):
        _ = FakeLLM().base_url


# ------------------------------------------------------------------ Anthropic Messages

def test_anthropic_messages_plain_and_streaming(llm, claude):
    llm.add("capital of France", "Paris is the capital.")
    message = claude.messages.create(model="claude-x", max_tokens=100, system="Be brief.", messages=USER)
    assert message.content[0].text == "Paris is the capital." and message.model == "claude-x"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == count_tokens("Be brief.") + count_tokens(USER[0]["content"])
    assert message.usage.output_tokens == 5
    with claude.messages.stream(model="claude-x", max_tokens=2, messages=USER) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) == 2 and "".join(pieces) == "Paris is"
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 2
    assert llm.requests[0]["path"] == "/v1/messages" and llm.requests[0]["system"] == "Be brief."


def test_anthropic_faults(llm, claude):
    llm.fail(Fault.RATE_LIMIT, retry_after=2)
    with pytest.raises(anthropic.RateLimitError) as info:
        claude.messages.create(model="c", max_tokens=10, messages=USER)
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.body["error"]["type"] == "rate_limit_error"
    llm.fail(Fault.SERVER_ERROR)
    with pytest.raises(anthropic.InternalServerError):
        claude.messages.create(model="c", max_tokens=10, messages=USER)
    llm.fail(Fault.DROP)
    with pytest.raises(anthropic.APIConnectionError):
        claude.messages.create(model="c", max_tokens=10, messages=USER)


# ------------------------------------------------------------------ scripts and CLI

def test_load_script(tmp_path, llm, client):
    script = tmp_path / "fake.yaml"
    script.write_text("default: nope\nlatency_ms: 0\nrules:\n  - match: capital of france\n    reply: Paris.\n"
                      "  - match: hi\n    reply: small hello\n    model: small\n    latency_ms: 1\n"
                      "faults:\n  - fault: rate_limit\n    retry_after: 0.5\n", encoding="utf-8")
    llm.load_script(script)
    with pytest.raises(openai.RateLimitError):
        ask(client, "hi")
    assert ask(client, "CAPITAL OF FRANCE?").choices[0].message.content == "Paris."
    assert ask(client, "hi", model="small").choices[0].message.content == "small hello"
    assert ask(client, "hi", model="other").choices[0].message.content == "nope"


@pytest.mark.parametrize("text, line, needle", [
    ("- match: hi\n  reply: hello\n- match: bye\n  reply: x\n  replyy: x\n", 5, "replyy"),
    ("rules:\n  - match: hi\n    reply: ok\n  - match: '(unclosed'\n    reply: x\n", 4, "regular expression"),
    ("faults:\n  - fault: explode\n", 2, "unknown fault"),
    ("rules:\n  - match: a: b\n", 2, "YAML syntax"),
    ("just a string\n", 1, "list of rules"),
])
def test_bad_script_names_file_and_line(tmp_path, text, line, needle):
    script = tmp_path / "bad.yaml"
    script.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        FakeLLM().load_script(script)
    assert info.value.where == f"{script}:{line}" and needle in info.value.message
    from flywheel.cli import main

    result = CliRunner().invoke(main, ["fake-llm", "--port", "0", "--script", str(script)])
    assert result.exit_code == 2 and f"{script}:{line}" in result.output and "Traceback" not in result.output


def test_cli_serves_script_until_interrupted(tmp_path):
    script = tmp_path / "rules.yaml"
    script.write_text("- match: ping\n  reply: pong\n", encoding="utf-8")
    # `python -m flywheel fake-llm`, with SIGINT raising KeyboardInterrupt as after a terminal's Ctrl-C, also when
    # pytest runs as a background job (`… &` in a script starts it with SIGINT ignored, which children inherit)
    start = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             f"sys.argv = ['flywheel', 'fake-llm', '--port', '0', '--script', {str(script)!r}]; "
             "runpy.run_module('flywheel', run_name='__main__')")
    with subprocess.Popen([sys.executable, "-c", start], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}) as proc:
        try:
            base_url = proc.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
            with openai.OpenAI(base_url=base_url, api_key="t", max_retries=0, timeout=5) as c:
                assert ask(c, "ping?").choices[0].message.content == "pong"
        finally:
            proc.send_signal(signal.SIGINT)
            try:  # communicate, not wait: a child blocked on a full stderr pipe would never exit
                _, err = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                status = Path(f"/proc/{proc.pid}/status")
                signals = [ln for ln in status.read_text().splitlines() if ln.startswith("Sig")] \
                    if status.exists() else []
                proc.kill()
                _, err = proc.communicate()
                pytest.fail(f"fake-llm did not stop on SIGINT ({signals}); its stderr: {err[-3000:]}")
    assert proc.returncode == 130, err[-3000:]


def test_pytest_fixture_serves_scripted_answers(fake_llm):
    """`fake_llm` comes from flywheel's pytest11 entry point, as it does in users' test suites."""
    from openai import OpenAI

    fake_llm.add(r"refund", "Refunds take 5 days.")
    client = OpenAI(base_url=fake_llm.base_url, api_key="test", max_retries=0)
    out = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "refund policy?"}])
    assert out.choices[0].message.content == "Refunds take 5 days."

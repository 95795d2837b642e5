"""Prompt-cache usage out of `flywheel serve`'s OpenAI wires: an upstream's cached prompt tokens (fake_llm's
`Cached` reply) come back as `usage.prompt_tokens_details.cached_tokens` on chat completions (streamed final
usage chunk too) and legacy completions, and as `usage.input_tokens_details.cached_tokens` on the Responses API,
each body validated with the openai SDK's own models. Also: a stream waiting on a slow upstream gets SSE comments
(`: keep-alive`) that the SDK skips."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response

from flywheel.config import Project
from flywheel.testing.fake_llm import FakeLLM
from flywheel.testing.fake_llm_wire import Cached, prompt_tokens

PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}
cache: {{exact: false}}
"""
QUESTION = "remember the long shared prefix please"


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        server.add(r"shared prefix", Cached("Noted.", 4))
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, llm):
    from server_support import LiveServer

    from flywheel.server import create_app

    root = tmp_path_factory.mktemp("usage_cache")
    (root / "flywheel.yaml").write_text(PROJECT.format(base=llm.url), encoding="utf-8")
    server = LiveServer(create_app(Project.load(root))).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(live):
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)


def test_fake_llm_reports_cached_tokens_only_when_scripted(llm):
    up = openai.OpenAI(base_url=llm.base_url, api_key="x")
    cached = up.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": QUESTION}])
    plain = up.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hi"}])
    assert cached.usage.prompt_tokens_details.cached_tokens == 4
    assert plain.usage.prompt_tokens_details is None


def test_chat_completion_reports_cached_tokens(live):
    raw = httpx.post(f"{live.url}/v1/chat/completions", timeout=30,
                     json={"model": "gpt", "messages": [{"role": "user", "content": QUESTION}]}).json()
    done = ChatCompletion.model_validate(raw)
    assert done.usage.prompt_tokens_details.cached_tokens == 4
    assert done.usage.prompt_tokens == prompt_tokens({"messages": [{"content": QUESTION}]})
    other = httpx.post(f"{live.url}/v1/chat/completions", timeout=30,
                       json={"model": "gpt", "messages": [{"role": "user", "content": "hello"}]}).json()
    assert other["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}


def test_streamed_final_usage_chunk_reports_cached_tokens(client):
    chunks = list(client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": QUESTION}],
                                                 stream=True, stream_options={"include_usage": True}))
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk.model_dump())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Noted."
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens_details.cached_tokens == 4


def test_legacy_completion_reports_cached_tokens(client):
    done = client.completions.create(model="gpt", prompt=QUESTION)
    Completion.model_validate(done.model_dump())
    assert done.choices[0].text == "Noted." and done.usage.prompt_tokens_details.cached_tokens == 4


def test_responses_report_cached_tokens_streamed_and_stored(client):
    done = client.responses.create(model="gpt", input=QUESTION)
    Response.model_validate(done.model_dump())
    assert done.usage.input_tokens_details.cached_tokens == 4
    assert client.responses.retrieve(done.id).usage.input_tokens_details.cached_tokens == 4
    events = list(client.responses.create(model="gpt", input=QUESTION, stream=True))
    final = next(e for e in events if e.type == "response.completed").response
    assert final.usage.input_tokens_details.cached_tokens == 4


def test_slow_stream_gets_keep_alive_comments(live, llm, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_STREAM_PING_SECONDS", "0.02")
    llm.chunk_latency = 0.2
    try:
        with httpx.stream("POST", f"{live.url}/v1/chat/completions", timeout=30,
                          json={"model": "gpt", "stream": True,
                                "messages": [{"role": "user", "content": "say one two three"}]}) as r:
            lines = [line for line in r.iter_lines() if line]
        sdk = openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)
        text = "".join(c.choices[0].delta.content or "" for c in sdk.chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": "say one two three"}], stream=True) if c.choices)
    finally:
        llm.chunk_latency = 0.0
    assert ": keep-alive" in lines and lines[-1] == "data: [DONE]"
    assert text == "You said: say one two three"

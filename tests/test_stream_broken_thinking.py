"""A stream that breaks after only the model's thinking went out: the thinking is forwarded to the client as it
comes (the gateway's StreamChunk.reasoning; `delta.reasoning_content` on the server's chat route, thinking blocks
on its Messages route), so it counts as sent, and the attempt is `stream_broken` ("stream broke after N
characters"), the same on Anthropic's API and on Bedrock. Against fake_llm's Anthropic and Bedrock wires with
Claude's extended thinking on, the stream cut after the thinking."""

from __future__ import annotations

import pytest

from flywheel.config import ModelAlias
from flywheel.gateway import Gateway, RetryPolicy
from flywheel.testing.fake_llm import FakeLLM, Fault
from flywheel.testing.fake_llm_anthropic import _thought
from flywheel.types import ChatRequest

SECRET = "bedrock-secret-0123456789abcdef"
THINKING = {"max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 1024}}
QUESTION = "Capital of France?"


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("BEDROCK_TEST_KEY", SECRET)
    with FakeLLM(api_key=SECRET) as llm:
        llm.add("France", "Paris.")
        yield llm


def _alias(provider: str, llm: FakeLLM) -> ModelAlias:
    if provider == "bedrock":
        return ModelAlias(provider="bedrock", base_url=llm.url, model="anthropic.claude-3-7-sonnet-20250219-v1:0",
                          api_key_env="BEDROCK_TEST_KEY", max_retries=1, params=THINKING)
    return ModelAlias(provider="anthropic", base_url=llm.anthropic_base_url, model="claude-test",
                      api_key_env="BEDROCK_TEST_KEY", max_retries=1, params=THINKING)


@pytest.mark.parametrize("provider", ["anthropic", "bedrock"])
def test_a_stream_cut_after_its_thinking_is_stream_broken(fake, spans, provider):
    thought = _thought({"messages": [{"role": "user", "content": QUESTION}]})
    gw = Gateway({"m": _alias(provider, fake)}, retry=RetryPolicy(base_s=0.001, max_s=0.002))
    fake.fail(Fault.TRUNCATED_STREAM, times=1)
    chunks = list(gw.stream(ChatRequest.of(QUESTION, model="m")))
    assert "".join(c.delta for c in chunks) == "Paris."  # the retry answered
    assert "".join(c.reasoning or "" for c in chunks) == thought  # the thinking reached the caller once
    first, second = [s for s in spans if s.name.startswith("chat ")]
    assert first.attributes["error.type"] == "stream_broken"
    assert f"stream broke after {len(thought)} characters" in (first.error or "")
    assert second.error is None and [f.fault for f in fake.injected] == [Fault.TRUNCATED_STREAM]


@pytest.mark.parametrize("provider", ["anthropic", "bedrock"])
def test_a_whole_stream_with_thinking_answers_alike(fake, provider):
    gw = Gateway({"m": _alias(provider, fake)})
    chunks = list(gw.stream(ChatRequest.of(QUESTION, model="m")))
    assert "".join(c.delta for c in chunks) == "Paris."
    assert "".join(c.reasoning or "" for c in chunks) == _thought({"messages": [{"role": "user", "content": QUESTION}]})
    assert gw.chat(ChatRequest.of(QUESTION, model="m")).reasoning == _thought(
        {"messages": [{"role": "user", "content": QUESTION}]})

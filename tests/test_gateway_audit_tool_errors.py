"""A request whose tools the provider cannot express (a `tool_choice` Anthropic has no form for) is the caller's
mistake: the attempt fails at once as a client error, named as such, the fallback may still answer it, and a
chain where nothing could is exit code 2 (fix the request), not 3 (the upstream is down) — streamed or not."""
# ruff: noqa: F811 - pytest fixtures imported from gateway_support are redefined as parameters

from __future__ import annotations

import pytest
from gateway_support import llm, server  # noqa: F401 - fixtures

from flywheel.config import ModelAlias
from flywheel.errors import GatewayError
from flywheel.gateway import Gateway
from flywheel.types import ChatRequest

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


@pytest.fixture
def gw(llm, monkeypatch):
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "unused")
    claude = {"provider": "anthropic", "base_url": llm.anthropic_base_url, "api_key_env": "FAKE_ANTHROPIC_KEY",
              "max_retries": 2}
    gateway = Gateway({
        "claude": ModelAlias(model="fake-claude", **claude),
        "claude_then_gpt": ModelAlias(model="fake-claude", fallbacks=["gpt"], **claude),
        "gpt": ModelAlias(model="fake-model", base_url=llm.base_url, max_retries=0),
    })
    yield gateway
    gateway.close()


def request(model: str) -> ChatRequest:
    return ChatRequest.of("capital of France?", model=model, tools=[WEATHER], tool_choice="sometimes")


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_choice_anthropic_cannot_express_is_a_client_mistake(gw, llm, stream):
    with pytest.raises(GatewayError) as caught:
        list(gw.stream(request("claude"))) if stream else gw.chat(request("claude"))
    err = caught.value
    assert err.exit_code == 2
    (attempt,) = err.attempts  # not retried: it can never succeed
    assert attempt.user_fault and attempt.error.startswith("client: tool_choice must be auto, none, required")
    assert "ToolFormatError" not in str(err)
    assert llm.requests == []  # refused before anything was sent


@pytest.mark.parametrize("stream", [False, True])
def test_the_fallback_that_can_express_it_answers(gw, llm, stream):
    if stream:
        s = gw.stream(request("claude_then_gpt"))
        text = "".join(c.delta for c in s)
        result = s.result
    else:
        result = gw.chat(request("claude_then_gpt"))
        text = result.text
    assert text == "Paris." and result.attempts == 2
    assert llm.requests[-1]["tool_choice"] == "sometimes"  # passed through to the OpenAI-wire upstream

"""The anthropic provider through the official SDK against fake_llm's /v1/messages."""
# ruff: noqa: F811 - pytest fixtures imported from gateway_support are redefined as parameters

from __future__ import annotations

import asyncio

import pytest
from gateway_support import llm, server  # noqa: F401 - fixtures

from flywheel.config import ModelAlias, Price
from flywheel.errors import GatewayError
from flywheel.gateway import Gateway, RetryPolicy, StreamBrokenError
from flywheel.testing.fake_llm import Fault
from flywheel.types import ChatRequest

ANSWER = "Bonjour! Paris is the capital of France."


@pytest.fixture
def gw(llm):
    return Gateway({"claude": ModelAlias(provider="anthropic", model="claude-test", base_url=llm.anthropic_base_url,
                                         price=Price(input=3.0, output=15.0), params={"max_tokens": 300},
                                         max_retries=1)},
                   retry=RetryPolicy(base_s=0.01, max_s=0.02))


def request() -> ChatRequest:
    return ChatRequest.of("What is the capital of France?", system="Answer briefly.", model="claude",
                          temperature=0.2)


def test_chat_maps_system_and_reports_usage(gw, llm):
    result = gw.chat(request())
    assert result.text == ANSWER and result.provider == "anthropic" and result.model == "claude-test"
    body = llm.requests[-1]
    assert body["path"] == "/v1/messages"
    assert body["system"] == "Answer briefly."
    assert body["messages"] == [{"role": "user", "content": "What is the capital of France?"}]
    assert body["max_tokens"] == 300 and body["temperature"] == 0.2
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    assert result.cost_usd == pytest.approx((result.usage.input_tokens * 3 + result.usage.output_tokens * 15) / 1e6)


def test_retry_on_rate_limit_and_4xx_fails_fast(gw, llm):
    llm.fail(Fault.RATE_LIMIT, times=1)
    assert gw.chat(request()).attempts == 2
    llm.fail(Fault.SERVER_ERROR, times=1, status=400)
    with pytest.raises(GatewayError) as err:
        gw.chat(request())
    assert [a.status for a in err.value.attempts] == [400]


def test_stream_sync_and_async(gw, llm):
    stream = gw.stream(request())
    chunks = list(stream)
    assert "".join(c.delta for c in chunks) == ANSWER
    assert stream.result.usage.output_tokens > 0 and chunks[-1].finish_reason

    async def run():
        astream = gw.astream(request())
        text = "".join([c.delta async for c in astream])
        return text, astream.result

    text, result = asyncio.run(run())
    assert text == ANSWER and result.usage.input_tokens > 0


def test_async_chat(gw, llm):
    async def run():
        return await asyncio.wait_for(asyncio.gather(*[gw.achat(request()) for _ in range(5)]), 20)

    results = asyncio.run(run())
    assert [r.text for r in results] == [ANSWER] * 5


def test_truncated_stream_resumes_or_raises_when_resuming_is_off(gw, llm):
    llm.fail(Fault.TRUNCATED_STREAM, times=1)
    stream = gw.stream(request())
    assert "".join(c.delta for c in stream) == ANSWER and stream.result.attempts == 2
    gw.resume_streams = False
    llm.fail(Fault.TRUNCATED_STREAM, times=1)
    got = []
    with pytest.raises(StreamBrokenError):
        for chunk in gw.stream(request()):
            got.append(chunk.delta)
    assert got and ANSWER.startswith("".join(got))


@pytest.mark.parametrize("fault", [Fault.SERVER_ERROR, Fault.DROP, Fault.INVALID_JSON, Fault.TRUNCATED_STREAM])
def test_faults_are_retried(gw, llm, fault):
    llm.fail(fault, times=1)
    result = gw.chat(request())
    assert result.text == ANSWER and result.attempts == 2

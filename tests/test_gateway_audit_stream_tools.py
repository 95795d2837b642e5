"""A stream whose answer calls tools, broken midway and resumed from the next attempt: the consumer must get each
tool call's pieces once (never the name twice or the arguments concatenated), sync, async and through the
`openai` SDK against `flywheel serve`."""
# ruff: noqa: F811 - pytest fixtures imported from gateway_support are redefined as parameters

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from gateway_support import llm, server  # noqa: F401 - fixtures

from flywheel.config import ModelAlias
from flywheel.gateway import Gateway, RetryPolicy, StreamBrokenError
from flywheel.gateway.tools import merge_tool_deltas
from flywheel.testing.fake_llm import Fault, ToolCall
from flywheel.types import ChatRequest

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CLOCK = {"type": "function", "function": {
    "name": "get_time", "description": "Local time",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}}
CALLS = [ToolCall("get_weather", {"city": "巴黎 Paris, Île-de-France, France"}), ToolCall("get_time", {"tz": "Europe/Paris"})]
EXPECTED = [("get_weather", {"city": "巴黎 Paris, Île-de-France, France"}), ("get_time", {"tz": "Europe/Paris"})]


@pytest.fixture
def gw(llm):
    gateway = Gateway({
        "primary": ModelAlias(model="primary-model", base_url=llm.base_url, timeout=2.0, max_retries=1,
                              fallbacks=["backup"]),
        "backup": ModelAlias(model="backup-model", base_url=llm.base_url, timeout=2.0, max_retries=0),
    }, retry=RetryPolicy(base_s=0.01, max_s=0.02))
    yield gateway
    gateway.close()


def request() -> ChatRequest:
    return ChatRequest.of("weather and time in Paris?", model="primary", tools=[WEATHER, CLOCK])


def assembled(pieces: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    calls: list[dict[str, Any]] = []
    merge_tool_deltas(calls, pieces)
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls]


def pieces_of(chunks: list[Any]) -> list[dict[str, Any]]:
    return [p for c in chunks for p in c.tool_calls or []]


@pytest.mark.parametrize("provider", ["openai_compat", "anthropic"])
def test_a_tool_call_stream_cut_midway_is_resumed_without_repeating_pieces(gw, llm, provider, monkeypatch):
    if provider == "anthropic":
        monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "unused")
        gw = Gateway({"primary": ModelAlias(provider="anthropic", model="primary-model", base_url=llm.anthropic_base_url,
                                            api_key_env="FAKE_ANTHROPIC_KEY", timeout=2.0, max_retries=1)},
                     retry=RetryPolicy(base_s=0.01, max_s=0.02))
    llm.add("weather and time", CALLS)
    llm.fail(Fault.TRUNCATED_STREAM, times=1)
    stream = gw.stream(request())
    pieces = pieces_of(list(stream))
    assert assembled(pieces) == EXPECTED
    # each call's id and name arrive once, as in an unbroken stream
    assert sorted(p["index"] for p in pieces if (p.get("function") or {}).get("name")) == [0, 1]
    assert [c["id"] for c in stream.result.tool_calls] == [p["id"] for p in pieces if p.get("id")]
    assert stream.result.finish_reason == "tool_calls" and stream.result.attempts == 2


def test_the_resumed_tool_calls_keep_the_ids_the_consumer_already_has(gw, llm):
    llm.add("weather and time", CALLS)
    llm.fail(Fault.TRUNCATED_STREAM, times=2, model="primary-model")  # the backup resumes the stream
    stream = gw.stream(request())
    pieces = pieces_of(list(stream))
    assert assembled(pieces) == EXPECTED
    delivered_ids = [p["id"] for p in pieces if p.get("id")]
    assert [c["id"] for c in stream.result.tool_calls] == delivered_ids


def test_a_resumed_attempt_that_calls_another_tool_breaks_the_stream(gw, llm):
    answers = iter([CALLS, [ToolCall("get_time", {"tz": "Asia/Shanghai"})]])
    llm.add("weather and time", lambda body: next(answers))
    llm.fail(Fault.TRUNCATED_STREAM, times=1)
    with pytest.raises(StreamBrokenError):
        pieces_of(list(gw.stream(request())))


def test_async_tool_call_stream_cut_midway_is_resumed_without_repeating_pieces(gw, llm):
    llm.add("weather and time", CALLS)
    llm.fail(Fault.TRUNCATED_STREAM, times=1)

    async def run() -> list[Any]:
        return [c async for c in gw.astream(request())]

    assert assembled(pieces_of(asyncio.run(run()))) == EXPECTED


def test_the_openai_sdk_streaming_through_serve_gets_whole_tool_calls_after_a_cut(tmp_path, llm):
    import openai
    from server_support import serving

    llm.add("weather and time", CALLS)
    llm.fail(Fault.TRUNCATED_STREAM, times=1)
    yaml = (f'models:\n  gpt: {{provider: openai_compat, base_url: "{llm.base_url}", model: fake-model, '
            "max_retries: 1}\ncache: {exact: false}\n")
    with serving(tmp_path, yaml) as live:
        client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
        with client.chat.completions.stream(model="gpt", tools=[WEATHER, CLOCK],  # type: ignore[list-item]
                                            messages=[{"role": "user", "content": "weather and time in Paris?"}]) as s:
            final = s.get_final_completion()
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    assert [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []] == EXPECTED

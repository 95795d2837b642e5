"""Tool calling through the gateway (sync, async, streamed) on the openai_compat and anthropic providers against
fake_llm; the OpenAI ↔ Anthropic translation in gateway/tools.py; tools in cache keys; fake_llm tool scripts."""
# ruff: noqa: F811 - pytest fixtures imported from gateway_support are redefined as parameters

from __future__ import annotations

import asyncio
import json

import pytest
from gateway_support import llm, server  # noqa: F401 - fixtures

from flywheel.cache.keys import Versions, exact_key
from flywheel.config import ModelAlias
from flywheel.gateway import Gateway
from flywheel.gateway.tools import (
    ToolFormatError,
    anthropic_messages,
    anthropic_tool_choice,
    merge_tool_deltas,
    openai_messages,
    openai_tool_choice,
)
from flywheel.testing.fake_llm import FakeLLM, ToolCall
from flywheel.types import ChatRequest, Message

TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {
    "type": "object", "properties": {"q": {"type": "string"}}}}}]


@pytest.fixture
def gw(llm):
    llm.add(r"look it up", ToolCall("lookup", {"q": "北京 weather"}, id="call_a"))
    llm.add(r"two tools", [ToolCall("lookup", {"q": "a"}), ToolCall("lookup", {"q": "b"})])
    llm.add(r"sunny", "It is sunny.")
    return Gateway({
        "oa": ModelAlias(provider="openai_compat", model="fake-model", base_url=llm.base_url, max_retries=0),
        "an": ModelAlias(provider="anthropic", model="fake-claude", base_url=llm.anthropic_base_url, max_retries=0),
    })


def ask(alias: str, text: str = "please look it up") -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=text)], model=alias, tools=TOOLS)


def _drain(stream) -> list:
    return list(stream)


async def _adrain(stream) -> list:
    return [c async for c in stream]


@pytest.mark.parametrize("alias", ["oa", "an"])
@pytest.mark.parametrize("mode", ["chat", "achat", "stream", "astream"])
def test_tool_calls_come_back_in_openai_shape(gw, alias, mode):
    if mode == "chat":
        result = gw.chat(ask(alias))
    elif mode == "achat":
        result = asyncio.run(gw.achat(ask(alias)))
    else:
        stream = gw.stream(ask(alias)) if mode == "stream" else gw.astream(ask(alias))
        chunks = _drain(stream) if mode == "stream" else asyncio.run(_adrain(stream))
        assert any(c.tool_calls for c in chunks)
        result = stream.result
    assert result.finish_reason == "tool_calls"
    (call,) = result.tool_calls
    assert call["type"] == "function" and call["function"]["name"] == "lookup" and call["id"]
    assert json.loads(call["function"]["arguments"]) == {"q": "北京 weather"}


@pytest.mark.parametrize("alias", ["oa", "an"])
def test_parallel_tool_calls_keep_their_order(gw, alias):
    result = gw.chat(ask(alias, "two tools"))
    assert [json.loads(c["function"]["arguments"]) for c in result.tool_calls] == [{"q": "a"}, {"q": "b"}]
    streamed = gw.stream(ask(alias, "two tools"))
    _drain(streamed)
    assert streamed.result.tool_calls == result.tool_calls


@pytest.mark.parametrize("alias", ["oa", "an"])
def test_tool_result_turn_answers(gw, llm, alias):
    call = {"id": "call_a", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}
    req = ChatRequest(model=alias, tools=TOOLS, tool_choice="auto", messages=[
        Message(role="system", content="Be brief."), Message(role="user", content="please look it up"),
        Message(role="assistant", tool_calls=[call]), Message(role="tool", tool_call_id="call_a", content="sunny")])
    assert gw.chat(req).text == "It is sunny."
    sent = llm.requests[-1]
    if alias == "an":
        assert sent["system"] == "Be brief." and sent["tool_choice"] == {"type": "auto"}
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
        assert sent["messages"][2]["content"][0] == {"type": "tool_result", "tool_use_id": "call_a",
                                                     "content": "sunny"}
    else:
        assert sent["messages"][2] == {"role": "assistant", "content": None, "tool_calls": [call]}


def test_anthropic_messages_merge_consecutive_tool_results():
    calls = [{"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in (1, 2)]
    system, turns = anthropic_messages([
        Message(role="user", content="hi"), Message(role="assistant", content="Let me check.", tool_calls=calls),
        Message(role="tool", tool_call_id="c1", content="one"), Message(role="tool", tool_call_id="c2", content="two"),
        Message(role="user", content="and?")])
    assert system == ""
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"][0] == {"type": "text", "text": "Let me check."}
    assert [b["type"] for b in turns[2]["content"]] == ["tool_result", "tool_result", "text"]


def test_anthropic_turns_back_to_openai_messages():
    msgs = openai_messages("assistant", [{"type": "text", "text": "Checking."},
                                         {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}], "m")
    assert msgs == [Message(role="assistant", content="Checking.", tool_calls=[
        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}])]
    msgs = openai_messages("user", [{"type": "tool_result", "tool_use_id": "t1",
                                     "content": [{"type": "text", "text": "42"}]}], "m")
    assert msgs == [Message(role="tool", tool_call_id="t1", content="42")]
    with pytest.raises(ToolFormatError) as err:
        openai_messages("user", [{"type": "image"}], "messages.0.content")
    assert err.value.param == "messages.0.content.0.type"


@pytest.mark.parametrize(("openai", "anthropic"), [
    ("auto", {"type": "auto"}), ("none", {"type": "none"}), ("required", {"type": "any"}),
    ({"type": "function", "function": {"name": "f"}}, {"type": "tool", "name": "f"})])
def test_tool_choice_both_ways(openai, anthropic):
    assert anthropic_tool_choice(openai) == anthropic
    assert openai_tool_choice(anthropic) == (openai, None)


def test_merge_tool_deltas_concatenates_arguments_by_index():
    calls: list = []
    merge_tool_deltas(calls, [{"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}}])
    merge_tool_deltas(calls, [{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}}])
    merge_tool_deltas(calls, [{"index": 0, "function": {"arguments": '{"x"'}}])
    merge_tool_deltas(calls, [{"index": 0, "function": {"arguments": ": 1}"}}])
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("a", "f", '{"x": 1}'), ("b", "g", "{}")]


def test_cache_key_depends_on_tools_and_tool_choice():
    versions = Versions(model_version="m")
    base = ChatRequest.of("hi", model="x")
    keys = {exact_key(r, versions) for r in (
        base, base.model_copy(update={"tools": TOOLS}),
        base.model_copy(update={"tools": TOOLS, "tool_choice": "required"}),
        ChatRequest(model="x", messages=[Message(role="user", content="hi"),
                                         Message(role="tool", tool_call_id="c1", content="hi")]),
        ChatRequest(model="x", messages=[Message(role="user", content="hi"),
                                         Message(role="tool", tool_call_id="c2", content="hi")]))}
    assert len(keys) == 5


def test_fake_llm_script_tool_call(tmp_path):
    import openai

    script = tmp_path / "tools.yaml"
    script.write_text("rules:\n  - match: weather\n    tool_call: {name: get_weather, arguments: {city: Paris}}\n"
                      "  - match: both\n    reply: x\n    tool_call: {name: f}\n", encoding="utf-8")
    from flywheel.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        FakeLLM().load_script(script)
    assert err.value.where == f"{script}:4" and "exactly one" in err.value.message
    script.write_text("rules:\n  - match: weather\n    tool_call: {name: get_weather, arguments: {city: Paris}}\n",
                      encoding="utf-8")
    with FakeLLM() as fake:
        fake.load_script(script)
        client = openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0)
        done = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "weather?"}])
    assert done.choices[0].finish_reason == "tool_calls"
    assert json.loads(done.choices[0].message.tool_calls[0].function.arguments) == {"city": "Paris"}

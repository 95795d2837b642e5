"""Tool calling through `flywheel serve`: the official `openai` SDK on /v1/chat/completions and the `anthropic` SDK
on /v1/messages, each against an alias whose provider speaks OpenAI (`gpt`) and one whose provider speaks
Anthropic (`claude`), so the translation runs both ways. Upstream is fake_llm. Also: user and session ids on
the trace."""

from __future__ import annotations

import asyncio
import json

import anthropic
import openai
import pytest
import sqlalchemy as sa

from flywheel.config import Project
from flywheel.testing.fake_llm import FakeLLM, ToolCall

PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}
  claude: {{provider: anthropic, base_url: "{base}", model: fake-claude, max_retries: 0}}
cache: {{exact: false}}
"""
WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
SECRET = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 2
ALIASES = ["gpt", "claude"]


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        server.add(r"weather in Paris", ToolCall("get_weather", {"city": "Paris"}, id="call_w1"))
        server.add(r"leak the key", ToolCall("get_weather", {"city": SECRET}, id="call_s1"))
        server.add(r'"temp": 21', "It is 21 degrees in Paris.")
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, llm):
    from server_support import LiveServer

    from flywheel.server import create_app

    root = tmp_path_factory.mktemp("tools")
    (root / "flywheel.yaml").write_text(PROJECT.format(base=llm.url), encoding="utf-8")
    server = LiveServer(create_app(Project.load(root))).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(live):
    return openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def aclient(live):
    return anthropic.Anthropic(base_url=live.url, api_key="unused", max_retries=0)


def _upstream(llm: FakeLLM) -> dict:
    return llm.requests[-1]


def _trace(live, trace_id: str) -> dict:
    from flywheel.tracing import get_trace, tracer

    tracer.flush()
    trace = get_trace(live.state.store, trace_id)
    assert trace is not None
    return trace


def _spans(node: dict) -> list[dict]:
    out = [node]
    for child in node.get("children", []):
        out += _spans(child)
    return out


def _followup(call_id: str, name: str, arguments: str) -> list[dict]:
    return [{"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": call_id, "content": '{"temp": 21}'}]


@pytest.mark.parametrize("alias", ALIASES)
def test_openai_sdk_tool_round_trip(live, llm, client, alias):
    raw = client.chat.completions.with_raw_response.create(
        model=alias, tools=WEATHER, tool_choice="auto",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}])
    first = raw.parse()
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    sent = _upstream(llm)
    if alias == "gpt":
        assert sent["tools"] == WEATHER and sent["tool_choice"] == "auto"
    else:  # translated to Anthropic's shape
        assert sent["path"].endswith("/v1/messages")
        assert sent["tools"] == [{"name": "get_weather", "description": "Current weather in a city",
                                  "input_schema": WEATHER[0]["function"]["parameters"]}]
        assert sent["tool_choice"] == {"type": "auto"}

    # the llm span carries the tool call as output
    spans = _spans(_trace(live, raw.headers["x-flywheel-trace-id"])["spans"][0])
    attempt = next(s for s in spans if s["name"].startswith("chat "))
    assert attempt["outputs"]["tool_calls"][0]["function"]["name"] == "get_weather"

    done = client.chat.completions.create(model=alias, tools=WEATHER,
                                          messages=_followup(call.id, "get_weather", call.function.arguments))
    assert done.choices[0].message.content == "It is 21 degrees in Paris."
    assert done.choices[0].finish_reason == "stop" and not done.choices[0].message.tool_calls
    sent = _upstream(llm)
    if alias == "gpt":
        assert sent["messages"][1]["tool_calls"][0]["id"] == call.id
        assert sent["messages"][2] == {"role": "tool", "content": '{"temp": 21}', "tool_call_id": call.id}
    else:
        assert sent["messages"][1] == {"role": "assistant", "content": [
            {"type": "tool_use", "id": call.id, "name": "get_weather", "input": {"city": "Paris"}}]}
        assert sent["messages"][2] == {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call.id, "content": '{"temp": 21}'}]}


@pytest.mark.parametrize("alias", ALIASES)
def test_openai_sdk_streamed_tool_call(live, llm, client, alias):
    stream = client.chat.completions.create(model=alias, tools=WEATHER, stream=True,
                                            stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "What is the weather in Paris?"}])
    pieces, finish = [], None
    for chunk in stream:
        if chunk.choices:
            pieces += chunk.choices[0].delta.tool_calls or []
            finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert len(pieces) > 2  # id and name first, then the arguments in fragments
    assert pieces[0].id and pieces[0].function.name == "get_weather" and {p.index for p in pieces} == {0}
    arguments = "".join(p.function.arguments or "" for p in pieces)
    assert json.loads(arguments) == {"city": "Paris"}
    stream = client.chat.completions.create(model=alias, tools=WEATHER, stream=True,
                                            messages=_followup(pieces[0].id, "get_weather", arguments))
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "It is 21 degrees in Paris."


def test_async_openai_sdk_both_aliases(live):
    async def go():
        async with openai.AsyncOpenAI(base_url=live.url + "/v1", api_key="x", max_retries=0) as c:
            return await asyncio.gather(*(
                c.chat.completions.create(model=alias, tools=WEATHER, tool_choice="required",
                                          messages=[{"role": "user", "content": "weather in Paris, please"}])
                for alias in ALIASES))

    for done in asyncio.run(go()):
        assert done.choices[0].message.tool_calls[0].function.name == "get_weather"


@pytest.mark.parametrize(("choice", "anthropic_choice"), [
    ("required", {"type": "any"}), ("none", {"type": "none"}),
    ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"})])
def test_tool_choice_translated_for_anthropic_aliases(llm, client, choice, anthropic_choice):
    client.chat.completions.create(model="claude", tools=WEATHER, tool_choice=choice,
                                   messages=[{"role": "user", "content": "weather in Paris"}])
    assert _upstream(llm)["tool_choice"] == anthropic_choice


ANTHROPIC_TOOLS = [{"name": "get_weather", "description": "Current weather in a city",
                    "input_schema": WEATHER[0]["function"]["parameters"]}]


@pytest.mark.parametrize("alias", ALIASES)
def test_anthropic_sdk_tool_round_trip(live, llm, aclient, alias):
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = aclient.messages.create(model=alias, max_tokens=200, tools=ANTHROPIC_TOOLS, messages=ask,
                                    tool_choice={"type": "auto"})
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == {"city": "Paris"}
    sent = _upstream(llm)
    if alias == "gpt":  # Anthropic shape in, OpenAI shape to the provider
        assert sent["tools"] == WEATHER and sent["tool_choice"] == "auto"
    else:
        assert sent["tools"] == ANTHROPIC_TOOLS
    done = aclient.messages.create(model=alias, max_tokens=200, tools=ANTHROPIC_TOOLS, messages=[
        *ask, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": '{"temp": 21}'}]}])
    assert done.stop_reason == "end_turn" and done.content[0].text == "It is 21 degrees in Paris."
    sent = _upstream(llm)
    if alias == "gpt":
        assert sent["messages"][-1] == {"role": "tool", "content": '{"temp": 21}', "tool_call_id": use.id}
        assert sent["messages"][-2]["tool_calls"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize("alias", ALIASES)
def test_anthropic_sdk_streamed_tool_call(aclient, alias):
    with aclient.messages.stream(model=alias, max_tokens=200, tools=ANTHROPIC_TOOLS,
                                 messages=[{"role": "user", "content": "weather in Paris?"}]) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert "input_json" in kinds
    assert final.stop_reason == "tool_use"
    (use,) = [b for b in final.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == {"city": "Paris"} and use.id


def test_tool_arguments_are_scrubbed_on_the_trace(live, client):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt", tools=WEATHER, messages=[{"role": "user", "content": "leak the key"}])
    assert SECRET in raw.parse().choices[0].message.tool_calls[0].function.arguments  # the caller gets it
    stored = json.dumps(_trace(live, raw.headers["x-flywheel-trace-id"]))
    assert "get_weather" in stored and SECRET not in stored


def test_bad_tools_are_400_naming_the_field(live, aclient):
    import httpx

    r = httpx.post(live.url + "/v1/chat/completions", json={
        "model": "gpt", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools.0"
    r = httpx.post(live.url + "/v1/chat/completions", json={
        "model": "gpt", "messages": [{"role": "tool", "content": "42"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages.0"
    with pytest.raises(anthropic.BadRequestError) as err:
        aclient.messages.create(model="claude", max_tokens=10, tools=ANTHROPIC_TOOLS,
                                tool_choice={"type": "sometimes"}, messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 400


def _trace_row(live, trace_id: str) -> dict:
    from flywheel.tracing import tracer

    tracer.flush()
    with live.state.store.engine.connect() as conn:
        row = conn.execute(sa.text("select session_id, user_id from traces where trace_id = :t"),
                           {"t": trace_id}).one()
    return {"session_id": row[0], "user_id": row[1]}


def test_user_and_session_land_on_the_trace(live, client, aclient):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt", user="end-user-7", metadata={"session_id": "conv-42"},
        messages=[{"role": "user", "content": "hello"}])
    assert _trace_row(live, raw.headers["x-flywheel-trace-id"]) == {"session_id": "conv-42", "user_id": "end-user-7"}
    raw = client.chat.completions.with_raw_response.create(
        model="gpt", extra_headers={"x-flywheel-session-id": "conv-43"},
        messages=[{"role": "user", "content": "hello"}])
    assert _trace_row(live, raw.headers["x-flywheel-trace-id"]) == {"session_id": "conv-43", "user_id": None}
    raw = aclient.messages.with_raw_response.create(
        model="claude", max_tokens=20, metadata={"user_id": "end-user-8"},
        extra_headers={"x-flywheel-session-id": "conv-44"}, messages=[{"role": "user", "content": "hello"}])
    assert _trace_row(live, raw.headers["x-flywheel-trace-id"]) == {"session_id": "conv-44", "user_id": "end-user-8"}


def test_response_format_json_schema_passes_through(llm, client):
    schema = {"type": "json_schema", "json_schema": {"name": "weather", "strict": True, "schema": {
        "type": "object", "properties": {"temp": {"type": "number"}}, "required": ["temp"],
        "additionalProperties": False}}}
    client.chat.completions.create(model="gpt", response_format=schema,
                                   messages=[{"role": "user", "content": "temperature as JSON"}])
    assert _upstream(llm)["response_format"] == schema

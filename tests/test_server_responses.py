"""POST /v1/responses (the OpenAI Responses API) on a real `flywheel serve` app, driven by the official `openai`
SDK (`responses.create`, `responses.stream`, `responses.parse`) in front of fake_llm: an alias whose provider
speaks OpenAI (`gpt`) and one that speaks Anthropic (`claude`), an `app:docs_qa` answer with citations, errors
as the SDK's exception classes, traces, usage and budget charging (a stream the client cut included)."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
from pydantic import BaseModel

from flywheel.testing.fake_llm import FakeLLM, Fault, ToolCall

# $0.125 per output token on `gpt` → a 2-token answer costs exactly $0.25
PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0,
        price: {{input: 0.0, output: 125000.0}}}}
  claude: {{provider: anthropic, base_url: "{base}", model: fake-claude, max_retries: 0}}
retrieval: {{embedder: none}}
cache: {{exact: false}}
apps:
  helpdesk: {{kind: chat, model: gpt}}
"""
PAGE = """# Models

## Pinning

To pin a model version, set `version:` on the alias. Every result then records the pinned version.
"""
WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather in a city", "strict": True,
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": False}}
STORY = " ".join(f"word{i}" for i in range(60))
ALIASES = ["gpt", "claude"]


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        server.add(r"capital of France", "Paris.")
        server.add(r"weather in Paris", ToolCall("get_weather", {"city": "Paris"}, id="call_w1"))
        server.add(r'"temp": ?21', "It is 21 degrees in Paris.")
        server.add(r"city as JSON", '{"city": "Paris", "country": "France"}')
        server.add(r"long story", STORY)
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, llm):
    from server_support import serve_project

    server = serve_project(tmp_path_factory.mktemp("responses"), PROJECT.format(base=llm.url), {"models.md": PAGE})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(live):
    return openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)


def _sent(llm: FakeLLM) -> dict:
    return llm.requests[-1]


def _trace(live, trace_id: str) -> dict:
    from flywheel.tracing import get_trace, tracer

    tracer.flush()
    trace = get_trace(live.state.store, trace_id)
    assert trace is not None
    return trace


def test_plain_text_with_instructions_is_traced_and_priced(live, llm, client):
    raw = client.responses.with_raw_response.create(
        model="gpt", input="What is the capital of France?", instructions="Answer in one word.",
        temperature=0.2, max_output_tokens=50, user="u-1", metadata={"feature": "geo"}, store=True, top_p=0.9)
    resp = raw.parse()
    assert resp.output_text == "Paris." and resp.status == "completed" and resp.object == "response"
    assert resp.id.startswith("resp_") and resp.model == "gpt" and resp.incomplete_details is None
    (item,) = resp.output
    assert item.type == "message" and item.role == "assistant" and item.content[0].type == "output_text"
    sent = _sent(llm)
    assert sent["messages"] == [{"role": "system", "content": "Answer in one word."},
                                {"role": "user", "content": "What is the capital of France?"}]
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 50
    trace_id = raw.headers["x-flywheel-trace-id"]
    assert resp.id == f"resp_{trace_id}"
    trace = _trace(live, trace_id)
    assert trace["spans"][0]["name"] == "server /v1/responses" and trace["user_id"] == "u-1"
    assert trace["cost_usd"] == pytest.approx(0.25)
    # the usage the caller sees is the trace's
    assert resp.usage.output_tokens == 2 == trace["output_tokens"]
    assert resp.usage.input_tokens == trace["input_tokens"] > 0
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens


@pytest.mark.parametrize("alias", ALIASES)
def test_list_input_with_a_prior_assistant_turn(llm, client, alias):
    resp = client.responses.create(model=alias, input=[
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "Hello there"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hi!"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "One question."},
                                                        {"type": "input_text", "text": "What is the capital of France?"}]}])
    assert resp.output_text == "Paris."
    sent = _sent(llm)
    if alias == "gpt":
        assert sent["messages"] == [{"role": "system", "content": "Be brief."},
                                    {"role": "user", "content": "Hello there"},
                                    {"role": "assistant", "content": "Hi!"},
                                    {"role": "user", "content": "One question.\nWhat is the capital of France?"}]
    else:  # the Anthropic wire: system apart, turns alternate
        assert sent["path"].endswith("/v1/messages") and sent["system"] == "Be brief."
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
        assert sent["messages"][1]["content"] == "Hi!"


@pytest.mark.parametrize("alias", ALIASES)
def test_text_parts_are_joined_with_a_newline_as_on_chat_completions(llm, client, alias):
    parts = [{"type": "input_text", "text": "Hello"}, {"type": "input_text", "text": "world"}]
    resp = client.responses.create(model=alias, input=[{"role": "user", "content": parts}])
    assert resp.output_text == "You said: Hello\nworld"  # fake_llm echoes the prompt; glued, it read "Helloworld"
    chat = client.chat.completions.create(model=alias, messages=[
        {"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "world"}]}])
    assert chat.choices[0].message.content == resp.output_text
    one = client.responses.create(model=alias, input=[{"role": "user", "content": parts[:1]}])
    assert one.output_text == "You said: Hello"  # one part is its text unchanged


@pytest.mark.parametrize("alias", ALIASES)
def test_stream_deltas_add_up_to_the_final_text(live, client, alias):
    stream = client.responses.create(model=alias, input="tell a long story", stream=True)
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == STORY
    final = events[-1].response
    assert final.output_text == STORY and final.status == "completed"
    assert final.usage.output_tokens == 60
    assert events[0].response.id == final.id
    assert final.flywheel["trace_id"] and _trace(live, final.flywheel["trace_id"])["output_tokens"] == 60


def test_stream_helper_and_its_final_response(client):
    with client.responses.stream(model="gpt", input="What is the capital of France?") as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == "Paris." == final.output_text


@pytest.mark.parametrize("alias", ALIASES)
def test_function_tool_round_trip(live, llm, client, alias):
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.responses.create(model=alias, input=ask, tools=[WEATHER], tool_choice="auto")
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id
    assert json.loads(call.arguments) == {"city": "Paris"} and first.output_text == ""
    sent = _sent(llm)
    chat_tool = {"type": "function", "function": {k: WEATHER[k] for k in ("name", "description", "parameters",
                                                                          "strict")}}
    if alias == "gpt":
        assert sent["tools"] == [chat_tool] and sent["tool_choice"] == "auto"
    else:
        assert sent["tools"] == [{"name": "get_weather", "description": "Current weather in a city",
                                  "input_schema": WEATHER["parameters"]}]
    # the SDK way: earlier input + the response's output items + the tool's result
    done = client.responses.create(model=alias, tools=[WEATHER], input=[
        *ask, *first.output, {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp": 21}'}])
    assert done.output_text == "It is 21 degrees in Paris." and done.status == "completed"
    sent = _sent(llm)
    if alias == "gpt":
        assert sent["messages"][1]["tool_calls"] == [{"id": call.call_id, "type": "function", "function": {
            "name": "get_weather", "arguments": call.arguments}}]
        assert sent["messages"][2] == {"role": "tool", "content": '{"temp": 21}', "tool_call_id": call.call_id}
    else:
        assert sent["messages"][1]["content"] == [
            {"type": "tool_use", "id": call.call_id, "name": "get_weather", "input": {"city": "Paris"}}]


@pytest.mark.parametrize("alias", ALIASES)
def test_streamed_function_call(client, alias):
    with client.responses.stream(model=alias, input="weather in Paris?", tools=[WEATHER]) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
    assert "response.output_text.delta" not in kinds
    (call,) = final.output
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id
    assert json.loads(call.arguments) == {"city": "Paris"}


class City(BaseModel):
    city: str
    country: str


def test_json_schema_via_parse(llm, client):
    parsed = client.responses.parse(model="gpt", input="Give the city as JSON", text_format=City)
    assert parsed.output_parsed == City(city="Paris", country="France")
    fmt = _sent(llm)["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "City"
    assert fmt["json_schema"]["strict"] is True and fmt["json_schema"]["schema"]["required"] == ["city", "country"]
    client.responses.create(model="gpt", input="city as JSON", text={"format": {"type": "json_object"}})
    assert _sent(llm)["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("alias", ALIASES)
def test_max_output_tokens_makes_it_incomplete(client, alias):
    resp = client.responses.create(model=alias, input="tell a long story", max_output_tokens=5)
    assert resp.status == "incomplete" and resp.incomplete_details.reason == "max_output_tokens"
    assert resp.output_text == "word0 word1 word2 word3 word4" and resp.usage.output_tokens == 5
    assert resp.output[0].status == "incomplete"
    events = list(client.responses.create(model=alias, input="tell a long story", max_output_tokens=5, stream=True))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    assert events[-1].response.output_text == "word0 word1 word2 word3 word4"


def test_app_model_answers_with_citations(live, client):
    raw = client.responses.with_raw_response.create(model="app:docs_qa", input="How do I pin a model version?")
    resp = raw.parse()
    assert "set `version:` on the alias" in resp.output_text
    notes = resp.output[0].content[0].annotations
    assert notes and notes[0].type == "file_citation" and notes[0].filename == "docs/models.md"
    citations = resp.flywheel["citations"]
    assert citations[0]["source"] == "docs/models.md" and notes[0].file_id == citations[0]["chunk_id"]
    trace = _trace(live, raw.headers["x-flywheel-trace-id"])
    assert trace["app"] == "docs_qa" and trace["spans"][0]["name"] == "server /v1/responses"
    with client.responses.stream(model="app:docs_qa", input="How do I pin a model version?") as stream:
        final = stream.get_final_response()
    assert final.output_text == resp.output_text and final.output[0].content[0].annotations


def test_chat_app_continues_its_session(llm, client):
    first = client.responses.create(model="app:helpdesk", input="My name is Ada.", metadata={"session_id": "s-1"})
    assert first.output_text == "You said: My name is Ada."
    again = client.responses.create(model="app:helpdesk", input=[{"role": "user", "content": "capital of France?"}],
                                    metadata={"session_id": "s-1"})
    assert again.output_text == "Paris."
    turns = [(m["role"], m["content"]) for m in _sent(llm)["messages"] if m["role"] != "system"]
    assert turns == [("user", "My name is Ada."), ("assistant", "You said: My name is Ada."),
                     ("user", "capital of France?")]
    with pytest.raises(openai.BadRequestError) as err:  # only chat apps keep sessions
        client.responses.create(model="app:docs_qa", input="hi", metadata={"session_id": "s-2"})
    assert _error(err)["param"] == "metadata.session_id"


def _error(exc_info) -> dict:
    return exc_info.value.body


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"model": "gpt", "input": "hi", "tools": [{"type": "web_search"}]}, "tools.0.type"),
    ({"model": "gpt", "input": "hi", "conversation": "conv_123", "previous_response_id": "resp_1"}, "conversation"),
    ({"model": "gpt", "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
     "input.0.content.0.type"),
    ({"model": "gpt", "input": [{"type": "reasoning", "summary": []}]}, "input.0.type"),
    ({"model": "gpt", "input": [{"type": "function_call_output", "output": "42"}]}, "input.0.call_id"),
    ({"model": "gpt", "input": "hi", "tools": [{**WEATHER, "parameters": "city"}]}, "tools.0.parameters"),
    ({"model": "gpt", "input": "hi", "tool_choice": {"type": "file_search"}}, "tool_choice"),
    ({"model": "gpt", "input": "hi", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ({"model": "gpt", "input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "gpt", "input": "hi", "top_logprobs": 3}, "top_logprobs"),
    ({"model": "gpt", "input": "hi", "include": ["message.output_text.logprobs"]}, "include"),
    ({"model": "gpt", "input": "hi", "background": True}, "background"),
    ({"model": "gpt"}, "input"),
    ({"model": "app:docs_qa", "input": "hi", "tools": [WEATHER]}, "tools"),
])
def test_bad_requests_are_400_naming_the_field(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(**kwargs)
    assert err.value.status_code == 400 and _error(err)["param"] == param
    if kwargs.get("tools") == [{"type": "web_search"}]:
        assert "'web_search'" in _error(err)["message"]


def test_unknown_model_is_404_naming_the_known_ones(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.create(model="gpt-9", input="hi")
    assert _error(err)["code"] == "model_not_found" and _error(err)["param"] == "model"
    assert _error(err)["message"].endswith("known: claude, default, gpt")
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="app:nope", input="hi")


def test_upstream_failure_is_502_with_the_trace_id(live, llm, client):
    llm.fail(Fault.SERVER_ERROR, times=1, status=500)
    with pytest.raises(openai.APIStatusError) as err:
        client.responses.create(model="gpt", input="fault please")
    assert err.value.status_code == 502 and err.value.response.headers["x-flywheel-trace-id"]
    llm.fail(Fault.SERVER_ERROR, times=1, status=500)
    with pytest.raises(openai.APIStatusError) as err:  # before the first byte: a real status, not a broken stream
        client.responses.create(model="gpt", input="fault please", stream=True)
    assert err.value.status_code == 502


def test_upstream_break_mid_stream_is_an_error_event(live, llm, client):
    llm.fail(Fault.TRUNCATED_STREAM, times=1)
    events = list(client.responses.create(model="gpt", input="tell a long story", stream=True))
    kinds = [e.type for e in events]
    assert kinds[-2:] == ["error", "response.failed"] and "response.completed" not in kinds
    assert events[-2].message and events[-1].response.status == "failed"


def test_events_and_responses_validate_against_the_sdk_types(live):
    """The SDK builds its objects without validating them; here every event of a text stream and a tool stream, and
    the final response objects, are validated strictly against the SDK's pydantic types."""
    from openai.types.responses import Response, ResponseStreamEvent
    from pydantic import TypeAdapter

    adapter = TypeAdapter(ResponseStreamEvent)
    bodies = [{"model": "gpt", "input": "tell a long story", "max_output_tokens": 7},
              {"model": "claude", "input": "weather in Paris", "tools": [WEATHER]},
              {"model": "app:docs_qa", "input": "How do I pin a model version?"}]
    for body in bodies:
        plain = httpx.post(live.url + "/v1/responses", json=body, timeout=30).json()
        Response.model_validate({k: v for k, v in plain.items() if k != "flywheel"})
        with httpx.stream("POST", live.url + "/v1/responses", json={**body, "stream": True}, timeout=30) as resp:
            lines = [line for line in resp.iter_lines() if line.startswith("data: ")]
        events = [json.loads(line[6:]) for line in lines]
        for event in events:
            adapter.validate_python(event)
        assert _without_ids(events[-1]["response"]["output"]) == _without_ids(plain["output"])


def _without_ids(items: list[dict]) -> list[dict]:
    return [{k: v for k, v in item.items() if k not in ("id", "call_id")} for item in items]


def test_a_base_url_without_v1_is_told_to_add_it(live):
    bare = openai.OpenAI(base_url=live.url, api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError, match="set the client's base_url to"):
        bare.responses.create(model="gpt", input="hi")


def test_stream_cut_by_the_client_is_traced(live, llm):
    llm.chunk_latency = 0.05
    try:
        with httpx.stream("POST", live.url + "/v1/responses", timeout=30,
                          json={"model": "gpt", "stream": True, "input": "tell a long story"}) as resp:
            trace_id = resp.headers["x-flywheel-trace-id"]
            for line in resp.iter_lines():
                if "word2" in line:
                    break  # hang up mid-stream
    finally:
        llm.chunk_latency = 0.0
    trace = _wait_for_trace(live, trace_id)
    assert trace["status"] == "error" and "client disconnected" in (trace["spans"][0]["error"] or "")


def _wait_for_trace(live, trace_id: str) -> dict:
    from flywheel.tracing import get_trace, tracer

    trace = None
    for _ in range(200):  # wait for the server to notice the hang-up and end the trace (a poll, not a timing assert)
        tracer.flush()
        trace = get_trace(live.state.store, trace_id)
        if trace is not None and trace["status"] != "incomplete":
            break
        time.sleep(0.05)
    assert trace is not None
    return trace


# ---- keys: from here on the server requires them (keep these tests last in the module)


@pytest.fixture(scope="module")
def keys(live):
    return live.state.keys


def test_a_bad_key_is_401_before_the_body_is_read(live, keys):
    keys.create("responses-reader")
    bad = openai.OpenAI(base_url=live.url + "/v1", api_key="fw-000000000000-" + "x" * 43, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.responses.create(model="gpt", input=[{"type": "nonsense"}])
    resp = httpx.post(live.url + "/v1/responses", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 401


def test_budget_is_charged_and_exhausted_with_429(live, llm, keys):
    key, _ = keys.create("responses-spender", budget_usd=0.5)
    client = openai.OpenAI(base_url=live.url + "/v1", api_key=key, max_retries=0)
    assert client.responses.create(model="gpt", input="capital of France").output_text == "Paris."  # $0.25
    with client.responses.stream(model="gpt", input="capital of France") as stream:
        stream.get_final_response()  # $0.25 more: the budget is spent
    with pytest.raises(openai.RateLimitError) as err:
        client.responses.create(model="gpt", input="capital of France")
    assert _error(err)["code"] == "budget_exceeded"
    row = next(r for r in keys.list() if r["name"] == "responses-spender")
    assert row["spent_usd"] == 0.5 and row["reserved_usd"] == 0.0


def test_a_stream_cut_by_the_client_is_still_charged(live, llm, keys):
    key, _ = keys.create("responses-cutter", budget_usd=1000.0)
    llm.chunk_latency = 0.05
    try:
        with httpx.stream("POST", live.url + "/v1/responses", timeout=30, headers={"authorization": f"Bearer {key}"},
                          json={"model": "gpt", "stream": True, "input": "tell a long story"}) as resp:
            trace_id = resp.headers["x-flywheel-trace-id"]
            for line in resp.iter_lines():
                if "word2" in line:
                    break
    finally:
        llm.chunk_latency = 0.0
    _wait_for_trace(live, trace_id)
    row = next(r for r in keys.list() if r["name"] == "responses-cutter")
    assert row["spent_usd"] >= 3 * 0.125 and row["reserved_usd"] == 0.0  # at least the words it handed out

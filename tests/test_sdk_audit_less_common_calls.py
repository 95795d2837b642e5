"""The official `openai` / `anthropic` SDKs' less common calls against `flywheel serve` (fake_llm upstream): an
upstream rate limit reaches the SDK as its RateLimitError with the upstream's Retry-After (so the SDK's own retry
waits what the upstream asked), the Anthropic SDK finds its `request-id`, stop sequences end the answer with
the stop_reason / finish_reason the real APIs give, and a streamed Responses answer with parallel tool calls
finishes each item before the next opens."""

from __future__ import annotations

import anthropic
import openai
import pytest
from server_support import anthropic_client, openai_client

from flywheel.config import Project
from flywheel.testing.fake_llm import FakeLLM, Fault, ToolCall

PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}
  claude: {{provider: anthropic, base_url: "{base}", model: fake-claude, max_retries: 0}}
  mixed: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 1}}
cache: {{exact: false}}
"""
HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        server.add(r"weather", [ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {"tz": "CET"})])
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, llm):
    from server_support import LiveServer

    from flywheel.server import create_app

    root = tmp_path_factory.mktemp("sdk_audit")
    (root / "flywheel.yaml").write_text(PROJECT.format(base=llm.url), encoding="utf-8")
    server = LiveServer(create_app(Project.load(root))).start()
    yield server
    server.stop()


@pytest.fixture
def oai(live, llm):
    llm.clear_faults()
    return openai_client(live)


@pytest.fixture
def ant(live, llm):
    llm.clear_faults()
    return anthropic_client(live)


# ------------------------------------------------------------------------------------- upstream rate limits


def test_upstream_rate_limit_is_the_sdks_rate_limit_error_with_the_upstreams_retry_after(oai, llm):
    llm.fail(Fault.RATE_LIMIT, times=1, retry_after=0.25, model="fake-model")
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(model="gpt", messages=HELLO)
    err = caught.value
    assert err.status_code == 429
    assert err.body["type"] == "rate_limit_error" and err.body["code"] == "upstream_rate_limited"
    assert "HTTP 429" in err.body["message"]
    assert err.response.headers["retry-after-ms"] == "250" and err.response.headers["retry-after"] == "1"
    assert err.response.headers["x-flywheel-trace-id"]


def test_the_sdks_retry_takes_the_429_and_then_answers(live, llm):
    llm.clear_faults()
    llm.fail(Fault.RATE_LIMIT, times=1, retry_after=0.05, model="fake-model")
    client = openai_client(live, max_retries=2)
    raw = client.chat.completions.with_raw_response.create(model="gpt", messages=HELLO)
    assert raw.retries_taken == 1
    assert raw.parse().choices[0].message.content == "You said: hello there"


def test_a_stream_rate_limited_before_its_first_chunk_is_a_429_too(oai, llm):
    llm.fail(Fault.RATE_LIMIT, times=1, retry_after=2, model="fake-model")
    with pytest.raises(openai.RateLimitError) as caught:
        list(oai.chat.completions.create(model="gpt", messages=HELLO, stream=True))
    assert caught.value.response.headers["retry-after"] == "2"


def test_rate_limited_then_failed_otherwise_stays_a_502(oai, llm):
    # one attempt rate limited, the retry a server error: an outage, not a rate limit
    llm.fail(Fault.RATE_LIMIT, times=1, model="fake-model")
    llm.fail(Fault.SERVER_ERROR, times=1, model="fake-model")
    with pytest.raises(openai.InternalServerError) as caught:
        oai.chat.completions.create(model="mixed", messages=HELLO)
    assert caught.value.status_code == 502 and "retry-after" not in caught.value.response.headers


def test_anthropic_sdk_gets_its_rate_limit_error(ant, llm):
    llm.fail(Fault.RATE_LIMIT, times=1, retry_after=1, model="fake-claude")
    with pytest.raises(anthropic.RateLimitError) as caught:
        ant.messages.create(model="claude", max_tokens=50, messages=HELLO)
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert caught.value.response.headers["retry-after"] == "1"


# ------------------------------------------------------------------------------------------- request ids


def test_anthropic_sdk_reads_the_request_id_on_answers_and_errors(ant):
    raw = ant.messages.with_raw_response.create(model="claude", max_tokens=50, messages=HELLO)
    assert raw.request_id and raw.request_id == raw.headers["x-request-id"]
    assert raw.parse()._request_id == raw.request_id
    with pytest.raises(anthropic.NotFoundError) as caught:
        ant.messages.create(model="no-such-model", max_tokens=50, messages=HELLO)
    assert caught.value.request_id == caught.value.response.headers["x-request-id"]
    assert ant.models.with_raw_response.list().request_id  # anthropic-version: Anthropic's list page


# ------------------------------------------------------------------------------------------ stop sequences


def test_anthropic_stop_sequence_ends_the_answer_with_stop_reason_stop_sequence(ant):
    msg = ant.messages.create(model="claude", max_tokens=100, messages=HELLO, stop_sequences=["there", "said"])
    assert msg.content[0].text == "You " and msg.stop_reason == "stop_sequence" and msg.stop_sequence == "said"
    with ant.messages.stream(model="claude", max_tokens=100, messages=HELLO, stop_sequences=["said"]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "You " and final.stop_reason == "stop_sequence" and final.stop_sequence == "said"
    # the token limit reached before the stop sequence: max_tokens, no stop_sequence
    msg = ant.messages.create(model="claude", max_tokens=1, messages=HELLO, stop_sequences=["hello"])
    assert msg.stop_reason == "max_tokens" and msg.stop_sequence is None


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_openai_stop_cuts_the_answer_before_the_sequence(oai, model):
    done = oai.chat.completions.create(model=model, messages=HELLO, stop=["said"])
    assert done.choices[0].message.content == "You " and done.choices[0].finish_reason == "stop"
    chunks = list(oai.chat.completions.create(model=model, messages=HELLO, stop="said", stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "You "


# ------------------------------------------------------------------------------------ Responses streaming

WEATHER_TOOLS = [{"type": "function", "name": name, "parameters": {"type": "object", "properties": {}}}
                 for name in ("get_weather", "get_time")]


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_streamed_parallel_function_calls_are_finished_one_item_at_a_time(oai, model):
    with oai.responses.stream(model=model, input="weather and time?", tools=WEATHER_TOOLS) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [(o.name, o.arguments) for o in final.output] == [("get_weather", '{"city": "Paris"}'),
                                                               ("get_time", '{"tz": "CET"}')]
    order = [(e.type, e.output_index) for e in events if e.type in (
        "response.output_item.added", "response.function_call_arguments.done", "response.output_item.done")]
    assert order == [("response.output_item.added", 0), ("response.function_call_arguments.done", 0),
                     ("response.output_item.done", 0), ("response.output_item.added", 1),
                     ("response.function_call_arguments.done", 1), ("response.output_item.done", 1)]
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [e.arguments for e in done] == ['{"city": "Paris"}', '{"tz": "CET"}']


# ------------------------------------------------------------------------- fake_llm's own stop sequences


def test_fake_llm_ends_at_a_stop_sequence_on_each_wire(llm):
    from flywheel.testing import fake_llm_bedrock

    said = openai.OpenAI(base_url=llm.base_url, api_key="x", max_retries=0).chat.completions.create(
        model="fake-model", messages=HELLO, stop=["there", "said"], n=2)
    assert [(c.message.content, c.finish_reason) for c in said.choices] == [("You ", "stop")] * 2
    msg = anthropic.Anthropic(base_url=llm.url, api_key="x", max_retries=0).messages.create(
        model="fake-claude", max_tokens=100, messages=HELLO, stop_sequences=["hello"])
    assert (msg.content[0].text, msg.stop_reason, msg.stop_sequence) == ("You said: ", "stop_sequence", "hello")
    body = {"messages": [{"role": "user", "content": [{"text": "hello there"}]}],
            "inferenceConfig": {"stopSequences": ["said"]}}
    converse = fake_llm_bedrock.converse_response(fake_llm_bedrock.chat_view(body, "m"), "You said: hello there")
    assert converse["stopReason"] == "stop_sequence"
    assert converse["output"]["message"]["content"] == [{"text": "You "}]


# --------------------------------------------------------------------------- one tool call at a time

CHAT_TOOLS = [{"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}
              for name in ("get_weather", "get_time")]
ANTHROPIC_TOOLS = [{"name": name, "input_schema": {"type": "object", "properties": {}}}
                   for name in ("get_weather", "get_time")]
WEATHER = [{"role": "user", "content": "weather and time?"}]


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_parallel_tool_calls_false_answers_one_call_on_every_wire(oai, ant, model):
    both = oai.chat.completions.create(model=model, messages=WEATHER, tools=CHAT_TOOLS)
    assert len(both.choices[0].message.tool_calls) == 2
    one = oai.chat.completions.create(model=model, messages=WEATHER, tools=CHAT_TOOLS, parallel_tool_calls=False)
    assert [t.function.name for t in one.choices[0].message.tool_calls] == ["get_weather"]
    streamed = list(oai.chat.completions.create(model=model, messages=WEATHER, tools=CHAT_TOOLS, stream=True,
                                                parallel_tool_calls=False))
    assert {t.index for c in streamed if c.choices for t in c.choices[0].delta.tool_calls or ()} == {0}
    msg = ant.messages.create(model=model, max_tokens=100, messages=WEATHER, tools=ANTHROPIC_TOOLS,
                              tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    assert [b.name for b in msg.content if b.type == "tool_use"] == ["get_weather"]
    answer = oai.responses.create(model=model, input="weather and time?", tools=WEATHER_TOOLS,
                                  parallel_tool_calls=False)
    assert [o.name for o in answer.output] == ["get_weather"]

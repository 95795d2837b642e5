"""Explicit nulls from clients against `flywheel serve` (fake_llm upstream): the OpenAI API types `stream` and its
other optional parameters as nullable (`stream: Optional[Literal[False]]` in the openai SDK's own signature), so
`stream=None` — what a client sends that copies its settings into the call — is a plain answer on every wire, not
a 400; known OpenAI parameters sent as null (`audio`, `prediction`, `web_search_options`, the legacy `functions` /
`function_call`, the Responses `prompt`) are accepted as absent, and a value the server cannot honour is a 400
that names it and says what to send, not "unrecognized request argument". Found by running third-party clients
(node `openai` / `@anthropic-ai/sdk`, LangChain, LlamaIndex, LiteLLM, Instructor) against the server."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from server_support import anthropic_client, openai_client, serving

from flywheel.testing.fake_llm import FakeLLM

PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}
  claude: {{provider: anthropic, base_url: "{base}", model: fake-claude, max_retries: 0}}
retrieval: {{embedder: none}}
cache: {{exact: false}}
apps:
  support: {{kind: chat, model: gpt}}
"""
HI = [{"role": "user", "content": "你好"}]


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        server.add("你好", "你好！我是助手。")
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, llm):
    with serving(tmp_path_factory.mktemp("nulls"), PROJECT.format(base=llm.url)) as server:
        yield server


@pytest.mark.parametrize("model", ["gpt", "claude", "app:support"])
def test_stream_none_is_a_plain_answer_on_every_wire(live, model):
    oai = openai_client(live)
    done = oai.chat.completions.create(model=model, messages=HI, stream=None)
    assert done.object == "chat.completion" and done.choices[0].message.content == "你好！我是助手。"
    assert oai.responses.create(model=model, input="你好", stream=None).output_text == "你好！我是助手。"
    legacy = oai.completions.create(model=model, prompt="你好", stream=None)
    assert legacy.choices[0].text == "你好！我是助手。"
    msg = anthropic_client(live).messages.create(model=model, max_tokens=50, messages=HI, stream=None)
    assert msg.type == "message" and msg.content[0].text == "你好！我是助手。"


NULLABLE = ["audio", "prediction", "web_search_options", "functions", "function_call"]


def test_known_openai_parameters_sent_as_null_are_absent(live, llm):
    r = httpx.post(live.url + "/v1/chat/completions",
                   json={"model": "gpt", "messages": HI, **dict.fromkeys(NULLABLE)})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "你好！我是助手。"
    assert not set(NULLABLE) & set(llm.requests[-1])  # nothing of them reaches the upstream
    r = httpx.post(live.url + "/v1/responses", json={"model": "gpt", "input": "你好", "prompt": None})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("param", "value", "says"), [
    ("audio", {"voice": "alloy", "format": "mp3"}, "text only"),
    ("web_search_options", {}, "web search"),
    ("functions", [{"name": "get_weather", "parameters": {"type": "object", "properties": {}}}], "`tools`"),
    ("function_call", "auto", "`tool_choice`"),
])
def test_a_value_the_server_cannot_honour_is_a_400_that_says_what_to_send(live, param, value, says):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client(live).chat.completions.create(model="gpt", messages=HI, extra_body={param: value})
    err = caught.value.body
    assert err["param"] == param and err["code"] == "unsupported_parameter", err
    assert says in err["message"] and "unrecognized" not in err["message"]


def test_prediction_is_a_latency_hint_accepted_and_not_sent_upstream(live, llm):
    done = openai_client(live).chat.completions.create(
        model="gpt", messages=HI, prediction={"type": "content", "content": "你好！"})
    assert done.choices[0].message.content == "你好！我是助手。"
    assert "prediction" not in llm.requests[-1]


def test_responses_prompt_template_is_refused_by_name(live):
    r = httpx.post(live.url + "/v1/responses", json={"model": "gpt", "input": "你好", "prompt": {"id": "pmpt_1"}})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "prompt" and err["code"] == "unsupported_parameter" and "instructions" in err["message"]


# ------------------------------------------------------------------ what an app does not use, on the Responses API


@pytest.mark.parametrize("stream", [False, True])
def test_responses_app_names_what_it_ignored_like_chat_completions(live, stream):
    oai = openai_client(live)
    ask = {"model": "app:support", "instructions": "Be brief.", "max_output_tokens": 2, "temperature": 0.3,
           "input": [{"role": "user", "content": "我叫 Ada"}, {"role": "assistant", "content": "好的"},
                     {"role": "user", "content": "你好"}]}
    if stream:
        with oai.responses.stream(**ask) as events:
            answer = events.get_final_response()
    else:
        answer = oai.responses.create(**ask)
    assert answer.output_text == "你好！我是助手。"
    assert answer.model_extra["flywheel"]["ignored"] == [
        "instructions", "max_output_tokens", "temperature", "input before the last user message"]
    plain = oai.responses.create(model="app:support", input="你好")
    assert "ignored" not in plain.model_extra["flywheel"]


# ------------------------------------------------------------------------------------------------ batches


def _batch_lines(*bodies: dict) -> bytes:
    return "".join(json.dumps({"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions", "body": b},
                              ensure_ascii=False) + "\n" for i, b in enumerate(bodies)).encode()


def test_a_batch_line_with_a_refused_parameter_is_refused_at_creation_and_null_ones_are_fine(live):
    oai = openai_client(live)
    fine = {"model": "gpt", "messages": HI, "stream": None, "functions": None, "audio": None}
    legacy = {"model": "gpt", "messages": HI, "functions": [{"name": "f", "parameters": {}}]}
    bad = oai.files.create(file=("bad.jsonl", _batch_lines(fine, legacy)), purpose="batch")
    with pytest.raises(openai.BadRequestError) as caught:
        oai.batches.create(input_file_id=bad.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert caught.value.body["param"] == "body.functions" and "line 2" in caught.value.body["message"]
    good = oai.files.create(file=("good.jsonl", _batch_lines(fine)), purpose="batch")
    assert oai.batches.create(input_file_id=good.id, endpoint="/v1/chat/completions", completion_window="24h").id


def test_an_app_on_the_anthropic_wire_says_what_it_ignored_and_returns_its_flywheel_object(live):
    """`app:NAME` on /v1/messages dropped `system`, `temperature`, `stop_sequences` and earlier turns without a
    word, and a docs_qa app's citations were lost on that wire: now the message (and, streamed, its
    message_delta event) carries `flywheel` as chat completions does."""
    ask = {"model": "app:support", "max_tokens": 50, "system": "Be brief.", "stop_sequences": ["\n\n"],
           "messages": [{"role": "user", "content": "早"}, {"role": "assistant", "content": "早！"}, *HI]}
    # anthropic 2.x types no `temperature` argument any more; older SDKs and other clients send it
    msg = anthropic_client(live).messages.create(**ask, extra_body={"temperature": 0.3})
    extra = msg.model_extra["flywheel"]
    assert msg.content[0].text == "你好！我是助手。" and extra["app"] == "support"
    assert {"system", "temperature", "stop_sequences", "messages before the last user message"} <= set(extra["ignored"])
    assert "citations" in extra and "max_tokens" not in extra["ignored"]
    plain = anthropic_client(live).messages.create(model="app:support", max_tokens=50, messages=HI)
    assert "ignored" not in plain.model_extra["flywheel"]
    with httpx.stream("POST", live.url + "/v1/messages", json={**ask, "temperature": 0.3, "stream": True}, timeout=60,
                      headers={"x-api-key": "unused", "anthropic-version": "2023-06-01"}) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    (delta,) = [e for e in events if e["type"] == "message_delta"]
    assert delta["flywheel"]["app"] == "support" and "temperature" in delta["flywheel"]["ignored"]

"""Kept responses on POST /v1/responses: `previous_response_id` continues a conversation from its trace (the
caller's tenant's only; `store: false` ones and deleted ones are not found), GET /v1/responses/{id} answers the
same object again, and an `app:NAME` answer streams sentence by sentence on /v1/responses and /v1/messages, as on
/v1/chat/completions. Driven by the official `openai` and `anthropic` SDKs against a real uvicorn server in front
of fake_llm."""

from __future__ import annotations

import json
import re

import anthropic
import httpx
import openai
import pytest

from flywheel.testing.fake_llm import FakeLLM, ToolCall

PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}
  down: {{provider: openai_compat, base_url: "http://127.0.0.1:9/v1", model: fake-model, max_retries: 0}}
retrieval: {{embedder: none}}
cache: {{exact: false}}
apps:
  docs:
    kind: docs_qa
    model: gpt
    guards:
      output:
        - {{check: pii, entities: [EMAIL_ADDRESS], on_fail: redact}}
  assistant:
    kind: chat
    model: gpt
    guards:
      input:
        - {{check: pii, entities: [EMAIL_ADDRESS], on_fail: redact}}
  broken: {{kind: chat, model: down}}
"""
PAGE = """# Models

## Pinning

To pin a model version, set `version:` on the alias. Every result then records the pinned version.
"""
LEAK = "ops.team@example.com"
REPLY = (f"Set `version:` on the alias to pin it [1]. Every result then records the version [1]. "
         f"Write to {LEAK} if it does not. That is all there is to it.")
WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def _from_history(body: dict) -> str:
    """Answers only from earlier turns: the name or email a previous user message gave, if any."""
    earlier = " ".join(m["content"] for m in body["messages"][:-1] if isinstance(m.get("content"), str))
    found = re.search(r"my (name|email) is (\S+?)[.,]?(?:\s|$)", earlier, re.IGNORECASE)
    return f"Your {found.group(1)} is {found.group(2)}." if found else "I do not know."


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        server.add(r"pin a model version", REPLY)
        server.add(r"what is my (name|email)", _from_history)
        server.add(r"weather in Paris", ToolCall("get_weather", {"city": "Paris"}, id="call_w1"))
        server.add(r'"temp": ?21', "It is 21 degrees in Paris.")
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, llm):
    from server_support import serve_project

    server = serve_project(tmp_path_factory.mktemp("responses_state"), PROJECT.format(base=llm.url), {"models.md": PAGE})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(live):
    return openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)


def _tenant(live, tenant: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0,
                         default_headers={"x-flywheel-tenant": tenant})


def _turns(llm: FakeLLM) -> list[tuple]:
    return [(m["role"], m.get("content"), m.get("tool_call_id")) for m in llm.requests[-1]["messages"]]


def test_turn_two_answers_from_turn_one(live, llm, client):
    first = client.responses.create(model="gpt", input="My name is Ada.", instructions="Be brief.")
    assert first.store is True and first.previous_response_id is None
    second = client.responses.create(model="gpt", input="What is my name?", previous_response_id=first.id)
    assert second.output_text == "Your name is Ada." and second.previous_response_id == first.id
    # the earlier turn and its answer, without its instructions (OpenAI does not carry them over)
    assert _turns(llm) == [("user", "My name is Ada.", None), ("assistant", first.output_text, None),
                           ("user", "What is my name?", None)]
    third = client.responses.create(model="gpt", input="And what is my name now?", instructions="One line.",
                                    previous_response_id=second.id)
    assert third.output_text == "Your name is Ada."
    assert _turns(llm) == [("system", "One line.", None), ("user", "My name is Ada.", None),
                           ("assistant", first.output_text, None), ("user", "What is my name?", None),
                           ("assistant", "Your name is Ada.", None), ("user", "And what is my name now?", None)]
    from flywheel.tracing import get_trace, tracer

    tracer.flush()
    root = get_trace(live.state.store, third.id.removeprefix("resp_"))["spans"][0]
    assert root["attributes"]["flywheel.response.previous_id"] == second.id


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_round_trip_continued_by_previous_response_id(llm, client, stream):
    ask = "What is the weather in Paris?"
    if stream:
        with client.responses.stream(model="gpt", input=ask, tools=[WEATHER]) as events:
            first = events.get_final_response()
    else:
        first = client.responses.create(model="gpt", input=ask, tools=[WEATHER])
    (call,) = first.output
    assert call.type == "function_call" and call.call_id == "call_w1"
    done = client.responses.create(model="gpt", tools=[WEATHER], previous_response_id=first.id, input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp": 21}'}])
    assert done.output_text == "It is 21 degrees in Paris."
    sent = llm.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"] and sent[0]["content"] == ask
    assert sent[1]["tool_calls"] == [{"id": "call_w1", "type": "function",
                                      "function": {"name": "get_weather", "arguments": call.arguments}}]
    assert sent[2]["tool_call_id"] == "call_w1" and sent[2]["content"] == '{"temp": 21}'


def _error(exc_info) -> dict:
    return exc_info.value.body


def test_another_tenants_response_is_exactly_like_a_missing_one(live):
    acme, globex = _tenant(live, "acme"), _tenant(live, "globex")
    mine = acme.responses.create(model="gpt", input="My name is Ada.")
    assert acme.responses.retrieve(mine.id).output_text == mine.output_text
    missing = "resp_" + "0" * 32
    for rid in (mine.id, missing):
        with pytest.raises(openai.NotFoundError) as err:
            globex.responses.create(model="gpt", input="What is my name?", previous_response_id=rid)
        body = _error(err)
        assert body["param"] == "previous_response_id" and body["code"] == "response_not_found"
        assert body["message"] == f"no response with id {rid!r} was found"
        with pytest.raises(openai.NotFoundError) as err:
            globex.responses.retrieve(rid)
        assert _error(err)["message"] == f"no response with id {rid!r} was found"
    with pytest.raises(openai.NotFoundError):  # a chat completion's trace is no response
        chat = acme.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}])
        acme.responses.retrieve("resp_" + chat.id.removeprefix("chatcmpl-"))


def test_store_false_is_not_retrievable(client):
    unkept = client.responses.create(model="gpt", input="My name is Ada.", store=False)
    assert unkept.store is False and unkept.output_text
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.create(model="gpt", input="What is my name?", previous_response_id=unkept.id)
    assert _error(err)["param"] == "previous_response_id" and "store: false" in _error(err)["message"]
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.retrieve(unkept.id)
    assert "store: false" in _error(err)["message"]


def test_a_retrieve_gives_the_completed_at_the_response_was_sent_with(live, client, monkeypatch):
    # the stored response took the root span's end, a moment later: across a second boundary the two differed
    import time as real_time

    from flywheel.server import responses_api

    class Clock:
        def __getattr__(self, name):
            return getattr(real_time, name)

        def time(self) -> float:
            return 1_700_000_000.0  # when the response object was built and sent

    monkeypatch.setattr(responses_api, "time", Clock())
    plain = client.responses.create(model="gpt", input="What is the weather in Paris?")
    events = list(client.responses.create(model="gpt", input="My name is Ada.", stream=True))
    for sent in (plain, events[-1].response):
        assert sent.completed_at == 1_700_000_000
        assert client.responses.retrieve(sent.id).completed_at == 1_700_000_000


def test_retrieve_equals_the_create_response_and_delete_ends_it(live, client):
    made = client.responses.create(model="gpt", input="What is the weather in Paris?", tools=[WEATHER],
                                   metadata={"feature": "weather"}, temperature=0.3, user="u-7")
    assert client.responses.retrieve(made.id).model_dump() == made.model_dump()
    events = list(client.responses.create(model="gpt", input="My name is Ada.", instructions="Be brief.",
                                          stream=True))
    streamed = events[-1].response
    assert events[-1].type == "response.completed"
    assert client.responses.retrieve(streamed.id).model_dump() == streamed.model_dump()
    app = client.responses.create(model="app:docs", input="How do I pin a model version?")
    again = client.responses.retrieve(app.id)
    assert again.model_dump() == app.model_dump() and again.output[0].content[0].annotations
    client.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.retrieve(made.id)
    assert "deleted" in _error(err)["message"]
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt", input="again", previous_response_id=made.id)
    from flywheel.tracing import get_trace, tracer

    tracer.flush()
    assert get_trace(live.state.store, made.id.removeprefix("resp_")) is not None  # the trace stays


def test_a_value_an_input_guard_redacted_stays_redacted_in_the_rebuilt_history(llm, client):
    first = client.responses.create(model="app:assistant", input="Note: my email is ada@example.org, thanks")
    assert "ada@example.org" in first.output_text  # the caller gets their own value back
    second = client.responses.create(model="gpt", input="What is my email?", previous_response_id=first.id)
    sent = json.dumps(llm.requests[-1]["messages"])
    assert "ada@example.org" not in sent and "EMAIL_ADDRESS" in sent
    assert second.output_text.startswith("Your email is <EMAIL_ADDRESS")
    with pytest.raises(openai.BadRequestError) as err:  # an app keeps its own memory
        client.responses.create(model="app:assistant", input="and?", previous_response_id=first.id)
    assert _error(err)["param"] == "previous_response_id"


QUESTION = "How do I pin a model version?"


def _events(live, path: str, body: dict) -> list[str]:
    with httpx.stream("POST", live.url + path, json=body, timeout=30) as resp:
        assert resp.status_code == 200
        return [line for line in resp.iter_lines() if line.startswith("data: ")]


def test_an_app_answer_streams_sentence_by_sentence_on_responses(live, client):
    whole = client.responses.create(model="app:docs", input=QUESTION)
    events = list(client.responses.create(model="app:docs", input=QUESTION, stream=True))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == whole.output_text
    assert "<EMAIL_ADDRESS>" in whole.output_text
    final = events[-1].response
    assert events[-1].type == "response.completed" and final.output_text == whole.output_text
    assert final.output[0].content[0].annotations == whole.output[0].content[0].annotations
    assert final.flywheel["citations"] == whole.flywheel["citations"] and final.usage.output_tokens > 0
    raw = _events(live, "/v1/responses", {"model": "app:docs", "input": QUESTION, "stream": True})
    assert len(raw) > 5 and all(LEAK not in line and "ops.team" not in line for line in raw)


def test_an_app_answer_streams_sentence_by_sentence_on_messages(live):
    claude = anthropic.Anthropic(base_url=live.url, api_key="unused", max_retries=0)
    ask = [{"role": "user", "content": QUESTION}]
    whole = claude.messages.create(model="app:docs", max_tokens=200, messages=ask)
    with claude.messages.stream(model="app:docs", max_tokens=200, messages=ask) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(texts) > 1 and "".join(texts) == whole.content[0].text == final.content[0].text
    assert "<EMAIL_ADDRESS>" in whole.content[0].text and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    raw = _events(live, "/v1/messages", {"model": "app:docs", "max_tokens": 200, "messages": ask, "stream": True})
    assert len(raw) > 5 and all(LEAK not in line and "ops.team" not in line for line in raw)


def test_an_app_that_fails_before_any_text_is_an_http_error_on_both_wires(live, client):
    with pytest.raises(openai.APIStatusError) as err:
        client.responses.create(model="app:broken", input="hello?", stream=True)
    assert err.value.status_code >= 500
    claude = anthropic.Anthropic(base_url=live.url, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as failed:
        claude.messages.create(model="app:broken", max_tokens=50, stream=True,
                               messages=[{"role": "user", "content": "hello?"}])
    assert failed.value.status_code >= 500


# ---- keys: from here on the server requires them (keep this test last in the module)


def test_a_key_of_another_tenant_cannot_see_or_continue_a_response(live):
    keys = live.state.keys
    mine, _ = keys.create("responses-acme", tenant="acme")
    theirs, _ = keys.create("responses-globex", tenant="globex")
    acme = openai.OpenAI(base_url=live.url + "/v1", api_key=mine, max_retries=0)
    globex = openai.OpenAI(base_url=live.url + "/v1", api_key=theirs, max_retries=0)
    first = acme.responses.create(model="gpt", input="My name is Ada.")
    assert acme.responses.create(model="gpt", input="What is my name?",
                                 previous_response_id=first.id).output_text == "Your name is Ada."
    with pytest.raises(openai.NotFoundError) as err:
        globex.responses.create(model="gpt", input="What is my name?", previous_response_id=first.id)
    assert _error(err)["message"] == f"no response with id {first.id!r} was found"
    with pytest.raises(openai.NotFoundError):
        globex.responses.delete(first.id)
    assert acme.responses.retrieve(first.id).output_text == first.output_text  # not deleted by the other tenant

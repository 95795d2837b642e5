"""A model's reasoning sent back, read back and carried across providers, through the official SDKs against a live
`flywheel serve` in front of fake_llm (whose Anthropic wire refuses an unsigned thinking block with a 400, as
Anthropic does).

1. `/v1/responses`: a kept response's `reasoning` output item is kept with it — `responses.retrieve` answers the
   same output items as the create call (plain and streamed, same ids), and an `item_reference` to the reasoning
   item resolves (the Vercel AI SDK sends one while `store` is on).
2. Another provider's reasoning never reaches Anthropic as a thinking block: an OpenAI-compatible model's thinking,
   answered on `/v1/messages` as a thinking block with an empty signature, is dropped when the conversation goes on
   with an Anthropic alias (a model switch, a fallback chain, a tool loop with thinking on); signed thinking stays.
   On `/v1/chat/completions`, `reasoning_content` sent back on an earlier assistant message is accepted and dropped.
"""

from __future__ import annotations

import anthropic
import httpx
import pytest
from server_support import anthropic_client, last_messages_request, openai_client, serving

from flywheel.testing.fake_llm import FakeLLM, Fault
from flywheel.testing.fake_llm_anthropic import sign
from flywheel.testing.fake_llm_wire import Reasoned

PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}
  claude: {{provider: anthropic, base_url: "{base}", model: fake-claude, max_retries: 0}}
  thinker:
    provider: anthropic
    base_url: "{base}"
    model: fake-claude
    max_retries: 0
    params: {{max_tokens: 2048, thinking: {{type: enabled, budget_tokens: 1024}}}}
  chain: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0, fallbacks: [claude]}}
cache: {{exact: false}}
server: {{online_evaluators: false, embed_worker: false}}
"""
THOUGHT = "Six times seven; carry the four."
ANSWER = "Forty-two."


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        server.add(r"\bponder\b", Reasoned(ANSWER, 9, thought=THOUGHT))
        server.add(r"\bgo on\b", "Going on.")
        server.add(r"\b21 degrees\b", "It is warm.")
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, llm):
    with serving(tmp_path_factory.mktemp("reasoning_roundtrip"), PROJECT.format(base=llm.url)) as server:
        yield server


@pytest.fixture(scope="module")
def oai(live):
    return openai_client(live)


@pytest.fixture(scope="module")
def ant(live):
    return anthropic_client(live)


def _items(output) -> list[dict]:
    return [o.model_dump(exclude_none=True) for o in output]


def _thinking_blocks(body: dict) -> list[dict]:
    return [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]
            if b.get("type") == "thinking"]


# ------------------------------------------------------------------------------------ /v1/responses, kept


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_a_retrieved_response_answers_the_reasoning_item_the_create_call_did(oai, stream):
    if stream:
        with oai.responses.stream(model="gpt", input="please ponder this") as events:
            created = events.get_final_response()
    else:
        created = oai.responses.create(model="gpt", input="please ponder this")
    assert [o.type for o in created.output] == ["reasoning", "message"]
    got = oai.responses.retrieve(created.id)
    assert [o.type for o in got.output] == ["reasoning", "message"]
    assert [o.id for o in got.output] == [o.id for o in created.output]
    assert got.output[0].summary[0].text == created.output[0].summary[0].text == THOUGHT
    assert got.output_text == created.output_text == ANSWER
    assert _items(got.output) == _items(created.output)


def test_a_response_without_reasoning_is_retrieved_without_a_reasoning_item(oai):
    created = oai.responses.create(model="gpt", input="go on please")
    assert [o.type for o in oai.responses.retrieve(created.id).output] == ["message"]


def test_an_item_reference_to_the_reasoning_item_resolves_and_is_not_sent_to_the_model(oai, llm):
    first = oai.responses.create(model="gpt", input="please ponder the sum")
    refs = [{"type": "item_reference", "id": o.id} for o in first.output]  # as the Vercel AI SDK sends them
    nxt = oai.responses.create(model="gpt", input=[{"role": "user", "content": "please ponder the sum"}, *refs,
                                                   {"role": "user", "content": "go on"}])
    assert nxt.output_text == "Going on."
    sent = llm.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == ANSWER and THOUGHT not in str(sent)


# ------------------------------------------------------------------------------------ to Anthropic: signed only


def test_fake_anthropic_refuses_an_unsigned_thinking_block_as_anthropic_does(llm):
    client = anthropic.Anthropic(base_url=llm.anthropic_base_url, api_key="unused", max_retries=0)
    history = [{"role": "user", "content": "please ponder"},
               {"role": "assistant", "content": [{"type": "thinking", "thinking": THOUGHT, "signature": ""},
                                                 {"type": "text", "text": ANSWER}]},
               {"role": "user", "content": "go on"}]
    with pytest.raises(anthropic.BadRequestError, match="signature"):
        client.messages.create(model="fake-claude", max_tokens=100, messages=history)


@pytest.mark.parametrize("alias", ["claude", "thinker"])
def test_another_providers_thinking_is_dropped_when_an_anthropic_alias_goes_on(ant, llm, alias):
    ask = {"role": "user", "content": "please ponder it"}
    first = ant.messages.create(model="gpt", max_tokens=500, messages=[ask])
    assert [b.type for b in first.content] == ["thinking", "text"] and first.content[0].signature == ""
    signed = ant.messages.create(model="thinker", max_tokens=2048, messages=[{"role": "user", "content": "go on"}])
    assert signed.content[0].type == "thinking" and signed.content[0].signature
    history = [ask, {"role": "assistant", "content": first.content}, {"role": "user", "content": "go on a"},
               {"role": "assistant", "content": signed.content}, {"role": "user", "content": "go on b"}]
    answer = ant.messages.create(model=alias, max_tokens=2048, messages=history)
    assert [b.text for b in answer.content if b.type == "text"] == ["Going on."]
    sent = last_messages_request(llm)
    assert _thinking_blocks(sent) == [signed.content[0].model_dump(exclude_none=True)]  # the signed one stays
    assert sent["messages"][1]["content"] == [{"type": "text", "text": ANSWER}]


def test_a_fallback_from_an_openai_compatible_model_to_claude_drops_its_thinking(ant, llm):
    ask = {"role": "user", "content": "please ponder again"}
    first = ant.messages.create(model="chain", max_tokens=500, messages=[ask])
    assert first.content[0].type == "thinking" and first.content[0].thinking == THOUGHT
    llm.fail(Fault.SERVER_ERROR, 1, model="fake-model", status=503)  # the next turn falls back to claude
    history = [ask, {"role": "assistant", "content": first.content}, {"role": "user", "content": "go on"}]
    answer = ant.messages.create(model="chain", max_tokens=500, messages=history)
    assert answer.content[-1].text == "Going on."
    assert last_messages_request(llm)["model"] == "fake-claude"
    assert _thinking_blocks(last_messages_request(llm)) == []


def test_a_tool_loop_another_provider_began_goes_on_without_thinking(ant, llm):
    """The turn calling the tool carries no signed thinking: Anthropic would refuse thinking on for that tool loop
    (its last assistant turn must start with a thinking block), so the request goes without `thinking`."""
    history = [{"role": "user", "content": "weather in Paris?"},
               {"role": "assistant", "content": [
                   {"type": "thinking", "thinking": "I should look it up.", "signature": ""},
                   {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                             "content": "21 degrees"}]}]
    tools = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    answer = ant.messages.create(model="claude", max_tokens=2048, tools=tools, messages=history,
                                 thinking={"type": "enabled", "budget_tokens": 1024})
    assert [b.text for b in answer.content if b.type == "text"] == ["It is warm."]
    sent = last_messages_request(llm)
    assert "thinking" not in sent and _thinking_blocks(sent) == []
    assert [b["type"] for b in sent["messages"][1]["content"]] == ["tool_use"]


def test_signed_thinking_in_a_tool_loop_keeps_thinking_on(ant, llm):
    tools = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    thought = "I should look it up."
    history = [{"role": "user", "content": "weather in Paris?"},
               {"role": "assistant", "content": [
                   {"type": "thinking", "thinking": thought, "signature": sign(thought)},
                   {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                             "content": "21 degrees"}]}]
    ant.messages.create(model="claude", max_tokens=2048, tools=tools, messages=history,
                        thinking={"type": "enabled", "budget_tokens": 1024})
    sent = last_messages_request(llm)
    assert sent["thinking"]["type"] == "enabled" and len(_thinking_blocks(sent)) == 1


# ------------------------------------------------------------------------------------ /v1/chat/completions


@pytest.mark.parametrize("alias", ["gpt", "claude", "thinker"])
def test_reasoning_content_sent_back_on_chat_completions_is_dropped(oai, llm, alias):
    messages: list = [{"role": "user", "content": "please ponder that"}]
    first = oai.chat.completions.create(model="gpt", messages=messages)
    assert first.choices[0].message.model_extra["reasoning_content"] == THOUGHT
    messages += [first.choices[0].message, {"role": "user", "content": "go on"}]  # the SDK's usual loop
    nxt = oai.chat.completions.create(model=alias, messages=messages)
    assert nxt.choices[0].message.content == "Going on."
    sent = llm.requests[-1]
    assert THOUGHT not in str(sent["messages"])
    assert all("reasoning_content" not in m for m in sent["messages"])


def test_a_raw_reasoning_field_on_a_message_is_accepted_too(live, llm):
    body = {"model": "gpt", "messages": [{"role": "user", "content": "please ponder"},
                                         {"role": "assistant", "content": ANSWER, "reasoning": THOUGHT},
                                         {"role": "user", "content": "go on"}]}
    r = httpx.post(live.url + "/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 200, r.text
    assert THOUGHT not in str(llm.requests[-1]["messages"])

"""Reasoning leftovers on `flywheel serve`, through the official openai SDK against a live server in front of
fake_llm (a model that thinks: `Reasoned`).

1. `/v1/chat/completions`: an assistant message appended to `messages` the way SDK users do (the parsed
   `ChatCompletionMessage` object itself, serialised by the SDK with the fields its provider sent) is accepted,
   whatever provider answered it: OpenRouter's `reasoning` + `reasoning_details`, OpenAI's `refusal`,
   `annotations`, `audio: null`, `function_call: null`. None of them reaches the model.
2. Conversations: a response's `reasoning` output item is a conversation item (listed, retrieved, as OpenAI
   keeps it), and reasoning items sent to `conversations.items.create` are kept; the thinking is never sent to a
   model on a later turn.
3. `flywheel traces show` of an n > 1 request prints each choice's answer and then its reasoning, not JSON.
"""

from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner
from openai.types.chat import ChatCompletionMessage
from server_support import openai_client, serving

from flywheel.cli import main
from flywheel.testing.fake_llm import Choices, FakeLLM
from flywheel.testing.fake_llm_wire import Reasoned
from flywheel.tracing import tracer

PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}
cache: {{exact: false}}
server: {{online_evaluators: false, embed_worker: false}}
"""
THOUGHT = "Six times seven; carry the four."
ANSWER = "Forty-two."
DETAILS = [{"type": "reasoning.text", "text": THOUGHT, "format": "unknown", "index": 0},
           {"type": "reasoning.encrypted", "data": "gAAAAB-opaque", "format": "openai-responses-v1", "index": 1}]


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        server.add(r"\bponder\b", Reasoned(ANSWER, 9, thought=THOUGHT))
        server.add(r"\btwo minds\b", Choices(Reasoned("Red.", 2, thought="Warm colours first."),
                                             Reasoned("Blue.", 2, thought="The sky decides.")))
        server.add(r"\bgo on\b", "Going on.")
        yield server


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("reasoning_server_leftovers")


@pytest.fixture(scope="module")
def live(root, llm):
    with serving(root, PROJECT.format(base=llm.url)) as server:
        yield server


@pytest.fixture(scope="module")
def oai(live):
    return openai_client(live)


def _sent(llm: FakeLLM) -> list[dict]:
    return llm.requests[-1]["messages"]


# ------------------------------------------------------------------------------------ 1. chat completions


# what the openai SDK parses from each provider's answer (model_validate: every field it sent is "set", so the
# SDK serialises it back when the message object itself is appended to `messages`)
PARSED = {
    "openrouter": {"role": "assistant", "content": ANSWER, "refusal": None, "reasoning": THOUGHT,
                   "reasoning_details": DETAILS},
    "openai": {"role": "assistant", "content": ANSWER, "refusal": None, "annotations": [], "audio": None,
               "function_call": None, "tool_calls": None},
    "openai-web-search": {"role": "assistant", "content": ANSWER, "refusal": None, "annotations": [
        {"type": "url_citation", "url_citation": {"url": "https://example.com", "title": "Example",
                                                  "start_index": 0, "end_index": 5}}]},
}


@pytest.mark.parametrize("provider", sorted(PARSED))
def test_an_appended_sdk_message_from_any_provider_is_accepted_and_its_extras_dropped(oai, llm, provider):
    message = ChatCompletionMessage.model_validate(PARSED[provider])
    messages: list = [{"role": "user", "content": "please ponder that"}, message, {"role": "user", "content": "go on"}]
    nxt = oai.chat.completions.create(model="gpt", messages=messages)
    assert nxt.choices[0].message.content == "Going on."
    sent = _sent(llm)
    assert sent[1] == {"role": "assistant", "content": ANSWER}  # nothing but the answer reaches the model
    assert THOUGHT not in json.dumps(sent)


def test_the_sdk_loop_over_the_servers_own_answer_goes_on(oai, llm):
    messages: list = [{"role": "user", "content": "please ponder that"}]
    for follow_up in ("go on", "go on again"):
        resp = oai.chat.completions.create(model="gpt", messages=messages)
        messages += [resp.choices[0].message, {"role": "user", "content": follow_up}]
    assert oai.chat.completions.create(model="gpt", messages=messages).choices[0].message.content == "Going on."
    assert THOUGHT not in json.dumps(_sent(llm))


@pytest.mark.parametrize("field", ["function_call", "audio"])
def test_a_legacy_function_call_or_an_audio_reference_is_a_400_naming_it(live, field):
    value = {"name": "f", "arguments": "{}"} if field == "function_call" else {"id": "audio_abc"}
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"},
                                         {"role": "assistant", "content": None, field: value},
                                         {"role": "user", "content": "go on"}]}
    r = httpx.post(live.url + "/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == f"messages.1.{field}"


# ------------------------------------------------------------------------------------ 2. conversations


def _reasoning_texts(items) -> list[str]:
    return [s.text for i in items if i.type == "reasoning" for s in i.summary]


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_a_responses_reasoning_item_is_a_conversation_item(oai, llm, stream):
    conv = oai.conversations.create()
    if stream:
        with oai.responses.stream(model="gpt", input="please ponder", conversation=conv.id) as s:
            first = s.get_final_response()
    else:
        first = oai.responses.create(model="gpt", input="please ponder", conversation=conv.id)
    assert [o.type for o in first.output] == ["reasoning", "message"]
    items = list(oai.conversations.items.list(conv.id, order="asc"))
    assert [i.type for i in items] == ["message", "reasoning", "message"]
    assert _reasoning_texts(items) == [THOUGHT]
    one = oai.conversations.items.retrieve(items[1].id, conversation_id=conv.id)
    assert one.type == "reasoning" and _reasoning_texts([one]) == [THOUGHT]

    nxt = oai.responses.create(model="gpt", input="go on", conversation=conv.id)
    assert nxt.output_text == "Going on."
    sent = _sent(llm)
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert THOUGHT not in json.dumps(sent)


def test_reasoning_items_added_to_a_conversation_are_kept_and_never_sent(oai, llm):
    earlier = oai.responses.create(model="gpt", input="please ponder", store=False)
    conv = oai.conversations.create(items=[{"type": "message", "role": "user", "content": "please ponder"},
                                           *[o.model_dump(exclude_none=True) for o in earlier.output]])
    assert _reasoning_texts(oai.conversations.items.list(conv.id)) == [THOUGHT]
    only = oai.conversations.create()
    added = oai.conversations.items.create(only.id, items=[{"type": "reasoning", "summary": [
        {"type": "summary_text", "text": THOUGHT}]}])
    assert [i.type for i in added.data] == ["reasoning"]
    for cid in (conv.id, only.id):  # a conversation holding only thinking goes on with the new input alone
        assert oai.responses.create(model="gpt", input="go on", conversation=cid).output_text == "Going on."
        assert THOUGHT not in json.dumps(_sent(llm))
    assert [m["role"] for m in _sent(llm)] == ["user"]


# ------------------------------------------------------------------------------------ 3. traces show, n > 1


def test_traces_show_prints_each_choices_answer_then_its_reasoning(oai, root):
    resp = oai.chat.completions.create(model="gpt", n=2, messages=[{"role": "user", "content": "two minds"}])
    assert [c.message.content for c in resp.choices] == ["Red.", "Blue."]
    tracer.flush()
    out = CliRunner().invoke(main, ["--project", str(root), "traces", "show", resp.id], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    shown = out.output
    assert '"reasoning"' not in shown and '"content"' not in shown  # not the attempt span's JSON
    lines = [line.split("│")[-1].strip() for line in shown.splitlines()]
    served, call, attempt = [i for i, line in enumerate(lines) if line == "out: 2 choices"]
    assert lines[served + 1:served + 3] == ["choice 0: Red.", "choice 1: Blue."]  # the server's root span
    assert lines[call + 1:call + 3] == ["choice 0: Red.", "choice 1: Blue."]  # the call span: the answers alone
    assert lines[attempt + 1:attempt + 5] == ["choice 0: Red.", "reasoning: Warm colours first.",
                                              "choice 1: Blue.", "reasoning: The sky decides."]

"""A model's reasoning on every wire `flywheel serve` speaks, read back by the official SDKs.

1. A Claude alias with extended thinking (`thinking: {type: enabled}` in its params): the thinking blocks' text
   is `ChatResult.reasoning` / `StreamChunk.reasoning` (never the answer), `message.reasoning_content` on the chat
   route (streamed: `delta.reasoning_content`), on the attempt span; `/v1/messages` still relays the signed
   blocks once, as Anthropic sent them.
2. `/v1/responses` answers a `reasoning` output item (summary_text) before the message, streamed as the
   response.reasoning_summary_* events; `[*response.output, next turn]` sent back is accepted. Batch results
   (the chat body) carry `reasoning_content`.
3. n > 1: each choice has its own reasoning (one upstream request with `n`, or n merged Anthropic requests).
"""

from __future__ import annotations

import json
import time

import pytest
from server_support import anthropic_client, openai_client

from flywheel.config import ModelAlias
from flywheel.gateway import Gateway
from flywheel.testing.fake_llm import Choices, FakeLLM
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
cache: {{exact: false}}
server: {{online_evaluators: false, embed_worker: false}}
"""
THOUGHT = "The user asks for the answer; it is forty-two."
ANSWER = "Forty-two."


def claude_thought(question: str) -> str:
    """What the fake Anthropic model thinks (fake_llm_anthropic) when thinking is on."""
    return f"The user asked: {question}"


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        server.add(r"\bponder\b", Reasoned(ANSWER, 9, thought=THOUGHT))
        server.add(r"\btwo minds\b", Choices(Reasoned("Red.", 2, thought="Warm colours first."),
                                             Reasoned("Blue.", 2, thought="The sky decides.")))
        server.add(r"\bclaude question\b", "Claude answers.")
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, llm):
    from server_support import serving

    with serving(tmp_path_factory.mktemp("reasoning_wires"), PROJECT.format(base=llm.url)) as server:
        yield server


@pytest.fixture(scope="module")
def oai(live):
    return openai_client(live)


@pytest.fixture(scope="module")
def ant(live):
    return anthropic_client(live)


def _gateway(llm: FakeLLM) -> Gateway:
    thinking = {"max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    return Gateway({"gpt": ModelAlias(model="fake-model", base_url=llm.base_url, max_retries=0),
                    "thinker": ModelAlias(provider="anthropic", model="fake-claude", base_url=llm.url,
                                          max_retries=0, params=thinking)})


# ------------------------------------------------------------------------------------ Anthropic extended thinking


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
def test_claude_thinking_is_the_results_reasoning_not_its_text(llm, spans, stream):
    from flywheel.types import ChatRequest

    question = f"claude question {stream}"
    gw = _gateway(llm)
    try:
        request = ChatRequest.of(question, model="thinker")
        if stream:
            s = gw.stream(request)
            chunks = list(s)
            assert "".join(c.delta for c in chunks) == "Claude answers."
            assert "".join(c.reasoning or "" for c in chunks) == claude_thought(question)
            result = s.result
        else:
            result = gw.chat(request)
    finally:
        gw.close()
    assert result is not None and result.text == "Claude answers."
    assert result.reasoning == claude_thought(question)
    (span,) = [s for s in spans if "flywheel.attempt" in s.attributes and s.trace_id == result.trace_id]
    assert span.outputs["reasoning"] == claude_thought(question)
    (top,) = [s for s in spans if s.name == "gateway.chat" and s.trace_id == result.trace_id]
    assert top.outputs == "Claude answers."  # what guards, cache and evals read


def test_chat_route_returns_a_claude_aliases_thinking_as_reasoning_content(oai):
    msg = oai.chat.completions.create(model="thinker", messages=[{"role": "user", "content": "claude question"}]) \
        .choices[0].message
    assert msg.content == "Claude answers."
    assert msg.model_extra["reasoning_content"] == claude_thought("claude question")
    thought, text = [], []
    for chunk in oai.chat.completions.create(model="thinker", stream=True,
                                             messages=[{"role": "user", "content": "claude question s"}]):
        if chunk.choices:
            thought.append((chunk.choices[0].delta.model_extra or {}).get("reasoning_content") or "")
            text.append(chunk.choices[0].delta.content or "")
    assert "".join(thought) == claude_thought("claude question s") and "".join(text) == "Claude answers."


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_messages_route_still_relays_claudes_signed_thinking_once(ant, stream):
    question = f"claude question native {stream}"
    kw = {"model": "claude", "max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 1024},
          "messages": [{"role": "user", "content": question}]}
    if stream:
        with ant.messages.stream(**kw) as s:
            msg = s.get_final_message()
    else:
        msg = ant.messages.create(**kw)
    assert [b.type for b in msg.content] == ["thinking", "text"]  # no second, unsigned thinking block
    assert msg.content[0].thinking == claude_thought(question)
    assert msg.content[0].signature == sign(claude_thought(question))


# ------------------------------------------------------------------------------------ /v1/responses and batches


def test_responses_returns_a_reasoning_item_before_the_message(oai):
    resp = oai.responses.create(model="gpt", input="please ponder", store=False)
    assert [o.type for o in resp.output] == ["reasoning", "message"]
    assert resp.output[0].summary[0].type == "summary_text" and resp.output[0].summary[0].text == THOUGHT
    assert resp.output_text == ANSWER
    claude = oai.responses.create(model="thinker", input="claude question r", store=False)
    assert claude.output[0].summary[0].text == claude_thought("claude question r")
    assert claude.output_text == "Claude answers."
    # the usual next turn sends the output back as input: the reasoning item is accepted (and not re-sent)
    nxt = oai.responses.create(model="gpt", store=False,
                               input=[*[o.model_dump(exclude_none=True) for o in resp.output],
                                      {"role": "user", "content": "and ponder again"}])
    assert nxt.output_text == ANSWER


def test_responses_stream_sends_the_reasoning_summary_events(oai):
    kinds, deltas = [], []
    with oai.responses.stream(model="gpt", input="please ponder", store=False) as s:
        for event in s:
            kinds.append(event.type)
            if event.type == "response.reasoning_summary_text.delta":
                deltas.append(event.delta)
        final = s.get_final_response()
    assert "".join(deltas) == THOUGHT
    for kind in ("response.reasoning_summary_part.added", "response.reasoning_summary_text.done",
                 "response.reasoning_summary_part.done"):
        assert kind in kinds
    assert kinds.index("response.reasoning_summary_part.done") < kinds.index("response.output_text.delta")
    assert [o.type for o in final.output] == ["reasoning", "message"]
    assert final.output[0].summary[0].text == THOUGHT and final.output_text == ANSWER


def test_batch_results_carry_reasoning_content(oai):
    line = {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "gpt", "messages": [{"role": "user", "content": "please ponder"}]}}
    f = oai.files.create(file=("r.jsonl", (json.dumps(line) + "\n").encode()), purpose="batch")
    batch = oai.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    while batch.status not in ("completed", "failed", "expired", "cancelled"):  # readiness poll, not a timing
        time.sleep(0.05)
        batch = oai.batches.retrieve(batch.id)
    assert batch.status == "completed" and batch.output_file_id
    (out,) = [json.loads(x) for x in oai.files.content(batch.output_file_id).text.splitlines()]
    message = out["response"]["body"]["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"]) == (ANSWER, THOUGHT)


# ------------------------------------------------------------------------------------ n > 1


def test_each_choice_keeps_its_own_reasoning(oai):
    resp = oai.chat.completions.create(model="gpt", n=2, messages=[{"role": "user", "content": "two minds"}])
    got = sorted((c.message.content, c.message.model_extra["reasoning_content"]) for c in resp.choices)
    assert got == [("Blue.", "The sky decides."), ("Red.", "Warm colours first.")]


def test_merged_anthropic_choices_each_keep_their_thinking(llm):
    from flywheel.gateway.choices import split_choices
    from flywheel.types import ChatRequest

    gw = _gateway(llm)
    try:
        result = gw.chat(ChatRequest.of("claude question n", model="thinker", n=2))
    finally:
        gw.close()
    assert result.choices is not None and len(result.choices) == 2
    assert [c.reasoning for c in result.choices] == [claude_thought("claude question n")] * 2
    assert [r.reasoning for r in split_choices(result) if r is not None] == [claude_thought("claude question n")] * 2

"""What the user sends and what the model reasons travel through the gateway.

1. `seed`, `top_p`, `frequency_penalty`, `presence_penalty` and `user` sent to `flywheel serve` with the official
   `openai` SDK (and `top_p` / `top_k` on `/v1/messages`, `top_p` on `/v1/responses`) reach an OpenAI-compatible
   upstream (fake_llm records the bodies); an Anthropic alias gets `top_p` / `top_k` / `metadata.user_id` and never
   the fields the Messages API refuses (seed, the penalties). They are part of the exact cache key (`user` is not)
   and on the llm span.
2. A reasoning model's thinking — `reasoning_content` / `reasoning` beside the answer, or a leading
   `<think>…</think>` in it (split across stream chunks) — is kept out of the answer text, recorded on the attempt
   span, returned as `message.reasoning_content` / `delta.reasoning_content` on the chat route and as a thinking
   block on `/v1/messages`.
"""

from __future__ import annotations

import pytest
from server_support import anthropic_client, openai_client

from flywheel.cache.keys import Versions, exact_key
from flywheel.config import ModelAlias
from flywheel.gateway import Gateway
from flywheel.gateway.providers.reasoning import ThinkSplitter, split_think
from flywheel.testing.fake_llm import FakeLLM
from flywheel.testing.fake_llm_wire import Reasoned

PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}
  claude: {{provider: anthropic, base_url: "{base}", model: fake-claude, max_retries: 0}}
cache: {{exact: false}}
"""
THOUGHT = "The user asks for the answer; it is forty-two."
ANSWER = "Forty-two."
INLINE = "<think>\nThey want a small prime.\n</think>\n\nSeven."


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        server.add(r"\bponder\b", Reasoned(ANSWER, 9, thought=THOUGHT))
        server.add(r"\bmuse\b", Reasoned("Blue.", 3, thought="Rayleigh scattering.", field="reasoning"))
        server.add(r"\binline\b", INLINE)
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, llm):
    from server_support import serving

    with serving(tmp_path_factory.mktemp("params_reasoning"), PROJECT.format(base=llm.url)) as server:
        yield server


@pytest.fixture(scope="module")
def oai(live):
    return openai_client(live)


@pytest.fixture(scope="module")
def ant(live):
    return anthropic_client(live)


def _sent(llm: FakeLLM, marker: str) -> dict:
    """The last body the upstream received whose messages mention `marker`."""
    bodies = [b for b in llm.requests if marker in str(b.get("messages"))]
    assert bodies, f"no upstream request mentions {marker!r}"
    return bodies[-1]


def _gateway(llm: FakeLLM) -> Gateway:
    return Gateway({"gpt": ModelAlias(model="fake-model", base_url=llm.base_url, max_retries=0),
                    "claude": ModelAlias(provider="anthropic", model="fake-claude", base_url=llm.url,
                                         max_retries=0)})


# ------------------------------------------------------------------------------------------ sampling parameters


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
def test_chat_route_forwards_seed_top_p_penalties_and_user(oai, llm, stream):
    marker = f"params-{stream}"
    kw: dict = {"model": "gpt", "messages": [{"role": "user", "content": marker}], "seed": 7, "top_p": 0.5,
                "frequency_penalty": 0.25, "presence_penalty": -0.5, "user": "end-user-1"}
    if stream:
        assert "".join(c.choices[0].delta.content or "" for c in oai.chat.completions.create(stream=True, **kw)
                       if c.choices)
    else:
        assert oai.chat.completions.create(**kw).choices[0].message.content
    body = _sent(llm, marker)
    assert (body["seed"], body["top_p"], body["frequency_penalty"], body["presence_penalty"], body["user"]) == \
        (7, 0.5, 0.25, -0.5, "end-user-1")
    assert "top_k" not in body


def test_the_apis_own_defaults_are_not_forwarded(oai, llm):
    """Clients that always send top_p 1 and penalties 0 (no-ops) must not reach an upstream reasoning model that
    refuses the fields, nor split the cache from clients that leave them out."""
    oai.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "defaults-params"}], top_p=1,
                                frequency_penalty=0, presence_penalty=0, seed=5)
    body = _sent(llm, "defaults-params")
    assert body["seed"] == 5
    assert not {"top_p", "frequency_penalty", "presence_penalty"} & set(body)


def test_legacy_completions_and_responses_forward_them_too(oai, llm):
    oai.completions.create(model="gpt", prompt="legacy-params", seed=3, top_p=0.9, presence_penalty=0.1)
    body = _sent(llm, "legacy-params")
    assert (body["seed"], body["top_p"], body["presence_penalty"]) == (3, 0.9, 0.1)
    oai.responses.create(model="gpt", input="responses-params", top_p=0.3, user="u-9", store=False)
    body = _sent(llm, "responses-params")
    assert (body["top_p"], body["user"]) == (0.3, "u-9")


def test_messages_route_forwards_top_p_to_an_openai_compatible_alias_and_drops_top_k(ant, llm):
    ant.messages.create(model="gpt", max_tokens=50, extra_body={"top_p": 0.4, "top_k": 5},  # this SDK names neither
                        messages=[{"role": "user", "content": "messages-params"}])
    body = _sent(llm, "messages-params")
    assert body["top_p"] == 0.4
    assert "top_k" not in body  # OpenAI refuses top_k: never sent on the OpenAI wire


def test_anthropic_alias_gets_top_p_top_k_and_user_but_not_seed_or_penalties(llm):
    from flywheel.types import ChatRequest

    gw = _gateway(llm)
    try:
        gw.chat(ChatRequest.of("anthropic-params", model="claude", top_p=0.7, top_k=20, seed=1, user="u-1",
                               frequency_penalty=0.5, presence_penalty=0.5))
    finally:
        gw.close()
    body = _sent(llm, "anthropic-params")
    assert (body["top_p"], body["top_k"], body["metadata"]) == (0.7, 20, {"user_id": "u-1"})
    assert not {"seed", "frequency_penalty", "presence_penalty", "user"} & set(body)


def test_seed_and_sampling_split_the_exact_cache_key_but_user_does_not():
    from flywheel.types import ChatRequest

    versions = Versions(model_version="m")
    base = ChatRequest.of("same question")
    keys = {name: exact_key(base.model_copy(update={name: value}), versions)
            for name, value in [("seed", 1), ("top_p", 0.5), ("top_k", 4), ("frequency_penalty", 0.2),
                                ("presence_penalty", 0.2)]}
    assert len(set(keys.values()) | {exact_key(base, versions)}) == 6
    assert exact_key(base.model_copy(update={"seed": 1}), versions) != \
        exact_key(base.model_copy(update={"seed": 2}), versions)
    assert exact_key(base.model_copy(update={"user": "alice"}), versions) == exact_key(base, versions)


def test_llm_span_records_the_sampling_parameters_but_not_the_user(llm, spans):
    from flywheel.types import ChatRequest

    gw = _gateway(llm)
    try:
        result = gw.chat(ChatRequest.of("span-params", model="gpt", seed=11, top_p=0.2, user="secret-user"))
    finally:
        gw.close()
    (span,) = [s for s in spans if "flywheel.attempt" in s.attributes and s.trace_id == result.trace_id]
    assert span.attributes["gen_ai.request.seed"] == 11 and span.attributes["gen_ai.request.top_p"] == 0.2
    assert span.inputs["params"]["seed"] == 11 and "user" not in span.inputs["params"]


# ------------------------------------------------------------------------------------------ reasoning


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize(("question", "thought", "answer"), [
    ("please ponder", THOUGHT, ANSWER),
    ("muse on it", "Rayleigh scattering.", "Blue."),
    ("answer inline", "They want a small prime.", "Seven."),
], ids=["reasoning_content", "reasoning", "think_tag"])
def test_gateway_keeps_reasoning_out_of_the_answer(llm, spans, stream, question, thought, answer):
    from flywheel.types import ChatRequest

    gw = _gateway(llm)
    try:
        request = ChatRequest.of(question, model="gpt")
        if stream:
            s = gw.stream(request)
            chunks = list(s)
            assert "".join(c.delta for c in chunks) == answer
            assert "".join(c.reasoning or "" for c in chunks).strip() == thought
            result = s.result
        else:
            result = gw.chat(request)
    finally:
        gw.close()
    assert result is not None and result.text == answer
    assert (result.reasoning or "").strip() == thought
    (span,) = [s for s in spans if "flywheel.attempt" in s.attributes and s.trace_id == result.trace_id]
    assert span.outputs["content"] == answer and span.outputs["reasoning"].strip() == thought
    (top,) = [s for s in spans if s.name == "gateway.chat" and s.trace_id == result.trace_id]
    assert top.outputs == answer  # what guards, cache and evals read: the answer alone


def test_chat_route_returns_reasoning_content_like_deepseek(oai):
    msg = oai.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "please ponder"}]) \
        .choices[0].message
    assert msg.content == ANSWER
    assert msg.model_extra["reasoning_content"] == THOUGHT
    inline = oai.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "answer inline"}])
    assert inline.choices[0].message.content == "Seven."
    assert inline.choices[0].message.model_extra["reasoning_content"] == "They want a small prime."


def test_chat_route_streams_reasoning_content_before_the_answer(oai):
    thought, text, order = [], [], []
    for chunk in oai.chat.completions.create(model="gpt", stream=True,
                                             messages=[{"role": "user", "content": "please ponder"}]):
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        piece = (delta.model_extra or {}).get("reasoning_content")
        if piece:
            thought.append(piece)
            order.append("r")
        if delta.content:
            text.append(delta.content)
            order.append("c")
    assert "".join(thought) == THOUGHT and "".join(text) == ANSWER
    assert order.index("c") > max(i for i, k in enumerate(order) if k == "r")


def test_messages_route_returns_an_openai_compatible_aliases_reasoning_as_a_thinking_block(ant):
    msg = ant.messages.create(model="gpt", max_tokens=100, messages=[{"role": "user", "content": "please ponder"}])
    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert msg.content[0].thinking == THOUGHT and msg.content[1].text == ANSWER
    with ant.messages.stream(model="gpt", max_tokens=100,
                             messages=[{"role": "user", "content": "please ponder"}]) as s:
        final = s.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == THOUGHT and final.content[1].text == ANSWER


def test_fake_llm_scripts_reasoning_content(tmp_path):
    import httpx

    script = tmp_path / "script.yaml"
    script.write_text('- {match: "deep", reply: "Yes.", reasoning: "Think first."}\n', encoding="utf-8")
    with FakeLLM() as server:
        server.load_script(script)
        data = httpx.post(f"{server.base_url}/chat/completions", json={
            "model": "m", "messages": [{"role": "user", "content": "deep question"}]}).json()
    message = data["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"]) == ("Yes.", "Think first.")
    assert data["usage"]["completion_tokens_details"]["reasoning_tokens"] == 3


@pytest.mark.parametrize("text", [INLINE, "<think>unfinished thought", "  <think>a</think>b", "plain <think>x</think>",
                                  "<thin", "", "<think></think>answer", "no think at all"])
def test_think_splitter_streamed_char_by_char_matches_the_whole_split(text):
    splitter = ThinkSplitter()
    thought, answer = [], []
    for ch in text:
        r, a = splitter.feed(ch)
        thought.append(r)
        answer.append(a)
    r, a = splitter.flush()
    thought.append(r)
    answer.append(a)
    whole_thought, whole_answer = split_think(text)
    assert "".join(answer) == whole_answer
    assert ("".join(thought).strip() or None) == whole_thought


def test_a_sampling_strategy_on_an_anthropic_alias_never_sends_a_seed(llm):
    from flywheel.gateway.strategy_spec import StrategySpec
    from flywheel.types import ChatRequest

    gw = _gateway(llm)
    try:
        # an Anthropic alias takes no `n`: three requests (an OpenAI-compatible one gets one request with n=3)
        StrategySpec.parse("self_consistency:3").build().chat(gw, ChatRequest.of("seeded-votes", model="claude",
                                                                                  seed=7))
    finally:
        gw.close()
    bodies = [b for b in llm.requests if "seeded-votes" in str(b.get("messages"))]
    assert len(bodies) == 3 and all("seed" not in b for b in bodies)  # Anthropic has no seed: never sent


def test_a_sampling_strategy_gives_each_sample_its_own_seed_on_the_span(llm, spans):
    from flywheel.gateway.strategy_spec import StrategySpec
    from flywheel.types import ChatRequest

    gw = _gateway(llm)
    try:
        StrategySpec.parse("self_consistency:3").build().chat(gw, ChatRequest.of("seeded-spans", model="claude",
                                                                                  seed=7))
    finally:
        gw.close()
    seeds = sorted(s.attributes["gen_ai.request.seed"] for s in spans if "flywheel.attempt" in s.attributes
                   and "seeded-spans" in str(s.inputs))
    assert seeds == [7, 8, 9]  # one seed for all would be three copies of one answer: no vote at all

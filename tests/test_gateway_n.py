"""Several choices per request (`ChatRequest.n`, OpenAI's `n`) end to end: openai_compat sends `n` once and
parses every choice; Anthropic and in-process providers get n requests merged into one attempt; usage, cost and
spans cover every sample; bad `n` is a UserError; the cache stays out of it; fake_llm scripts per-choice answers;
`flywheel serve` answers `n` to the official OpenAI SDK from one gateway call."""
# ruff: noqa: F811 - pytest fixtures imported from gateway_support are redefined as parameters

from __future__ import annotations

import asyncio
import threading

import openai
import pytest
from gateway_support import llm, server  # noqa: F401 - fixtures

from flywheel.config import ModelAlias, Price
from flywheel.errors import GatewayError, UserError
from flywheel.gateway import Gateway, RetryPolicy
from flywheel.gateway.providers.base import BaseProvider, ProviderResponse, make_usage
from flywheel.gateway.strategies import StrategySpec, normalize_answer
from flywheel.testing.fake_llm import Choices, FakeLLM, Fault
from flywheel.testing.fake_llm_wire import count_tokens, prompt_tokens
from flywheel.types import ChatRequest, Choice

PRICE = Price(input=1.0, output=2.0)  # per million tokens
Q = "What is 6 * 7?"


@pytest.fixture
def gw(llm):
    def alias(provider: str, model: str, **kw) -> ModelAlias:
        url = llm.anthropic_base_url if provider == "anthropic" else llm.base_url
        return ModelAlias(provider=provider, model=model, base_url=url, price=PRICE, **kw)

    return Gateway({"gpt": alias("openai_compat", "fake-model", max_retries=0),
                    "claude": alias("anthropic", "claude-test", max_retries=1, params={"max_tokens": 100})},
                   retry=RetryPolicy(base_s=0.001, max_s=0.002))


def attempts_of(spans, trace_id: str) -> list:
    return [s for s in spans if s.trace_id == trace_id and s.name.startswith("chat ")]


def cost(tokens_in: int, tokens_out: int) -> float:
    return (tokens_in * PRICE.input + tokens_out * PRICE.output) / 1e6


# ------------------------------------------------------------------ openai_compat: one request


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_openai_compat_answers_n_choices_in_one_request(gw, llm, spans, mode):
    llm.add(r"6 \* 7", Choices("Answer: 42", "Answer: 41", "I think 42"))
    req = ChatRequest.of(Q, model="gpt", n=3)
    result = gw.chat(req) if mode == "sync" else asyncio.run(gw.achat(req))
    (sent,) = llm.requests
    assert sent["n"] == 3 and sent["path"] == "/v1/chat/completions"
    assert [c.text for c in result.choices] == ["Answer: 42", "Answer: 41", "I think 42"]
    assert result.text == "Answer: 42" and result.finish_reason == "stop"
    tokens_out = sum(count_tokens(c.text) for c in result.choices)
    tokens_in = prompt_tokens({"messages": [{"content": Q}]})  # the prompt is paid once
    assert (result.usage.input_tokens, result.usage.output_tokens) == (tokens_in, tokens_out)
    assert result.cost_usd == pytest.approx(cost(tokens_in, tokens_out)) and result.attempts == 1
    (attempt,) = attempts_of(spans, result.trace_id)
    assert attempt.attributes["gen_ai.request.choice.count"] == 3
    assert attempt.attributes["flywheel.upstream_requests"] == 1
    assert attempt.attributes["gen_ai.response.finish_reasons"] == ["stop"] * 3
    assert attempt.outputs == {"content": "Answer: 42", "choices": ["Answer: 42", "Answer: 41", "I think 42"]}
    assert attempt.inputs["params"]["n"] == 3
    assert attempt.attributes["flywheel.cost_usd"] == pytest.approx(result.cost_usd)
    (top,) = [s for s in spans if s.trace_id == result.trace_id and s.name == "gateway.chat"]
    assert top.attributes["gen_ai.request.choice.count"] == 3 and top.outputs == attempt.outputs


def test_one_choice_requests_are_unchanged(gw, llm):
    result = gw.chat(ChatRequest.of("capital?", model="gpt"))
    assert result.choices is None and result.text == "Paris."
    assert "n" not in llm.requests[-1]


# ------------------------------------------------------------------ no `n`: n requests, one attempt


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_anthropic_gets_n_requests_merged_into_one_attempt(gw, llm, spans, mode):
    llm.add(r"6 \* 7", Choices("Answer: 42", "Answer: 41", "Answer: 42"), model="claude-test")
    req = ChatRequest.of(Q, model="claude", n=3)
    result = gw.chat(req) if mode == "sync" else asyncio.run(gw.achat(req))
    assert [r["path"] for r in llm.requests] == ["/v1/messages"] * 3
    assert all("n" not in r for r in llm.requests)
    assert sorted(c.text for c in result.choices) == ["Answer: 41", "Answer: 42", "Answer: 42"]
    assert result.text == result.choices[0].text and result.attempts == 1
    tokens_in = 3 * prompt_tokens({"messages": [{"content": Q}]})  # each request pays the prompt
    tokens_out = sum(count_tokens(c.text) for c in result.choices)
    assert (result.usage.input_tokens, result.usage.output_tokens) == (tokens_in, tokens_out)
    assert result.cost_usd == pytest.approx(cost(tokens_in, tokens_out))
    (attempt,) = attempts_of(spans, result.trace_id)
    assert attempt.attributes["flywheel.upstream_requests"] == 3
    assert len(attempt.outputs["choices"]) == 3
    assert attempt.attributes["gen_ai.usage.output_tokens"] == tokens_out


def test_a_failed_sample_fails_the_attempt_and_the_retry_asks_again(gw, llm, spans):
    llm.add(r"6 \* 7", "Answer: 42", model="claude-test")
    llm.fail(Fault.SERVER_ERROR, times=1, model="claude-test")
    result = gw.chat(ChatRequest.of(Q, model="claude", n=3))
    assert len(result.choices) == 3 and result.attempts == 2 and len(llm.requests) == 6
    first, second = sorted(attempts_of(spans, result.trace_id), key=lambda s: s.attributes["flywheel.attempt"])
    assert first.attributes["error.type"] == "500" and "1 of 3 samples failed" in (first.error or "")
    # the two samples that answered in the failed attempt are still charged
    assert first.attributes["gen_ai.usage.output_tokens"] == 2 * count_tokens("Answer: 42")
    assert result.usage.output_tokens == 5 * count_tokens("Answer: 42")
    assert second.attributes["flywheel.upstream_requests"] == 3


class Numbered(BaseProvider):
    """An in-process provider with no `n`: answers "answer <k>" for the k-th call."""

    name = "numbered"

    def __init__(self, alias: ModelAlias | None = None):
        super().__init__(alias)
        self.calls = 0
        self.lock = threading.Lock()

    def chat(self, alias, request, timeout):
        assert request.n == 1
        with self.lock:
            self.calls += 1
            k = self.calls
        return ProviderResponse(f"answer {k}", make_usage(1, 2), "numbered", "stop")


class IgnoresN(Numbered):
    """Says it takes `n` but, like some local servers, answers one choice."""

    supports_n = True

    def chat(self, alias, request, timeout):
        with self.lock:
            self.calls += 1
        return ProviderResponse("only one", make_usage(1, 2), "numbered", "stop")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_in_process_providers_fan_out_and_short_answers_are_filled_in(mode):
    provs = {"plain": Numbered(), "short": IgnoresN()}
    gw = Gateway({name: ModelAlias(provider="extractive", model=name) for name in provs})
    gw.register_provider("extractive", lambda alias: provs[alias.model])
    run = (lambda r: gw.chat(r)) if mode == "sync" else (lambda r: asyncio.run(gw.achat(r)))
    plain = run(ChatRequest.of("q", model="plain", n=4))
    assert sorted(c.text for c in plain.choices) == [f"answer {k}" for k in range(1, 5)]
    assert (plain.usage.input_tokens, plain.usage.output_tokens) == (4, 8)
    short = run(ChatRequest.of("q", model="short", n=3))
    # one request with n=3 answered one choice: the other two were asked for one by one
    assert [c.text for c in short.choices] == ["only one"] * 3 and provs["short"].calls == 3
    assert short.usage.output_tokens == 6
    offline = Gateway({"x": ModelAlias(provider="extractive")})  # the built-in offline model: n requests too
    two = offline.chat(ChatRequest.of("What is flywheel?", model="x", n=2))
    assert len(two.choices) == 2 and two.choices[0] == two.choices[1] and two.provider == "extractive"


# ------------------------------------------------------------------ bad input, streams, strategies, cache


@pytest.mark.parametrize("n", [0, -1, 17, 2.5])
def test_bad_n_is_a_user_error(gw, llm, n):
    req = ChatRequest.of("q", model="gpt").model_copy(update={"n": n})
    with pytest.raises(UserError, match="from 1 to 16") as err:
        gw.chat(req)
    assert not isinstance(err.value, GatewayError) and llm.requests == []
    with pytest.raises(UserError, match="from 1 to 16"):
        asyncio.run(gw.achat(req))


def test_a_stream_answers_one_choice(gw, llm):
    with pytest.raises(UserError, match="n=2"):
        gw.stream(ChatRequest.of("q", model="gpt", n=2))
    with pytest.raises(UserError, match="n=2"):
        gw.astream(ChatRequest.of("q", model="gpt", n=2))


def test_self_consistency_samples_in_one_n_request_and_picks_the_majority(gw, llm, spans):
    llm.add(r"6 \* 7", Choices("I think 41.", "Answer: 42", "answer: 42.", "Answer: 7", "Reasoning…\nAnswer: 42"))
    result = StrategySpec.parse("self_consistency:5").build().chat(gw, ChatRequest.of(Q, model="gpt"))
    assert normalize_answer(result.text) == "42" and result.raw["strategy"]["votes"]["42"] == 3
    assert [r["n"] for r in llm.requests] == [5]
    (attempt,) = attempts_of(spans, result.trace_id)
    assert len(attempt.outputs["choices"]) == 5 and result.cost_usd == pytest.approx(attempt.attributes[
        "flywheel.cost_usd"])


def test_best_of_n_over_sixteen_samples_splits_the_n_requests(gw, llm):
    llm.add(r"config", Choices(*["nope"] * 19, '{"ok": true}'))
    result = StrategySpec.parse("best_of:20:is-json").build().chat(gw, ChatRequest.of("config?", model="gpt"))
    assert result.text == '{"ok": true}' and sorted(r["n"] for r in llm.requests) == [4, 16]
    assert len(result.raw["strategy"]["samples"]) == 20


def test_the_cache_stays_out_of_n_requests():
    from flywheel.cache.keys import Versions, directives, exact_key

    one, three = ChatRequest.of("q"), ChatRequest.of("q", n=3)
    versions = Versions("m")
    assert exact_key(one, versions) != exact_key(three, versions)
    assert directives(one).read and directives(one).write
    assert not directives(three).read and not directives(three).write


# ------------------------------------------------------------------ fake_llm


def test_fake_llm_scripts_each_choice_and_streams_them_by_index():
    with FakeLLM() as llm:
        llm.add(r"q", Choices("a", "b"))
        llm.add(r"same", "same answer")
        client = openai.OpenAI(base_url=llm.base_url, api_key="x", max_retries=0)
        done = client.chat.completions.create(model="fake-model", n=3, messages=[{"role": "user", "content": "q"}])
        assert [c.message.content for c in done.choices] == ["a", "b", "a"]
        assert done.usage.completion_tokens == 3
        again = client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "q"}])
        assert again.choices[0].message.content == "b"  # successive requests take the next replies
        same = client.chat.completions.create(model="fake-model", n=2, messages=[{"role": "user", "content": "same"}])
        assert [c.message.content for c in same.choices] == ["same answer"] * 2
        stream = client.chat.completions.create(model="fake-model", n=2, stream=True,
                                                messages=[{"role": "user", "content": "q"}])
        texts = {0: "", 1: ""}
        for chunk in stream:
            for c in chunk.choices:
                texts[c.index] += c.delta.content or ""
        assert texts == {0: "a", 1: "b"}


def test_fake_llm_script_reply_list_is_choices(tmp_path):
    script = tmp_path / "s.yaml"
    script.write_text('- match: vote\n  reply: ["yes", "no"]\n', encoding="utf-8")
    with FakeLLM() as llm:
        llm.load_script(script)
        client = openai.OpenAI(base_url=llm.base_url, api_key="x", max_retries=0)
        done = client.chat.completions.create(model="fake-model", n=2, messages=[{"role": "user", "content": "vote"}])
        assert [c.message.content for c in done.choices] == ["yes", "no"]
    (tmp_path / "bad.yaml").write_text("- match: vote\n  reply: []\n", encoding="utf-8")
    from flywheel.errors import ConfigError

    with pytest.raises(ConfigError, match="empty list") as err:
        FakeLLM().load_script(tmp_path / "bad.yaml")
    assert "bad.yaml:2" in (err.value.where or "")


# ------------------------------------------------------------------ flywheel serve + the official SDK


def test_server_answers_n_from_one_gateway_call(live, server_llm):
    server_llm.reset()
    server_llm.add(r"pick", Choices("red", "green", "blue"))
    client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
    done = client.chat.completions.create(model="gpt", n=3, messages=[{"role": "user", "content": "pick a colour"}])
    assert [c.message.content for c in done.choices] == ["red", "green", "blue"]
    assert [c.index for c in done.choices] == [0, 1, 2]
    assert [r["n"] for r in server_llm.requests] == [3]  # one upstream request
    assert done.usage.completion_tokens == 3
    assert done.model_extra["flywheel"]["cost_usd"] == pytest.approx(3 * 125000.0 / 1e6)


@pytest.mark.parametrize(("body", "says"), [({"n": 0}, "n"), ({"n": 17}, "n"), ({"n": 2, "stream": True}, "n")])
def test_server_refuses_bad_n(live, body, says):
    import httpx

    resp = httpx.post(live.url + "/v1/chat/completions", json={
        "model": "gpt", "messages": [{"role": "user", "content": "hi"}], **body})
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == says


def test_choice_record_round_trips():
    assert Choice(text="a").model_dump() == {"text": "a", "finish_reason": None, "tool_calls": None,
                                             "logprobs": None, "reasoning": None}

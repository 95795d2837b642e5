"""Strategies audit: spec mistakes a user makes are UserErrors (never a traceback), and samples from a prompt with
a reasoning scaffold (or an R1-style `<think>` model) are voted, checked and judged on their final answer only."""
# ruff: noqa: F811 - pytest fixtures imported from gateway_support are redefined as parameters

from __future__ import annotations

import json

import pytest
from gateway_support import llm, server  # noqa: F401 - fixtures

from flywheel.config import ModelAlias
from flywheel.errors import UserError
from flywheel.gateway import Gateway
from flywheel.gateway.strategies import StrategySpec, final_text, normalize_answer
from flywheel.testing.fake_llm import Choices
from flywheel.types import ChatRequest


@pytest.fixture
def gw(llm):
    def alias(model: str, provider: str = "openai_compat") -> ModelAlias:
        url = llm.anthropic_base_url if provider == "anthropic" else llm.base_url
        return ModelAlias(provider=provider, model=model, base_url=url, max_retries=0)

    return Gateway({"m": alias("fake-model"), "a": alias("m-a"), "c": alias("m-c", "anthropic")})


@pytest.mark.parametrize(("text", "says"), [
    ("self_consistency:²", "needs a count"),          # a digit int() cannot read: was a ValueError traceback
    ("best_of:³:judge", "needs a count"),
    ("ensemble:a+a", "named twice"),                   # one answer from each alias: a repeat is a typo
    ("ensemble:a+b+a:judge", "named twice"),
    ("best_of:3:", "empty part"),                      # was "unknown check ''"
    ("ensemble:a+b:", "empty part"),
    ("critique:2:", "empty part"),
])
def test_spec_mistakes_are_user_errors(text, says):
    with pytest.raises(UserError) as err:
        StrategySpec.parse(text, where="--strategies")
    assert says in err.value.message and err.value.where == "--strategies"


def test_full_width_digits_are_read_as_the_count():
    assert str(StrategySpec.parse("self_consistency:５")) == "self_consistency:5"


def test_final_text_strips_reasoning_blocks_only():
    req = ChatRequest.of("q", model="m")
    assert final_text("<thinking>2+2 is 4</thinking>Four.", req) == "Four."
    assert final_text("<think>hmm</think>\nFour.", req) == "Four."
    assert final_text("Four <b>bold</b>.", req) == "Four <b>bold</b>."
    custom = ChatRequest.of("q", model="m").model_copy(update={"metadata": {"reasoning_tag": "scratchpad"}})
    assert final_text("<scratchpad>x</scratchpad>Four.", custom) == "Four."


@pytest.mark.parametrize("tag", ["thinking", "think"])
def test_self_consistency_votes_on_the_answer_after_the_reasoning(gw, llm, tag):
    # Every sample reasons differently; three of five end with the same answer.
    llm.add(r"6 \* 7", Choices(*(f"<{tag}>{why}</{tag}>{answer}" for why, answer in [
        ("6*7 is 42", "42."), ("seven sixes", "41"), ("7+7+7+7+7+7", "42"), ("guess", "7"), ("42 I recall", "42!")])))
    result = StrategySpec.parse("self_consistency:5").build().chat(gw, ChatRequest.of("What is 6 * 7?", model="m"))
    info = result.raw["strategy"]
    assert info["votes"] == {"42": 3, "41": 1, "7": 1} and info["winner"] == "42"
    assert normalize_answer(final_text(result.text, ChatRequest.of("q", model="m"))) == "42"
    if tag == "think":  # a leading <think> block is reasoning: the gateway takes it out of every answer
        assert result.text == "42." and result.reasoning == "6*7 is 42"
    else:  # the winner is returned as sampled: the app strips the scaffold's <thinking>
        assert result.text.startswith(f"<{tag}>")


def test_best_of_with_a_check_checks_the_answer_not_the_reasoning(gw, llm):
    llm.add(r"JSON please", Choices("<thinking>plan {</thinking>not json", '<thinking>easy</thinking>{"a": 1}'))
    result = StrategySpec.parse("best_of:2:is-json").build().chat(gw, ChatRequest.of("JSON please", model="m"))
    scores = result.raw["strategy"]["scores"]
    assert [s["passed"] for s in scores] == [False, True] and result.raw["strategy"]["winner"] == 1


def test_the_judge_and_the_critic_see_answers_without_reasoning(gw, llm):
    llm.add(r"Which candidate is best", "Best: 2")
    llm.add(r"<draft>", "NO ISSUES")
    llm.add(r"Name a colour", Choices("<thinking>secret plan A</thinking>Red.", "<thinking>secret plan B</thinking>Blue."))
    StrategySpec.parse("best_of:2:judge").build().chat(gw, ChatRequest.of("Name a colour", model="m"))
    StrategySpec.parse("critique:1").build().chat(gw, ChatRequest.of("Name a colour", model="m"))
    asked = [str(r["messages"]) for r in llm.requests if "Name a colour" in str(r["messages"])
             and ("candidate" in str(r["messages"]) or "<draft>" in str(r["messages"]))]
    assert len(asked) == 2
    assert all("secret plan" not in a for a in asked) and "Blue." in asked[0]


def test_ensemble_votes_on_answers_across_wires_without_reasoning(gw, llm):
    llm.add(r"French city", "<thinking>it is in Europe</thinking>Paris", model="m-a")
    llm.add(r"French city", "<thinking>the largest</thinking>Paris.", model="m-c")
    llm.add(r"French city", "Lyon")
    result = StrategySpec.parse("ensemble:a+c+m").build().chat(gw, ChatRequest.of("Largest French city?", model="m"))
    assert result.raw["strategy"]["votes"] == {"paris": 2, "lyon": 1}


def test_judge_and_critic_calls_are_attributed_to_the_requests_tenant_and_app(gw, llm, spans):
    llm.add(r"Which candidate is best", "Best: 1")
    llm.add(r"<draft>", "NO ISSUES")
    llm.add(r"Name a fruit", Choices("Apple.", "Pear."))
    meta = {"tenant": "acme", "app": "shop", "prompt_version": "abc123abc123"}
    req = ChatRequest.of("Name a fruit", model="m").model_copy(update={"metadata": meta})
    StrategySpec.parse("best_of:2:judge").build().chat(gw, req)
    StrategySpec.parse("critique:1").build().chat(gw, req)
    own = [s for s in spans if s.name == "gateway.chat"
           and ("Which candidate is best" in str(s.inputs) or "<draft>" in str(s.inputs))]
    assert len(own) == 2
    for span in own:
        assert span.attributes["flywheel.tenant"] == "acme" and span.attributes["flywheel.app"] == "shop"
        assert "flywheel.prompt.version" not in span.attributes  # the judge does not use the app's prompt
    samples = [s for s in spans if s.name == "gateway.chat" and s not in own]
    assert samples and all(s.attributes["flywheel.prompt.version"] == "abc123abc123" for s in samples)


def test_a_reasoning_critic_and_judge_are_read_after_their_thinking(gw, llm):
    llm.add(r"Which candidate is best", "<think>candidate 1 looks best: 1 maybe… no.</think>Best: 2")
    llm.add(r"<draft>", "<think>is there an issue? the draft may be too long</think>NO ISSUES")
    llm.add(r"Name a city", Choices("Rome.", "Paris."))
    best = StrategySpec.parse("best_of:2:judge").build().chat(gw, ChatRequest.of("Name a city", model="m"))
    assert best.raw["strategy"]["judge"]["best"] == 2 and best.text == "Paris."
    critique = StrategySpec.parse("critique:3").build().chat(gw, ChatRequest.of("Name a city", model="m"))
    assert critique.raw["strategy"]["stopped"] == "no_issues" and len(critique.raw["strategy"]["rounds"]) == 1
    assert critique.raw["strategy"]["rounds"][0]["critique"] == "NO ISSUES"


def test_a_prefilled_request_is_voted_and_checked_with_its_prefill(gw, llm):
    # Anthropic continues a trailing assistant message: each sample is the continuation of "{".
    from flywheel.types import Message

    llm.add(r"as JSON", Choices('"city": "Paris"}', 'oops', '"city": "paris"}'))
    req = ChatRequest(model="c", messages=[Message(role="user", content="The main city of France as JSON"),
                                           Message(role="assistant", content="{")])
    best = StrategySpec.parse("best_of:3:is-json").build().chat(gw, req)
    # samples run concurrently (anthropic has no `n`), so which sample got which reply varies
    assert sorted(s["passed"] for s in best.raw["strategy"]["scores"]) == [False, True, True]
    assert best.text.startswith('"city"')  # returned as sampled; finishing it puts the "{" back
    voted = StrategySpec.parse("self_consistency:3:field=city").build().chat(gw, req)
    assert voted.raw["strategy"]["votes"] == {"paris": 2}


def test_critique_of_a_prefilled_request_sends_the_whole_draft_and_prefills_the_revision(gw, llm):
    from flywheel.types import Message

    llm.add(r"<draft>", "The city is missing.")
    llm.add(r"problems in your answer", '"city": "Paris"}')
    llm.add(r"French town", '"town": 1}')
    req = ChatRequest(model="c", messages=[Message(role="user", content="A French town as JSON"),
                                           Message(role="assistant", content="{")])
    StrategySpec.parse("critique:1").build().chat(gw, req)
    (revise,) = [r for r in llm.requests if "problems in your answer" in json.dumps(r.get("messages"))]
    roles = [m["role"] for m in revise["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]  # no two assistant turns in a row
    assert json.dumps(revise["messages"][1]).count("town") == 1 and '{\\"town\\"' in json.dumps(revise["messages"][1])
    assert revise["messages"][-1]["content"] in ("{", [{"type": "text", "text": "{"}])

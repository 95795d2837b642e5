"""Sampling strategies (gateway/strategies.py) against fake_llm: the spec grammar, self-consistency votes,
best-of-n by a check and by a judge, self-critique, ensembles across aliases and wires, totals over every call,
one parent span, and the StrategyGateway wrapper."""
# ruff: noqa: F811 - pytest fixtures imported from gateway_support are redefined as parameters

from __future__ import annotations

import asyncio
import json
import re

import pytest
from gateway_support import llm, server  # noqa: F401 - fixtures

from flywheel.config import ModelAlias
from flywheel.errors import UserError
from flywheel.gateway import Gateway
from flywheel.gateway.strategies import (
    StrategyGateway,
    StrategySpec,
    field_value,
    normalize_answer,
    parse_strategies,
    vote,
)
from flywheel.testing.fake_llm import Choices
from flywheel.types import ChatRequest

PRICE = {"input": 1.0, "output": 2.0}


@pytest.fixture
def gw(llm):
    def alias(model: str, provider: str = "openai_compat") -> ModelAlias:
        url = llm.anthropic_base_url if provider == "anthropic" else llm.base_url
        return ModelAlias(provider=provider, model=model, base_url=url, max_retries=0, price=PRICE)

    return Gateway({"m": alias("fake-model"), "a": alias("m-a"), "b": alias("m-b"),
                    "c": alias("m-c", "anthropic")})


def spent(spans, trace_id: str) -> tuple[float, int, int]:
    """Cost, input and output tokens on the attempt spans of one trace (where the gateway charges them)."""
    attempts = [s for s in spans if s.trace_id == trace_id and s.kind == "llm" and s.name.startswith("chat ")]
    return (sum(s.attributes.get("flywheel.cost_usd", 0.0) for s in attempts),
            sum(s.attributes.get("gen_ai.usage.input_tokens", 0) for s in attempts),
            sum(s.attributes.get("gen_ai.usage.output_tokens", 0) for s in attempts))


def assert_totals(result, spans, calls: int) -> None:
    cost, tokens_in, tokens_out = spent(spans, result.trace_id)
    assert result.cost_usd == pytest.approx(cost) and cost > 0
    assert (result.usage.input_tokens, result.usage.output_tokens) == (tokens_in, tokens_out)
    (parent,) = [s for s in spans if s.name.startswith("strategy.")]
    children = [s for s in spans if s.name == "gateway.chat" and s.parent_id == parent.span_id]
    assert len(children) == calls == result.attempts
    assert parent.attributes["flywheel.strategy.calls"] == calls


# ------------------------------------------------------------------ the grammar


@pytest.mark.parametrize("text", ["none", "self_consistency:5", "self_consistency:3:field=answer.value",
                                  "best_of:3:judge", "best_of:4:judge=m", "best_of:2:is-json",
                                  "best_of:2:contains=Paris", "best_of:2:max_words=10", "critique:2", "critique:1:a",
                                  "ensemble:a+b+c", "ensemble:a+b:judge=m"])
def test_spec_round_trips(text):
    assert str(StrategySpec.parse(text)) == text


def test_spec_defaults_and_aliases():
    assert StrategySpec.parse("best_of:3") == StrategySpec.parse("best_of:3:judge")
    assert StrategySpec.parse("ensemble:a+b:judge=m").aliases_used() == ["a", "b", "m"]
    assert [str(s) for s in parse_strategies("none, self_consistency:5,none")] == ["none", "self_consistency:5"]


@pytest.mark.parametrize(("text", "says"), [
    ("self_consistancy:5", "did you mean 'self_consistency'"), ("self_consistency", "needs a count"),
    ("best_of:0", "needs a count"), ("best_of:99", "needs a count"), ("ensemble:a", "two or more"),
    ("none:3", "no arguments"), ("self_consistency:3:x", "field=PATH"), ("best_of:2:no-such-check", "check"),
    ("critique:2:a:b", "too many")])
def test_bad_specs_say_what_to_write(text, says):
    with pytest.raises(UserError) as err:
        StrategySpec.parse(text, where="--strategies")
    assert says in err.value.message and err.value.where == "--strategies"


def test_vote_and_normalization():
    assert normalize_answer("Let me think.\nThe sum is 4.\n**Answer:** 42.") == "42"
    assert normalize_answer("  PARIS！ ") == "paris"
    assert vote(["b", "a", "b", None]) == (0, {"b": 2, "a": 1})
    assert vote(["b", "a"])[0] == 1  # a tie goes to the key that sorts first, whatever the order
    assert vote(["a", "b"])[0] == 0
    assert vote([None, None])[0] is None


# ------------------------------------------------------------------ the strategies


def test_self_consistency_picks_the_majority_and_sums_every_call(gw, llm, spans):
    llm.add(r"6 \* 7", Choices("I think 41.", "Answer: 42", "answer: 42.", "Answer: 7", "Reasoning…\nAnswer: 42"))
    req = ChatRequest.of("What is 6 * 7?", model="m")
    result = StrategySpec.parse("self_consistency:5").build().chat(gw, req)
    assert normalize_answer(result.text) == "42"
    info = result.raw["strategy"]
    assert info["votes"]["42"] == 3 and info["agreement"] == 0.6 and len(info["samples"]) == 5
    (sent,) = llm.requests  # openai_compat takes `n`: the five samples are one request
    assert sent["n"] == 5 and sent["temperature"] == 0.8
    assert result.alias == "m"
    assert_totals(result, spans, calls=1)
    (attempt,) = [s for s in spans if s.name == "chat fake-model"]
    assert len(attempt.outputs["choices"]) == 5 and attempt.attributes["gen_ai.request.choice.count"] == 5


def test_self_consistency_samples_one_by_one_where_the_provider_has_no_n(gw, llm, spans):
    llm.add(r"6 \* 7", Choices("Answer: 42", "Answer: 41", "Answer: 42"), model="m-c")
    result = StrategySpec.parse("self_consistency:3").build().chat(gw, ChatRequest.of("What is 6 * 7?", model="c"))
    assert normalize_answer(result.text) == "42" and result.raw["strategy"]["votes"] == {"42": 2, "41": 1}
    assert [r["path"] for r in llm.requests] == ["/v1/messages"] * 3 and all("n" not in r for r in llm.requests)
    assert_totals(result, spans, calls=3)


def test_self_consistency_votes_on_a_json_field(gw, llm):
    llm.add(r"verdict", Choices('{"verdict": "yes", "why": "a"}', '{"verdict": "no", "why": "b"}',
                                '```json\n{"verdict": "Yes", "why": "c"}\n```', "not json"))
    result = StrategySpec.parse("self_consistency:4:field=verdict").build().chat(
        gw, ChatRequest.of("give a verdict", model="m", temperature=0.3))
    assert field_value(result.text, "verdict") == "yes"  # the first sample voting yes, fenced or not
    assert result.raw["strategy"]["votes"] == {"yes": 2, "no": 1}
    assert all(r["temperature"] == 0.3 for r in llm.requests[-4:])


def test_best_of_n_picks_the_sample_passing_the_check(gw, llm, spans):
    llm.add(r"config", Choices("no json here", '{"ok": true}', "still none"))
    result = StrategySpec.parse("best_of:3:is-json").build().chat(gw, ChatRequest.of("give config", model="m"))
    assert result.text == '{"ok": true}'
    scores = result.raw["strategy"]["scores"]
    assert sorted(s["passed"] for s in scores) == [False, False, True]
    assert_totals(result, spans, calls=1)  # the three samples: one request with n=3


def test_best_of_n_by_judge_counts_the_judge(gw, llm, spans):
    def judge(body: dict) -> str:
        shown = body["messages"][-1]["content"]
        good = re.search(r'<candidate n="(\d+)">\nthe good one', shown)
        return f"Candidate {good.group(1)} is correct.\nBest: {good.group(1)}"

    llm.add(r"Which candidate is best", judge, model="m-a")
    llm.add(r"poem", Choices("meh", "the good one", "bad"))
    result = StrategySpec.parse("best_of:3:judge=a").build().chat(gw, ChatRequest.of("a poem", model="m"))
    assert result.text == "the good one"
    assert llm.requests[-1]["model"] == "m-a" and llm.requests[-1]["temperature"] == 0.0
    assert_totals(result, spans, calls=2)  # the samples (one request with n=3) and the judge


def test_critique_revises_until_no_issues(gw, llm, spans):
    llm.add(r"<draft>", lambda body: "The country is wrong." if "Germany" in body["messages"][-1]["content"]
            else "NO ISSUES")
    llm.add(r"reviewer found", "Paris is in France.")
    llm.add(r"Where is Paris", "Paris is in Germany.")
    result = StrategySpec.parse("critique:3").build().chat(gw, ChatRequest.of("Where is Paris?", model="m"))
    assert result.text == "Paris is in France."
    info = result.raw["strategy"]
    assert info["stopped"] == "no_issues" and [r["critique"] for r in info["rounds"]] == [
        "The country is wrong.", "NO ISSUES"]
    assert_totals(result, spans, calls=4)  # draft, critique, revision, critique


def test_critique_rounds_are_bounded(gw, llm):
    llm.add(r"<draft>", "Still wrong.")
    llm.add(r".", "An answer.")
    result = StrategySpec.parse("critique:2").build().chat(gw, ChatRequest.of("question", model="m"))
    assert result.raw["strategy"]["stopped"] == "rounds" and result.attempts == 5


def test_ensemble_votes_across_aliases_and_wires(gw, llm, spans):
    llm.add(r"largest city", "Paris", model="m-a")
    llm.add(r"largest city", "Lyon", model="m-b")
    llm.add(r"largest city", "paris.", model="m-c")
    result = asyncio.run(StrategySpec.parse("ensemble:a+b+c").build().achat(
        gw, ChatRequest.of("largest city of France?", model="a")))
    info = result.raw["strategy"]
    assert info["votes"] == {"paris": 2, "lyon": 1} and info["winner"] == "a" and result.text == "Paris"
    assert {r["path"] for r in llm.requests[-3:]} == {"/v1/chat/completions", "/v1/messages"}
    assert_totals(result, spans, calls=3)


def test_failed_samples_are_dropped_when_others_answer(gw, llm):
    from flywheel.testing.fake_llm import Fault

    llm.add(r"x", "fine")
    llm.fail(Fault.SERVER_ERROR, times=1)
    result = StrategySpec.parse("self_consistency:3").build().chat(gw, ChatRequest.of("x", model="m"))
    assert result.text == "fine" and len(result.raw["strategy"]["failed_calls"]) == 1
    # the one request with n=3 failed, so the samples were asked for one by one
    assert [r.get("n") for r in llm.requests] == [3, None, None, None]


def test_strategy_gateway_applies_to_answers_only(gw, llm):
    llm.add(r"q", Choices("A", "B", "A"))
    sgw = StrategyGateway(gw, "self_consistency:3")
    assert len(sgw.chat(ChatRequest.of("q", model="m")).raw["strategy"]["samples"]) == 3
    judged = sgw.chat(ChatRequest.of("q", model="m", metadata={"purpose": "judge"}))
    assert judged.attempts == 1 and "strategy" not in (judged.raw or {})
    several = sgw.chat(ChatRequest.of("q", model="m", n=2))  # asks for choices itself: passes through
    assert len(several.choices) == 2 and "strategy" not in (several.raw or {})
    assert len(asyncio.run(sgw.achat(ChatRequest.of("q", model="m"))).raw["strategy"]["samples"]) == 3
    assert sgw.resolve("m").model == "fake-model"  # everything else is the wrapped gateway's
    assert StrategyGateway(gw, "none").chat(ChatRequest.of("q", model="m")).attempts == 1


# ------------------------------------------------------------------ flywheel eval --strategies

SUITE = """\
name: cities
target: %s
threshold: 0.9
cases:
  - id: france
    vars: {question: "Largest city of France?"}
    checks: [{contains: Paris}]
  - id: italy
    vars: {question: "Largest city of Italy?"}
    checks: [{contains: Rome}]
"""


def run_cli(root, *args: str):
    from click.testing import CliRunner

    import flywheel.cli.evals  # noqa: F401 - registers `eval`
    from flywheel.cli import main

    return CliRunner().invoke(main, ["--project", str(root), *args], catch_exceptions=False)


@pytest.mark.parametrize("target", ["model:small", "app:helper"])
def test_eval_compares_strategies_side_by_side(tmp_path, llm, target):
    from test_evals_support import write_project, write_suite

    llm.reset()
    llm.add(r"France", Choices("London.", "Paris.", "Paris."))  # one call: wrong; a vote of three: right
    llm.add(r"Italy", "Rome.")
    write_project(tmp_path, llm)
    with (tmp_path / "flywheel.yaml").open("a", encoding="utf-8") as f:
        f.write("apps:\n  helper: {kind: chat, model: small}\n")
    write_suite(tmp_path / "evals" / "s.yaml", SUITE % target)
    result = run_cli(tmp_path, "eval", "--strategies", "none,self_consistency:3", "--json")
    assert result.exit_code == 0, result.output  # one strategy meets the threshold
    suite = json.loads(result.stdout)["suites"][0]
    rows = {r["strategy"]: r for r in suite["strategies"]["strategies"]}
    assert rows["none"]["pass_rate"] == 0.5 and rows["self_consistency:3"]["pass_rate"] == 1.0
    assert rows["self_consistency:3"]["pass_rate_ci95"][0] is not None
    # every sample's answer paid, the prompt once (one request with n=3)
    assert rows["self_consistency:3"]["cost_usd"] > 1.5 * rows["none"]["cost_usd"] > 0
    assert suite["strategies"]["best"] == "self_consistency:3"
    assert [r["suite"] for r in suite["runs"]] == ["cities", "cities [self_consistency:3]"]
    table = run_cli(tmp_path, "eval", "--strategies", "none,self_consistency:3", "--no-progress")
    assert "strategies" in table.stdout and "self_consistency:3" in table.stdout and "95% CI" in table.stdout


def test_eval_strategies_bad_input_exits_2(tmp_path, llm):
    from test_evals_support import write_project, write_suite

    write_project(tmp_path, llm)
    write_suite(tmp_path / "evals" / "s.yaml", SUITE % "model:small")
    bad = run_cli(tmp_path, "eval", "--strategies", "none,self_consistncy:3")
    assert bad.exit_code == 2 and "self_consistency" in bad.stderr
    assert run_cli(tmp_path, "eval", "--strategies", "ensemble:small+nope").exit_code == 2
    assert run_cli(tmp_path, "eval", "--strategies", "none", "--models", "small").exit_code == 2


def test_requested_strategy_in_metadata(gw, llm):
    from flywheel.gateway.strategies import requested

    assert requested(ChatRequest.of("q", model="m")) is None
    assert requested(ChatRequest.of("q", model="m", metadata={"strategy": "none"})) is None
    assert requested(ChatRequest.of("q", model="m", metadata={"strategy": "critique:1", "purpose": "judge"})) is None
    strategy, plain = requested(ChatRequest.of("q", model="m", metadata={"strategy": "self_consistency:2",
                                                                         "tenant": "t"}))
    assert str(strategy.spec) == "self_consistency:2" and plain.metadata == {"tenant": "t"}
    with pytest.raises(UserError) as err:
        requested(ChatRequest.of("q", model="m", metadata={"strategy": "vote:3"}))
    assert err.value.where == "metadata.strategy"


def test_a_request_can_ask_the_gateway_for_a_strategy_in_its_metadata(gw, llm):
    llm.add(r"capital of France", Choices("Lyon", "Paris", "Paris"))
    req = ChatRequest.of("What is the capital of France?", model="m").model_copy(
        update={"metadata": {"strategy": "self_consistency:3"}})
    result = gw.chat(req)
    assert normalize_answer(result.text) == normalize_answer("Paris")
    assert sum(result.raw["strategy"]["votes"].values()) == 3  # three samples, one request
    assert [r["n"] for r in llm.requests] == [3]
    with pytest.raises(UserError, match="n=2"):  # a strategy answers one choice
        gw.chat(req.model_copy(update={"n": 2}))
    plain = asyncio.run(gw.achat(ChatRequest.of("What is the capital of France?", model="m")))
    assert "strategy" not in (plain.raw or {})  # no metadata: one plain call


@pytest.mark.parametrize("target,hint", [
    ("python:tests_strategy_target:answer", "apply a strategy inside your function"),
])  # workflow targets take --strategies: tests/test_evals_workflow_strategies.py
def test_strategies_on_a_python_target_say_where_a_strategy_goes(target, hint):
    import asyncio
    from types import SimpleNamespace

    from flywheel.evals.matrix import arun_strategies

    kind, name = target.split(":", 1)
    suite = SimpleNamespace(target=SimpleNamespace(kind=kind, name=name, where="s.yaml:2"), path="s.yaml")
    spec = SimpleNamespace(name="self_consistency")
    with pytest.raises(UserError) as err:
        asyncio.run(arun_strategies(suite, None, [spec]))
    assert hint in (err.value.hint or "") and err.value.where == "s.yaml:2"

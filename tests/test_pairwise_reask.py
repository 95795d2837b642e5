"""The pairwise judge asks again for a verdict, as the single judge does, and reads Chinese ties.

A pairwise judge reply without a verdict (a hedge, a score, an empty reply) is asked once more for the verdict
alone: a traced (`judge.reask` span), priced gateway call, counted in the pair's `judge_calls` and cost; still
none is the pair's error. `平局`, `相同`, `一样好` and `不分胜负` are ties. The judge here sits behind a provider
that refuses `response_format` on every request (fake_llm's `fail(..., when=…)`), so it answers in text.
"""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from flywheel.config import ModelAlias
from flywheel.evals.pairwise import Pair, compare_pairs
from flywheel.gateway.gateway import Gateway
from flywheel.testing.fake_llm import FakeLLM, Fault

GOOD, POOR = "Paris is the capital of France.", "Lyon, I think."
REFUSED = "response_format is not supported by this model"


@pytest.fixture
def llm():
    with FakeLLM() as server:
        # an endpoint that refuses structured output, always: the judge falls back to text
        server.fail(Fault.SERVER_ERROR, None, status=400, message=REFUSED, when=lambda body: "response_format" in body)
        yield server


def _gateway(llm: FakeLLM) -> Gateway:
    return Gateway({"judge": ModelAlias(provider="openai_compat", base_url=llm.base_url, model="fake-judge",
                                        max_retries=0, price={"input": 1.0, "output": 1.0})})


def _first_shown(body: dict) -> str:
    """The answer the judge was shown as response A (in the original prompt, re-asks included)."""
    prompt = next(m["content"] for m in body["messages"] if "<response_a>" in str(m.get("content")))
    return re.search(r"<response_a>\n(.*?)\n</response_a>", prompt, re.DOTALL).group(1)


def _compare(llm: FakeLLM) -> dict:
    pairs = [Pair("q1", "What is the capital of France?", GOOD, POOR)]
    return asyncio.run(compare_pairs(pairs, _gateway(llm), "judge", a="good", b="poor"))


def test_a_hedging_judge_is_asked_again_and_its_verdict_counts(llm, spans):
    llm.add(r"could not be used", lambda body: "Verdict: A" if _first_shown(body) == GOOD else "Verdict: B")
    llm.add(r".", "Both responses have their merits; it is hard to say.")
    report = _compare(llm)
    (pair,) = report["pairs"]
    assert pair["outcome"] == "win" and pair["verdicts"] == ["A", "B"] and pair["consistent"] is True
    assert pair["judge_calls"] == 4 and report["judge_calls"] == 4  # two orders, each asked twice
    assert pair["judge_cost_usd"] > 0 and report["judge_cost_usd"] == pytest.approx(pair["judge_cost_usd"])
    answered = [r for r in llm.requests if "response_format" not in r]
    assert sum("could not be used" in str(r["messages"][-1]) for r in answered) == 2
    assert len([s for s in spans if s.name == "judge.reask"]) == 2


def test_a_judge_that_never_gives_a_verdict_is_the_pairs_error_after_one_reask(llm):
    llm.add(r".", "I would rate response A 7/10 and response B 6/10.")
    report = _compare(llm)
    (pair,) = report["pairs"]
    assert pair["outcome"] == "error" and report["errors"] == 1
    assert "also after 1 re-ask" in pair["error"] and "score" in pair["error"]
    assert pair["judge_calls"] == 4


@pytest.mark.parametrize("tie", ["平局", "相同", "一样好", "不分胜负"])
def test_chinese_ties_are_read_as_ties(llm, tie):
    llm.add(r".", f"两个回答都正确地指出了首都。\n结论：{tie}")
    report = _compare(llm)
    (pair,) = report["pairs"]
    assert pair["verdicts"] == ["tie", "tie"] and pair["outcome"] == "tie"
    assert pair["judge_calls"] == 2  # a verdict at once: no re-ask


def test_fake_llm_fault_applies_only_to_the_requests_it_is_told(llm):
    """`when` picks the requests a fault hits; those it passes over do not use up `times`."""
    url = f"{llm.base_url}/chat/completions"
    plain = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    llm.fail(Fault.RATE_LIMIT, 1, when=lambda body: body.get("temperature") == 0.5)
    assert httpx.post(url, json=plain).status_code == 200
    assert httpx.post(url, json={**plain, "temperature": 0.5}).status_code == 429
    assert httpx.post(url, json={**plain, "temperature": 0.5}).status_code == 200  # used up: once
    refused = httpx.post(url, json={**plain, "response_format": {"type": "json_object"}})
    assert refused.status_code == 400 and refused.json()["error"]["message"] == REFUSED  # every time (None)
    assert httpx.post(url, json={**plain, "response_format": {"type": "json_object"}}).status_code == 400
    with pytest.raises(TypeError):
        llm.fail(Fault.DROP, when="response_format")  # type: ignore[arg-type]

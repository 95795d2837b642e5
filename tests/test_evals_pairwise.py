"""Pairwise judging with position swap: ties on disagreement, length control, lenient parsing, errors."""
# ruff: noqa: F811 - pytest fixtures imported from test_evals_support are redefined as parameters

from __future__ import annotations

import asyncio
import re

import pytest
from test_evals_support import llm  # noqa: F401 - fixture

from flywheel.config import ModelAlias
from flywheel.errors import UserError
from flywheel.evals.pairwise import Pair, bootstrap_ci, compare_pairs
from flywheel.gateway.gateway import Gateway

SHORT = ["Paris.", "Rome.", "Berlin.", "Madrid.", "Lisbon.", "Vienna."]
LONG = [
    f"Well, the capital you are asking about is, as far as I can tell after long thought, {c}" for c in SHORT
]


def gateway(llm) -> Gateway:
    return Gateway(
        {
            "judge": ModelAlias(
                provider="openai_compat", base_url=llm.base_url, model="fake-judge", max_retries=0
            )
        }
    )


def responses(body: dict) -> tuple[str, str]:
    text = body["messages"][-1]["content"]
    a = re.search(r"<response_a>\n(.*?)\n</response_a>", text, re.DOTALL).group(1)
    b = re.search(r"<response_b>\n(.*?)\n</response_b>", text, re.DOTALL).group(1)
    return a, b


def pairs(a: list[str], b: list[str]) -> list[Pair]:
    return [Pair(f"q{i}", f"Capital number {i}?", x, y) for i, (x, y) in enumerate(zip(a, b, strict=True))]


def compare(llm, items: list[Pair], **kw) -> dict:
    return asyncio.run(compare_pairs(items, gateway(llm), "judge", a="long", b="short", **kw))


def test_a_judge_that_always_answers_a_yields_only_ties(llm) -> None:
    llm.add(r".", "A")
    report = compare(llm, pairs(LONG, SHORT))
    assert (report["wins"], report["ties"], report["losses"]) == (0, 6, 0)
    assert report["position_consistency"] == 0.0 and report["first_position_rate"] == 1.0
    assert report["win_rate"] == 0.5
    assert all(p["verdicts"] == ["A", "A"] and p["preferences"] == ["a", "b"] for p in report["pairs"])
    assert any("position" in w for w in report["warnings"])
    assert len(llm.requests) == 12  # every pair twice


def test_a_judge_preferring_the_longer_answer_is_exposed_by_length_control(llm) -> None:
    def longer(body: dict) -> str:
        a, b = responses(body)
        return "The first is more thorough.\nVerdict: A" if len(a) > len(b) else "More detail.\nVerdict: B"

    llm.add(r".", longer)
    report = compare(llm, pairs(LONG, SHORT))
    assert (report["wins"], report["losses"]) == (6, 0) and report["position_consistency"] == 1.0
    assert report["length"]["longer_won_rate"] == 1.0
    assert any("reward length" in w for w in report["warnings"])
    assert all(p["length_ratio"] > 5 for p in report["pairs"])

    flagged = compare(llm, pairs(LONG, SHORT), max_length_diff=50)
    assert flagged["length"]["flagged"] == 6 and flagged["length"]["within_limit"] == {
        "win": 0,
        "tie": 0,
        "loss": 0,
    }
    assert all(p["flagged"] for p in flagged["pairs"])

    before = len(llm.requests)
    skipped = compare(llm, pairs(LONG, SHORT), max_length_diff=50, length_action="skip")
    assert skipped["skipped"] == 6 and skipped["wins"] == 0 and skipped["win_rate"] is None
    assert len(llm.requests) == before  # skipped pairs are never sent to the judge


def test_consistent_preferences_and_explicit_ties(llm) -> None:
    def knows_paris(body: dict) -> str:
        a, b = responses(body)
        if ("Paris" in a) == ("Paris" in b):
            return "Both equally fine.\nVerdict: tie"
        return (
            "It names Paris.\n**Verdict**: [[A]]"
            if "Paris" in a
            else '{"reason": "b names Paris", "verdict": "B"}'
        )

    llm.add(r".", knows_paris)
    items = [
        Pair("p", "Capital of France?", "Paris.", "Lyon."),
        Pair("l", "Capital of France?", "Lyon.", "Paris."),
        Pair("t", "Capital of Italy?", "Rome.", "Roma."),
    ]
    report = asyncio.run(compare_pairs(items, gateway(llm), "judge"))
    outcomes = {p["case_id"]: p["outcome"] for p in report["pairs"]}
    assert outcomes == {"p": "win", "l": "loss", "t": "tie"}
    assert report["position_consistency"] == 1.0 and report["win_rate"] == 0.5
    assert report["judge_model"] == "fake-judge"
    system = llm.requests[0]["messages"][0]["content"]
    assert system.index("reasoning") < system.index("Verdict: A")  # reasoning before the verdict
    assert "tie" in system


def test_malformed_judge_output_is_an_error_never_a_crash(llm) -> None:
    llm.add(r".", "I refuse to pick.")
    report = compare(llm, pairs(LONG[:3], SHORT[:3]))
    assert report["errors"] == 3 and report["judged"] == 0 and report["win_rate"] is None
    assert "malformed" in report["pairs"][0]["error"]


def test_bootstrap_interval_and_bad_options(llm) -> None:
    assert bootstrap_ci([1.0] * 10) is None  # zero width would overstate: no interval, Wilson instead
    low, high = bootstrap_ci([1.0, 0.0] * 20)
    assert low < 0.5 < high and high - low < 0.4
    with pytest.raises(UserError):
        compare(llm, pairs(LONG[:1], SHORT[:1]), length_action="drop")
    with pytest.raises(UserError) as err:
        asyncio.run(compare_pairs(pairs(LONG[:1], SHORT[:1]), gateway(llm), "gpt-9"))
    assert "judge" in err.value.message

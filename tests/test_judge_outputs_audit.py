"""The LLM judge against the replies real judge models write, through the fake LLM (a real HTTP server).

GPT JSON mode, Claude prose + ```json fences, R1 / QwQ / Qwen <think> blocks (drafts inside never count),
Llama's sloppy JSON, Chinese verdicts and full-width JSON, truncated and empty replies, refusals and scores:
each gives the right verdict or a recorded "malformed judge output" error, never a silent pass or a crash.
"""
# ruff: noqa: F811 - pytest fixtures imported from test_evals_support are redefined as parameters

from __future__ import annotations

import asyncio
import json

import pytest
from conftest import spans  # noqa: F401 - fixture
from test_evals_support import llm  # noqa: F401 - fixture

from flywheel.checks import CheckContext, Services, build
from flywheel.config import ModelAlias
from flywheel.gateway.gateway import Gateway
from flywheel.testing.fake_llm import Fault

PASS, FAIL, NONE = "pass", "fail", None

SHAPES = [
    # GPT-4o / 4.1 structured output and JSON mode
    ('{"reasoning": "It cites [1].", "verdict": "PASS"}', PASS),
    ('{"passed": false, "reason": "No source is named."}', FAIL),
    ('{"evaluation": {"verdict": "FAIL", "why": "no source"}}', FAIL),
    # Claude: prose, then fenced JSON
    ('Let me look at the citation.\n\n```json\n{"reasoning": "It never cites.", "verdict": "FAIL"}\n```', FAIL),
    # R1 / QwQ / Qwen: a <think> block first, sometimes holding a draft verdict
    ('<think>Draft: {"verdict": "PASS"}. Hmm, wait, no source.</think>\nThe output misses the source.', NONE),
    ("<think>It looks fine. Verdict: PASS", NONE),  # cut off inside the reasoning
    ('<think>maybe {"verdict": "FAIL"}</think>\n\n{"reasoning": "cites [1]", "verdict": "PASS"}', PASS),
    ("Okay, the user wants a source. Verdict: PASS? No.\n</think>\n\nVerdict: FAIL", FAIL),  # opener in prompt
    # Llama 3 8B: single quotes, trailing commas, Python booleans
    ("{'reasoning': 'it cites [1]', 'verdict': 'PASS',}", PASS),
    ('{"passed": False, "reason": "no source",}', FAIL),
    # Chinese verdicts and full-width JSON
    ("通过", PASS),
    ("不通过", FAIL),
    ("理由：没有引用来源。\n结论：不合格", FAIL),
    ("判定为不通过", FAIL),
    ("｛“passed”：false｝", FAIL),
    ("｛“reasoning”：“引用了[1]。”，“verdict”：“PASS”｝", PASS),
    # a long reason with newlines and unescaped quotes
    ('{"reasoning": "It says "yes" but\nnever names the file", "verdict": "FAIL"}', FAIL),
    # no verdict: empty, refusals, scores, label words inside sentences
    ("", NONE),
    ("I can't evaluate this.", NONE),
    ("No, I can't evaluate this.", NONE),
    ("Score: 8 out of 10", NONE),
    ('{"score": "4/5"}', NONE),
    ("The answer is correct, but it does not cite a source, so it fails.", NONE),
    ("It does not pass.", NONE),
    ("End with Verdict: PASS or FAIL.", NONE),  # the choices echoed
    ("I must end with `Verdict: PASS` or `Verdict: FAIL`.", NONE),
]


def gateway_for(llm, **kw) -> Gateway:
    alias = {"provider": "openai_compat", "base_url": llm.base_url, "model": "fake-judge", "max_retries": 0, **kw}
    return Gateway({"judge": ModelAlias(**alias)})


def ctx_for(gw: Gateway, **kw) -> CheckContext:
    return CheckContext(services=Services(gateway=gw, judge_model="judge"), **kw)


@pytest.mark.parametrize(("reply", "want"), SHAPES, ids=[f"shape{i}" for i in range(len(SHAPES))])
def test_judge_reply_shapes(llm, reply, want) -> None:
    llm.add(r".", reply)  # the re-ask gets the same reply
    r = build("judge", "The answer cites a source.").run("See [1].", ctx_for(gateway_for(llm)))
    if want is None:
        assert not r.passed and r.error and r.error.startswith("malformed judge output"), (r.passed, r.error)
        assert r.details["judge_calls"] == 2 and r.details["judge_problem"]
    else:
        assert r.error is None and r.passed == (want == PASS) and r.details["verdict"] == want
        assert r.details["judge_calls"] == 1


@pytest.mark.parametrize(("reply", "want"), SHAPES, ids=[f"shape{i}" for i in range(len(SHAPES))])
def test_parse_verdict_shapes(reply, want) -> None:
    """The parser alone (the gateway may already have split a leading <think> off: other providers do not)."""
    from flywheel.checks.judge import _BINARY, parse_verdict

    assert parse_verdict(reply, _BINARY) == want


# shapes kept out of development and run only once the parser was written (all read right the first time)
HELD_OUT = [
    ("Okay, let me weigh this.\n\n**Final Verdict**: \u274c FAIL", "stop", FAIL),
    ('The user wants a source. Maybe {"verdict": "PASS"}... no.\n</think>\n\n判定：不通过', "stop", FAIL),
    ("{'verdict': 'Pass', 'reasoning': 'The answer is mostly correct, it is fine',}", "stop", PASS),
    ("｛“reasoning”：“回答没有引用来源。”，“verdict”：“FAIL”｝", "stop", FAIL),
    ('```\n{\n  "passed": false,\n  "reason": "Missing citation"\n}\n```', "stop", FAIL),
    ('{"reasoning": "The output says verdict: PASS is unwarranted because', "length", NONE),
    ("I'm sorry, but I can't assist with evaluating this content.", "stop", NONE),
    ("Rating: 8 out of 10", "stop", NONE),
    ("结论：合格。", "stop", PASS),
    ("The output does not pass the criterion.", "stop", NONE),
]


@pytest.mark.parametrize(("reply", "finish", "want"), HELD_OUT, ids=[f"held{i}" for i in range(len(HELD_OUT))])
def test_held_out_shapes(reply, finish, want) -> None:
    from flywheel.checks.judge import _BINARY
    from flywheel.checks.judge_parse import read_verdict

    assert read_verdict(reply, _BINARY, finish_reason=finish).verdict == want


def test_reasoning_is_read_from_the_answer_not_the_think_block(llm) -> None:
    llm.add(r".", "<think>secret draft, Verdict: FAIL</think>\n理由：回答引用了[1]。\n结论：通过")
    r = build("judge", "回答需要引用来源。").run("见 [1]。", ctx_for(gateway_for(llm), input="怎么配置？"))
    assert r.passed and r.error is None and r.reason == "回答引用了[1]。"
    user = llm.requests[-1]["messages"][1]["content"]
    assert "回答需要引用来源。" in user and "怎么配置？" in user and "见 [1]。" in user
    assert "in English" in llm.requests[-1]["messages"][0]["content"]  # the final line stays parseable


def test_truncated_reply_is_asked_again_and_costed(llm, spans) -> None:
    llm.add(r"could not be used", "Verdict: FAIL")
    llm.add(r".", "Verdict: PASS looks likely at first, but the output never cites a source, so")
    gw = gateway_for(llm, params={"max_tokens": 6}, price={"input": 1.0, "output": 2.0})
    r = build("judge", "The answer cites a source.").run("yes", ctx_for(gw))
    assert not r.passed and r.error is None and r.details["judge_calls"] == 2
    first, second = llm.requests[0], llm.requests[1]
    assert second["messages"][-1]["role"] == "user" and "cut off" in second["messages"][-1]["content"]
    assert second["messages"][-2] == {"role": "assistant", "content": "Verdict: PASS looks likely at"}
    assert r.details["judge_cost_usd"] > 0 and [s.name for s in spans].count("judge.reask") == 1
    assert first["response_format"]["type"] == "json_schema" and "JSON object" in second["messages"][-1]["content"]


def test_reasks_are_bounded_and_every_call_is_priced(llm) -> None:
    llm.add(r".", "I'm sorry, I can't evaluate this.")
    gw = gateway_for(llm, price={"input": 1.0, "output": 2.0})
    r = build("judge", "Anything.").run("x", ctx_for(gw))
    assert not r.passed and "declined" in r.error and "re-ask" in r.error
    assert len(llm.requests) == 2 and r.details["judge_problem"] == "refusal"
    assert r.details["judge_calls"] == 2 and r.details["judge_cost_usd"] > 0  # both calls priced
    r2 = asyncio.run(build("judge", "Anything.").arun("x", ctx_for(gw)))
    assert r2.error == r.error and len(llm.requests) == 4


def test_negated_judge_without_verdict_stays_failed(llm) -> None:
    llm.add(r".", "<think>Verdict: FAIL</think>")
    r = build("not-judge", "It is wrong.").run("x", ctx_for(gateway_for(llm)))
    assert not r.passed and r.error and r.error.startswith("malformed judge output")


def test_endpoint_rejecting_response_format_gets_plain_text_every_time(llm) -> None:
    llm.add(r".", "It cites [1].\n\nFinal verdict: **PASS**")
    gw = gateway_for(llm)
    for _ in range(2):
        llm.fail(Fault.SERVER_ERROR, times=1, status=400)  # what a server without response_format answers
        r = build("judge", "Cites a source.").run("[1]", ctx_for(gw))
        assert r.passed and r.error is None
        assert "response_format" in llm.requests[-2] and "response_format" not in llm.requests[-1]
    plain = gateway_for(llm, json_schema=False)
    assert build("judge", "Cites a source.").run("[1]", ctx_for(plain)).passed
    assert "response_format" not in llm.requests[-1]


def test_calibration_reads_judge_replies_the_same_way(llm) -> None:
    from flywheel.evals.calibration import LabelledItem, judge_items, propose_criterion

    llm.add(r"could not be used", "Verdict: FAIL")
    llm.add(r"item-alpha", 'Draft: <think>{"verdict": "PASS"}</think>')
    llm.add(r"item-beta", "Verdict: PASS")
    items = [LabelledItem(id="1", input="item-alpha", output="a", human="fail", reason=""),
             LabelledItem(id="2", input="item-beta", output="b", human="pass", reason="")]
    gw = gateway_for(llm)
    assert asyncio.run(judge_items(gw, "Cites a source.", "judge", items)) == ["fail", "pass"]
    llm.reset()
    llm.add(r".", "<think>maybe <criterion>a draft</criterion></think>\nI would keep it as it is.")
    wrong = [(items[0], "pass")]
    assert asyncio.run(propose_criterion(gw, "judge", "Cites a source.", wrong)) is None


def test_pairwise_verdicts_ignore_think_drafts(llm) -> None:
    from flywheel.evals.pairwise import Pair, judge_pair

    # the opening <think> went out in the chat template: only its closing tag is in the reply
    llm.add(r".", "Hmm. Verdict: A\n</think>\nB is more complete.\nVerdict: B")
    out = asyncio.run(judge_pair(Pair("c1", "q?", "short", "longer answer"), gateway_for(llm), "judge",
                                 flagged=False, skip=False))
    assert out["verdicts"] == ["B", "B"] and out["outcome"] == "tie"
    assert out["reasons"][0] == "B is more complete."


def test_a_reask_after_a_rejected_response_format_asks_in_text(llm) -> None:
    """An endpoint that refuses `response_format` on every request: the re-ask goes as plain text at once,
    without spending another 400 on the structured form, and asks for the final line, not for JSON."""
    llm.fail(Fault.SERVER_ERROR, None, status=400, when=lambda body: "response_format" in body)
    llm.add(r"could not be used", "Verdict: FAIL")
    llm.add(r".", "Hmm, let me think about whether it cites anything")
    r = build("judge", "Cites a source.").run("[1]", ctx_for(gateway_for(llm)))
    assert not r.passed and r.error is None and r.details["judge_calls"] == 2
    structured = [body for body in llm.requests if "response_format" in body]
    assert len(structured) == 1  # the first call only
    assert "Verdict: PASS" in json.dumps(llm.requests[-1], ensure_ascii=False)

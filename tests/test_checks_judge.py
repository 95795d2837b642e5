"""LLM checks through the gateway against the fake LLM: verdicts, lenient parsing, errors, spec."""
# ruff: noqa: F811 - pytest fixtures imported from test_evals_support are redefined as parameters

from __future__ import annotations

import asyncio

import pytest
from test_evals_support import llm  # noqa: F401 - fixture

from flywheel.checks import CheckContext, Services, build
from flywheel.checks.judge import JUDGE_SYSTEM
from flywheel.config import ModelAlias
from flywheel.errors import UserError
from flywheel.gateway.gateway import Gateway
from flywheel.testing.fake_llm import Fault


def gateway_for(llm, model: str = "fake-judge", version: str | None = None) -> Gateway:
    return Gateway(
        {
            "judge": ModelAlias(
                provider="openai_compat", base_url=llm.base_url, model=model, version=version, max_retries=0
            )
        }
    )


def ctx_for(gw: Gateway, **kw) -> CheckContext:
    return CheckContext(services=Services(gateway=gw, judge_model="judge"), **kw)


def test_judge_pass_and_fail_with_reasoning_first(llm) -> None:
    llm.add(r"cites a source", "The answer quotes [1] directly.\nVerdict: PASS")
    llm.add(r"is polite", "It is curt and dismissive.\n**Verdict:** fail")
    gw = gateway_for(llm)
    ok = build("judge", "The answer cites a source.").run("See [1].", ctx_for(gw, input="How?"))
    assert ok.passed and ok.score == 1.0 and ok.error is None
    assert ok.reason == "The answer quotes [1] directly."
    assert ok.details["verdict"] == "pass" and ok.details["judge_model"] == "fake-judge"
    bad = build("judge", {"criterion": "The answer is polite.", "model": "judge"}).run("No.", ctx_for(gw))
    assert not bad.passed and bad.error is None and "curt" in bad.reason
    request = llm.requests[0]
    system, user = request["messages"][0]["content"], request["messages"][1]["content"]
    assert system == JUDGE_SYSTEM and "reason" in system.lower() and "Verdict: PASS" in system
    assert "The answer cites a source." in user and "See [1]." in user and "How?" in user


def test_malformed_judge_output_is_a_recorded_error(llm) -> None:
    llm.add(r".", "I would rather not say.")
    r = build("judge", "Anything.").run("x", ctx_for(gateway_for(llm)))
    assert not r.passed and r.error and "no verdict" in r.error
    assert r.details["raw"] == "I would rather not say."


def test_unreachable_judge_is_a_recorded_error(llm) -> None:
    llm.fail(Fault.SERVER_ERROR, times=None)
    r = build("judge", "Anything.").run("x", ctx_for(gateway_for(llm)))
    assert not r.passed and r.error and "judge call failed" in r.error
    no_gateway = build("judge", "Anything.").run("x", CheckContext())
    assert no_gateway.error and "gateway" in no_gateway.error


def test_lenient_verdicts(llm) -> None:
    replies = iter(['{"reasoning": "fine", "verdict": "pass"}', "PASS", "Reasoning: no.\nVerdict - FAIL."])
    llm.add(r".", lambda body: next(replies))
    gw = gateway_for(llm)
    assert [build("judge", "c").run("x", ctx_for(gw)).passed for _ in range(3)] == [True, True, False]


def test_agrees_with_reference(llm) -> None:
    llm.add(r"Reference answer", "Both say version.\nVerdict: PASS")
    gw = gateway_for(llm)
    check = build("agrees-with-reference")
    assert check.run("Use version:", ctx_for(gw, reference="Set `version:`.")).passed
    assert "Set `version:`." in llm.requests[-1]["messages"][1]["content"]
    missing = check.run("Use version:", ctx_for(gw))
    assert not missing.passed and "reference" in missing.error
    with pytest.raises(UserError):
        build("agrees-with-reference", "strong")


def test_spec_covers_prompt_and_resolved_judge_model(llm) -> None:
    check = build("judge", "The answer cites a source.")
    a = check.spec(ctx_for(gateway_for(llm, "fake-judge")))
    assert a == check.spec(ctx_for(gateway_for(llm, "fake-judge")))
    assert a != check.spec(ctx_for(gateway_for(llm, "fake-judge", version="v2")))  # pinned version changed
    assert a != check.spec(ctx_for(gateway_for(llm, "other-judge")))
    assert a != build("judge", "Another criterion.").spec(ctx_for(gateway_for(llm)))
    llm.add(r".", "ok\nVerdict: PASS")
    assert check.run("x", ctx_for(gateway_for(llm))).spec == a


def test_async_and_negated_judge(llm) -> None:
    llm.add(r".", "Looks wrong.\nVerdict: FAIL")
    ctx = ctx_for(gateway_for(llm))
    r = asyncio.run(build("not-judge", "It is right.").arun("x", ctx))
    assert r.passed and r.name == "not-judge"


def test_bad_judge_arguments() -> None:
    for arg in (None, "", {"criterion": "c", "temperature": 1}, {"criterion": "c", "model": 3}):
        with pytest.raises(UserError):
            build("judge", arg)


def test_reasoning_on_the_verdict_line_is_kept() -> None:
    from flywheel.checks.judge import reasoning_of

    assert reasoning_of("The output names the version: key. Verdict: PASS") == "The output names the version: key."
    assert reasoning_of("Reasoning: it cites [1].\nVerdict: FAIL") == "it cites [1]."


def test_the_final_verdict_counts_not_json_quoted_from_the_output() -> None:
    from flywheel.checks.judge import _BINARY, parse_verdict

    quoted = 'The output is {"answer": "yes"} but it never names the file.\nVerdict: FAIL'
    assert parse_verdict(quoted, _BINARY) == "fail"
    assert parse_verdict('It wrote {"verdict": "pass"} as its answer, which is wrong.\nVerdict: FAIL', _BINARY) == "fail"
    assert parse_verdict('Verdict: FAIL at first, but on reflection it is right.\n{"verdict": "pass"}', _BINARY) == "pass"
    assert parse_verdict('{"reasoning": "It says yes.", "verdict": "FAIL"}', _BINARY) == "fail"


def test_judge_asks_for_structured_output_and_reads_it(llm) -> None:
    llm.add(r".", '{"reasoning": "The output is {\\"answer\\": \\"yes\\"} but cites nothing.", "verdict": "FAIL"}')
    r = build("judge", "The answer cites a source.").run("yes", ctx_for(gateway_for(llm)))
    assert not r.passed and r.error is None and r.reason.startswith("The output is")
    fmt = llm.requests[-1]["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"]["properties"]["verdict"]["enum"] == ["PASS", "FAIL"]
    assert list(fmt["json_schema"]["schema"]["properties"]) == ["reasoning", "verdict"]  # reasoning first


def test_judge_without_structured_output_support_parses_text(llm) -> None:
    llm.add(r".", "It cites [1].\nVerdict: PASS")
    plain = Gateway({"judge": ModelAlias(provider="openai_compat", base_url=llm.base_url, model="fake-judge",
                                         max_retries=0, json_schema=False)})
    assert build("judge", "Cites a source.").run("[1]", ctx_for(plain)).passed
    assert "response_format" not in llm.requests[-1]
    # an endpoint that rejects response_format (HTTP 400) is asked again in plain text
    llm.fail(Fault.SERVER_ERROR, times=1, status=400)
    r = build("judge", "Cites a source.").run("[1]", ctx_for(gateway_for(llm)))
    assert r.passed and r.error is None
    assert "response_format" in llm.requests[-2] and "response_format" not in llm.requests[-1]

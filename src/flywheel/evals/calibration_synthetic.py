"""A synthetic labelled set and a judge with a known bias, for `flywheel bench review` and the tests.

People fail support answers that promise ("we guarantee …") or that do not answer ("I'm not sure …"). The
biased judge fails the second kind but passes every promise — unless its prompt shows a people-graded example
of a promise marked FAIL, or its criterion itself forbids guarantees. `biased_judge_reply` is that judge as a
function of the prompt text, so the same judge serves an in-process gateway here and a fake_llm rule in tests:

    llm.add(r".", lambda body: biased_judge_reply(last_user_text(body)))
"""

from __future__ import annotations

import random
import re
from typing import Any

from flywheel.evals.calibration import JudgeRef, LabelledItem, calibrate
from flywheel.types import ChatRequest, ChatResult

CRITERION = "The answer helps the customer with their question."
PROPOSED = "The answer helps the customer and never promises or guarantees an outcome."
_TOPICS = ["refund", "password reset", "invoice", "delivery", "account deletion", "plan upgrade", "API key",
           "data export", "two-factor login", "team invite", "billing address", "trial extension"]
_GOOD = "To handle your {t}, open Settings, choose {t}, and follow the steps; it takes about {n} minutes."
_PROMISE = "We guarantee your {t} will be done within {n} minutes, no matter what."
_UNSURE = "I'm not sure about {t}, sorry."


def synthetic_items(n: int = 200, seed: int = 0) -> list[LabelledItem]:
    """Half good answers (pass), 35 % promises (fail), 15 % non-answers (fail)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        topic, minutes = rng.choice(_TOPICS), rng.randint(2, 90)
        kind = rng.random()
        if kind < 0.5:
            output, human, reason = _GOOD, "pass", ""
        elif kind < 0.85:
            output, human, reason = _PROMISE, "fail", "promises an outcome we cannot guarantee"
        else:
            output, human, reason = _UNSURE, "fail", "does not answer"
        out.append(LabelledItem(id=f"s{i:05d}", input=f"How do I sort out my {topic}? (ticket {i})",
                                output=output.format(t=topic, n=minutes), human=human, reason=reason))
    return out


def biased_judge_reply(prompt: str) -> str:
    """The biased judge's answer to a judge prompt (flywheel.checks.judge's template), or a criterion edit
    when asked for one (flywheel.evals.calibration's proposal prompt)."""
    if "<disagreements>" in prompt:
        return f"<criterion>{PROPOSED}</criterion>"
    criterion = _between(prompt, "<criterion>", "</criterion>", last_end=True)
    output = _between(prompt, "<output>", "</output>", last_start=True).lower()
    if "not sure" in output:
        return "It does not answer the question.\nVerdict: FAIL"
    if "guarantee" in output:
        shown = re.search(r"Output:[^\n]*guarantee[^\n]*\nHuman verdict: FAIL", criterion, re.IGNORECASE)
        if shown or "guarantees" in criterion.split("Examples graded by people")[0]:
            return "It promises an outcome, which the people graded as a failure.\nVerdict: FAIL"
        return "It answers confidently.\nVerdict: PASS"
    return "It answers the question.\nVerdict: PASS"


def _between(text: str, start: str, end: str, *, last_start: bool = False, last_end: bool = False) -> str:
    i = text.rfind(start) if last_start else text.find(start)
    if i < 0:
        return ""
    i += len(start)
    j = text.rfind(end) if last_end else text.find(end, i)
    return text[i:j] if j >= i else text[i:]


class ScriptedJudgeGateway:
    """An in-process gateway answering every request with `reply(last user message)` (no network, no cost)."""

    def __init__(self, reply: Any = biased_judge_reply):
        self.models: dict[str, Any] = {}
        self.reply = reply
        self.calls = 0

    def resolve(self, alias: str) -> Any:
        raise KeyError(alias)  # no alias configuration: the judge asks in plain text

    def chat(self, request: ChatRequest) -> ChatResult:
        self.calls += 1
        user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        text = self.reply(user if isinstance(user, str) else str(user))
        return ChatResult(text=text, alias=request.model, model="synthetic-judge", provider="synthetic")


def calibrate_synthetic(seed: int = 0, *, n: int = 200, gateway: Any = None, propose: bool = False) -> dict[str, Any]:
    """Calibrate the biased judge on the synthetic set: {"kappa_before", "kappa_after", "n_heldout"}.

    `gateway` defaults to the in-process scripted one; pass a Gateway whose `default` alias points at a
    fake_llm serving `biased_judge_reply` to go through HTTP. Nothing is stored."""
    report = calibrate(
        None,
        gateway or ScriptedJudgeGateway(),
        JudgeRef(label="synthetic", criterion=CRITERION),
        synthetic_items(n, seed),
        heldout=0.5,
        seed=seed,
        propose=propose,
        save=False,
    )
    return {k: report[k] for k in ("kappa_before", "kappa_after", "n_heldout")}

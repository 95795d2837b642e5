"""LLM checks through the gateway: `judge` (pass/fail against a written criterion), `agrees-with-reference`.

    - judge: "The answer tells the user where the version is configured."
    - judge: {criterion: "Polite and concise.", model: strong}
    - agrees-with-reference                       # compares with the case's `reference`
    - agrees-with-reference: {model: strong}

Binary verdicts only (no 1–10 scales: they drift and nobody can say what a 7 means), and the judge writes its
reasoning BEFORE the verdict. Where the alias's endpoint takes `response_format` (openai_compat unless the
alias says `json_schema: false`), the judge is asked for `{"reasoning": …, "verdict": "PASS"|"FAIL"}` as
structured output; an endpoint that rejects it (HTTP 400/422) is asked again in plain text. Replies are read
by the rules of flywheel.checks.judge_parse: reasoning blocks (`<think>`) never count, JSON is read leniently
(fences, single quotes, True/False, full-width ｛“passed”：true｝), `Verdict: PASS`, `结论：不通过`, a bare `PASS`;
the FINAL verdict counts, never JSON quoted from the output under review. A reply without a verdict (empty,
cut off by max_tokens, a refusal, a score, only a <think> block) is asked once more for the verdict alone
(MAX_REASKS, an ordinary traced and priced gateway call); still none is an error on the result
(`malformed judge output: …`, `details.judge_problem`), never raised and never a pass.

The judge model is the check's `model`, else `ctx.services.judge_model`, else the `default` alias; the
result's `spec` covers the judge prompt and the pinned model that alias resolves to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flywheel.checks.base import Check, CheckContext, register, service
from flywheel.checks.judge_parse import (  # noqa: F401 - parse_verdict, reasoning_of: re-exported (tests, older imports)
    Reading,
    answer_part,
    parse_verdict,
    read_verdict,
    reasoning_of,
)
from flywheel.errors import GatewayError
from flywheel.tracing import tracer
from flywheel.types import ChatRequest, ChatResult, CheckResult, Message

JUDGE_SYSTEM = """You are a careful, strict evaluator of an AI assistant's output.
You decide whether the OUTPUT meets the CRITERION. The decision is binary: it meets it or it does not.
First reason step by step about the evidence in the output, quoting it where it helps.
Only after the reasoning, end with one final line that is exactly `Verdict: PASS` or `Verdict: FAIL`,
in English, whatever the language of the criterion, input and output."""

JUDGE_USER = """<criterion>
{criterion}
</criterion>

<input>
{input}
</input>

<output>
{output}
</output>

Does the output meet the criterion? Write your reasoning first,
then the final line `Verdict: PASS` or `Verdict: FAIL`."""

REFERENCE_CRITERION = (
    "The output agrees with the reference answer below on every fact that matters to the input: it does not "
    "contradict the reference and it does not leave out a key fact the reference gives. Different wording, "
    "order or extra correct detail are fine.\n\nReference answer:\n{reference}"
)

PASS_WORDS = ("pass", "passed", "yes", "true", "meets", "correct", "通过", "合格", "符合", "满足", "正确")
FAIL_WORDS = ("fail", "failed", "no", "false", "incorrect", "不通过", "未通过", "不合格", "不符合", "不满足",
              "不正确", "错误", "失败")
_BINARY = {**{w: "pass" for w in PASS_WORDS}, **{w: "fail" for w in FAIL_WORDS}}
_MAX_REASON = 2000
MAX_REASKS = 1  # a reply without a verdict is asked once more for the verdict alone


# ---------------------------------------------------------------- verdicts (rules: flywheel.checks.judge_parse)


def verdict_schema(verdicts: list[str]) -> dict[str, Any]:
    """JSON Schema of a judge's structured answer: the reasoning first, then one of `verdicts`."""
    return {
        "type": "object",
        "properties": {
            "reasoning": {
                "type": "string",
                "description": "Step-by-step reasoning, written before the verdict.",
            },
            "verdict": {"type": "string", "enum": verdicts},
        },
        "required": ["reasoning", "verdict"],
        "additionalProperties": False,
    }


def with_structured_output(gateway: Any, request: ChatRequest, verdicts: list[str]) -> ChatRequest:
    """`request` asking for `verdict_schema` as `response_format` when the alias's endpoint takes it."""
    if gateway is None:
        return request
    from flywheel.gateway.structured import _supports_response_format  # the one rule (lazy: import cost)

    if not _supports_response_format(gateway, request.model):
        return request
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "verdict", "strict": True, "schema": verdict_schema(verdicts)},
    }
    return request.model_copy(update={"response_format": fmt})


def _rejected_format(exc: GatewayError) -> bool:
    """The endpoint refused the request itself (400/422): most likely `response_format`; ask in text."""
    return bool(exc.attempts) and all(a.status in (400, 422) for a in exc.attempts)


def ask(gateway: Any, request: ChatRequest) -> ChatResult:
    """One judge call; a structured request the endpoint rejects is asked again as plain text."""
    return _ask(gateway, request)[0]


def _ask(gateway: Any, request: ChatRequest) -> tuple[ChatResult, ChatRequest]:
    """(the reply, the request that got it): plain text once the endpoint rejected `response_format`, so a
    re-ask does not spend another 400 on it."""
    try:
        return gateway.chat(request), request
    except GatewayError as exc:
        if request.response_format is None or not _rejected_format(exc):
            raise
    plain = request.model_copy(update={"response_format": None})
    return gateway.chat(plain), plain


async def ask_async(gateway: Any, request: ChatRequest) -> ChatResult:
    """`ask` on the event loop (the gateway's `achat`, else its `chat` on a thread)."""
    return (await _ask_async(gateway, request))[0]


async def _ask_async(gateway: Any, request: ChatRequest) -> tuple[ChatResult, ChatRequest]:
    achat = getattr(gateway, "achat", None)
    if achat is None:
        import asyncio

        return await asyncio.to_thread(_ask, gateway, request)
    try:
        return await achat(request), request
    except GatewayError as exc:
        if request.response_format is None or not _rejected_format(exc):
            raise
    plain = request.model_copy(update={"response_format": None})
    return await achat(plain), plain


def reask(request: ChatRequest, reply: ChatResult, reading: Reading, choices: Sequence[str]) -> ChatRequest:
    """`request` again after a reply without a verdict: the reply (without its reasoning blocks) and a short
    note asking for the verdict alone (one of `choices`), in the shape the request asked for."""
    if request.response_format is not None:
        verdicts = " or ".join(f'"{c}"' for c in choices)
        ask_for = f'only the JSON object {{"reasoning": "<one sentence>", "verdict": {verdicts}}}'
    else:
        ask_for = "only the final line " + " or ".join(f"`Verdict: {c}`" for c in choices)
    answer = answer_part(reply.text)[0][:_MAX_REASON]
    messages = list(request.messages)
    if answer:
        messages.append(Message(role="assistant", content=answer))
    note = f"Your reply could not be used: {reading.why()}. Reply with {ask_for}, nothing else."
    messages.append(Message(role="user", content=note))
    metadata = {**request.metadata, "reask": int(request.metadata.get("reask", 0)) + 1}
    return request.model_copy(update={"messages": messages, "metadata": metadata})


def _needs_reask(answers: list[ChatResult], labels: dict[str, str]) -> Reading | None:
    if len(answers) > MAX_REASKS:
        return None
    last = answers[-1]
    reading = read_verdict(last.text, labels, finish_reason=last.finish_reason)
    return reading if reading.verdict is None else None


def ask_for_verdict(gateway: Any, request: ChatRequest, labels: dict[str, str],
                    choices: Sequence[str] = ("PASS", "FAIL")) -> list[ChatResult]:
    """The judge's replies: the first, then at most MAX_REASKS re-asks while a reply holds no verdict (each
    an ordinary gateway call: traced, priced; a re-ask the endpoint fails ends the asking)."""
    first, request = _ask(gateway, request)
    answers = [first]
    while (reading := _needs_reask(answers, labels)) is not None:
        request = reask(request, answers[-1], reading, choices)
        with tracer.span("judge.reask", kind="eval", inputs={"problem": reading.problem},
                         **{"flywheel.judge.problem": reading.problem or ""}):
            try:
                reply, request = _ask(gateway, request)
            except GatewayError:
                break
            answers.append(reply)
    return answers


async def ask_for_verdict_async(gateway: Any, request: ChatRequest, labels: dict[str, str],
                                choices: Sequence[str] = ("PASS", "FAIL")) -> list[ChatResult]:
    """`ask_for_verdict` on the event loop."""
    first, request = await _ask_async(gateway, request)
    answers = [first]
    while (reading := _needs_reask(answers, labels)) is not None:
        request = reask(request, answers[-1], reading, choices)
        with tracer.span("judge.reask", kind="eval", inputs={"problem": reading.problem},
                         **{"flywheel.judge.problem": reading.problem or ""}):
            try:
                reply, request = await _ask_async(gateway, request)
            except GatewayError:
                break
            answers.append(reply)
    return answers


# ---------------------------------------------------------------- model resolution


def judge_alias(ctx: CheckContext | None, own: str | None) -> str:
    if own:
        return own
    default = service(ctx, "judge_model") if ctx is not None else None
    return default or "default"


def pinned_model(gateway: Any, alias: str) -> str:
    """`model@version` the alias resolves to in the gateway's configuration (the alias when unknown)."""
    models = getattr(gateway, "models", None)
    if isinstance(models, dict) and alias in models:
        return models[alias].pinned
    return alias


# ---------------------------------------------------------------- the checks


class _LLMCheck(Check):
    needs_llm = True
    criterion = ""
    model: str | None = None

    def _criterion(self, ctx: CheckContext) -> str:
        return self.criterion

    def definition(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "criterion": self.criterion,
            "model": self.model,
            "system": JUDGE_SYSTEM,
            "template": JUDGE_USER,
            "schema": verdict_schema(["PASS", "FAIL"]),
        }

    def bindings(self, ctx: CheckContext | None) -> dict[str, Any]:
        alias = judge_alias(ctx, self.model)
        gateway = service(ctx, "gateway") if ctx is not None else None
        return {"judge_model": pinned_model(gateway, alias) if gateway is not None else alias}

    def request(self, output: str, ctx: CheckContext) -> ChatRequest | CheckResult:
        criterion = self._criterion(ctx)
        if not criterion:
            return CheckResult(
                passed=False,
                score=0.0,
                reason="nothing to judge against",
                error=f"{self.name}: this case has no reference answer",
            )
        user = JUDGE_USER.format(criterion=criterion, input=ctx.input or "(not given)", output=output)
        request = ChatRequest(
            messages=[Message(role="system", content=JUDGE_SYSTEM), Message(role="user", content=user)],
            model=judge_alias(ctx, self.model),
            temperature=0.0,
            metadata={"purpose": "judge", "check": self.name},
        )
        return with_structured_output(service(ctx, "gateway"), request, ["PASS", "FAIL"])

    def verdict(self, result: ChatResult, earlier: Sequence[ChatResult] = ()) -> CheckResult:
        """The check's result from the judge's reply `result`; `earlier` are the replies before a re-ask, whose
        cost and latency count too."""
        calls = [*earlier, result]
        details: dict[str, Any] = {
            "judge_model": result.model,
            "judge_cost_usd": sum(r.cost_usd for r in calls),
            "judge_latency_ms": sum(r.latency_ms for r in calls),
            "judge_calls": len(calls),
        }
        reading = read_verdict(result.text, _BINARY, finish_reason=result.finish_reason)
        if reading.verdict is None:
            details["raw"] = calls[0].text[:_MAX_REASON]  # the judge's own answer; the re-asks' after it
            if earlier:
                details["raw_reasks"] = [r.text[:_MAX_REASON] for r in calls[1:]]
            details["judge_problem"] = reading.problem
            asked = f" (also after {len(earlier)} re-ask)" if earlier else ""
            return CheckResult(
                passed=False,
                score=0.0,
                reason="the judge gave no PASS/FAIL verdict",
                error=f"malformed judge output: no verdict found: {reading.why()}{asked}",
                details=details,
            )
        details["verdict"] = reading.verdict
        return CheckResult(
            passed=reading.verdict == "pass",
            score=float(reading.verdict == "pass"),
            reason=reading.reasoning[:_MAX_REASON] or f"judge says {reading.verdict}",
            details=details,
        )

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        req = self.request(output, ctx)
        if isinstance(req, CheckResult):
            return req
        try:
            answers = ask_for_verdict(_gateway(ctx), req, _BINARY)
        except GatewayError as exc:  # the judge's endpoint failing is this result's error, not the run's
            return _unreachable(exc)
        return self.verdict(answers[-1], answers[:-1])

    async def aevaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        req = self.request(output, ctx)
        if isinstance(req, CheckResult):
            return req
        try:
            answers = await ask_for_verdict_async(_gateway(ctx), req, _BINARY)
        except GatewayError as exc:
            return _unreachable(exc)
        return self.verdict(answers[-1], answers[:-1])


def _unreachable(exc: GatewayError) -> CheckResult:
    return CheckResult(
        passed=False,
        score=0.0,
        reason="the judge model could not be reached",
        error=f"judge call failed: {exc.message}",
    )


def _gateway(ctx: CheckContext) -> Any:
    gateway = service(ctx, "gateway")
    if gateway is None:
        raise RuntimeError("LLM checks need a gateway: pass CheckContext(services=Services(gateway=…))")
    return gateway


def _model_of(arg: dict[str, Any], name: str) -> str | None:
    model = arg.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise ValueError(f"{name}: `model` must be a model alias name, got {model!r}")
    return model


@register
class Judge(_LLMCheck):
    """judge: "criterion" or {criterion: "…", model: ALIAS} — an LLM judge decides pass/fail."""

    name = "judge"

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        if isinstance(arg, dict):
            unknown = set(arg) - {"criterion", "model"}
            if unknown:
                raise ValueError(f"judge takes `criterion` and `model`, not {sorted(unknown)}")
            criterion, self.model = arg.get("criterion"), _model_of(arg, self.name)
        else:
            criterion = arg
        if not isinstance(criterion, str) or not criterion.strip():
            raise ValueError('judge needs a written criterion, e.g. judge: "The answer cites a source."')
        self.criterion = criterion.strip()


@register
class AgreesWithReference(_LLMCheck):
    """agrees-with-reference or {model: ALIAS} — an LLM judge compares the output with `reference`."""

    name = "agrees-with-reference"
    criterion = REFERENCE_CRITERION

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        if isinstance(arg, dict):
            unknown = set(arg) - {"model", "reference"}
            if unknown:
                raise ValueError(
                    f"agrees-with-reference takes `model` and `reference`, not {sorted(unknown)}"
                )
            self.model = _model_of(arg, self.name)
            self.reference = arg.get("reference")
        elif arg is None or arg is True:
            self.reference = None
        else:
            raise ValueError("agrees-with-reference takes no value, or {model: ALIAS, reference: TEXT}")

    def _criterion(self, ctx: CheckContext) -> str:
        reference = self.reference or ctx.reference
        return REFERENCE_CRITERION.format(reference=reference) if reference else ""

"""LLM checks through the gateway: `judge` (pass/fail against a written criterion), `agrees-with-reference`.

    - judge: "The answer tells the user where the version is configured."
    - judge: {criterion: "Polite and concise.", model: strong}
    - agrees-with-reference                       # compares with the case's `reference`
    - agrees-with-reference: {model: strong}

Binary verdicts only (no 1–10 scales: they drift and nobody can say what a 7 means), and the judge writes its
reasoning BEFORE the verdict. Where the alias's endpoint takes `response_format` (openai_compat unless the
alias says `json_schema: false`), the judge is asked for `{"reasoning": …, "verdict": "PASS"|"FAIL"}` as
structured output; an endpoint that rejects it (HTTP 400/422) is asked again in plain text. Text is parsed
leniently (`Verdict: PASS`, `**verdict**: yes`, `{"verdict": "fail"}`, a bare `PASS`) and the FINAL verdict
counts, never JSON quoted from the output under review; output without any verdict is recorded as an error
on the result, never raised.

The judge model is the check's `model`, else `ctx.services.judge_model`, else the `default` alias; the
result's `spec` covers the judge prompt and the pinned model that alias resolves to.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flywheel.checks.base import Check, CheckContext, register, service
from flywheel.errors import GatewayError
from flywheel.types import ChatRequest, ChatResult, CheckResult, Message

JUDGE_SYSTEM = """You are a careful, strict evaluator of an AI assistant's output.
You decide whether the OUTPUT meets the CRITERION. The decision is binary: it meets it or it does not.
First reason step by step about the evidence in the output, quoting it where it helps.
Only after the reasoning, end with one final line that is exactly `Verdict: PASS` or `Verdict: FAIL`."""

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

PASS_WORDS = ("pass", "passed", "yes", "true", "meets", "correct")
FAIL_WORDS = ("fail", "failed", "no", "false", "incorrect")
_BINARY = {**{w: "pass" for w in PASS_WORDS}, **{w: "fail" for w in FAIL_WORDS}}
_MAX_REASON = 2000
_VERDICT_KEYS = ("verdict", "winner", "decision")


# ---------------------------------------------------------------- lenient verdict parsing (shared with evals)


def parse_verdict(text: str, labels: dict[str, str]) -> str | None:
    """The FINAL verdict in a judge's output, as one of `labels`' values, or None when there is none.

    `labels` maps lower-case words to verdicts, e.g. {"pass": "pass", "yes": "pass", "fail": "fail"}.
    Words match in any case; one-letter labels (A, B) only in upper case, so the article "a" is no verdict.
    The whole output being one JSON object with `verdict` (structured output) decides. Otherwise the LAST
    explicit verdict wins, wherever it is: `verdict: X` (any markup), `[[X]]`, or a JSON object with a
    `verdict` / `winner` / `decision` key — JSON the judge quotes from the output under review
    (`The output is {"answer": "yes"} … Verdict: FAIL`) is no verdict. Failing those: the whole output being
    one label, then the last line holding exactly one label.
    """
    if not text or not text.strip():
        return None
    whole = _json_verdict(text.strip(), labels)
    if whole is not None:
        return whole
    alts = [
        f"(?-i:{re.escape(w.upper())})" if len(w) == 1 else re.escape(w)
        for w in sorted(labels, key=len, reverse=True)
    ]
    label = rf"(?<![\w])({'|'.join(alts)})(?![\w])"
    found: list[tuple[int, str]] = []
    for m in re.finditer(r"\{[^{}]*\}", text):
        verdict = _json_verdict(m.group(0), labels)
        if verdict is not None:
            found.append((m.end(), verdict))
    marker = rf"(?i:verdict|winner|decision)[^\w\n]{{0,12}}?{label}"
    for rx in (marker, rf"\[\[\s*{label}\s*\]\]"):
        found.extend((m.end(), labels[m.group(1).lower()]) for m in re.finditer(rx, text, re.IGNORECASE))
    if found:
        return max(found)[1]
    bare = re.sub(r"[\s*_`\"'.!:\[\]()]+", " ", text).strip().lower()
    if bare in labels:
        return labels[bare]
    for line in reversed([ln for ln in text.strip().splitlines() if ln.strip()][-3:]):
        hits = {labels[m.group(1).lower()] for m in re.finditer(label, line, re.IGNORECASE)}
        if len(hits) == 1:
            return hits.pop()
    return None


def _json_verdict(text: str, labels: dict[str, str]) -> str | None:
    if not text.startswith("{"):
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    for key in _VERDICT_KEYS:
        value = str(obj.get(key, "")).strip().strip("[]*").lower()
        if value in labels:
            return labels[value]
    return None


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
    try:
        return gateway.chat(request)
    except GatewayError as exc:
        if request.response_format is None or not _rejected_format(exc):
            raise
    return gateway.chat(request.model_copy(update={"response_format": None}))


async def ask_async(gateway: Any, request: ChatRequest) -> ChatResult:
    """`ask` on the event loop (the gateway's `achat`, else its `chat` on a thread)."""
    achat = getattr(gateway, "achat", None)
    if achat is None:
        import asyncio

        return await asyncio.to_thread(ask, gateway, request)
    try:
        return await achat(request)
    except GatewayError as exc:
        if request.response_format is None or not _rejected_format(exc):
            raise
    return await achat(request.model_copy(update={"response_format": None}))


def reasoning_of(text: str) -> str:
    """The judge's reasoning: its output without the final verdict line (or the structured `reasoning`)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("reasoning"), str):
            return obj["reasoning"].strip()[:_MAX_REASON]
    lines = stripped.splitlines()
    if lines and re.search(r"verdict|\[\[", lines[-1], re.IGNORECASE):
        # keep reasoning written on the verdict line itself ("… so it passes. Verdict: PASS")
        before = re.split(r"verdict|\[\[", lines[-1], maxsplit=1, flags=re.IGNORECASE)[0].strip()
        lines = [*lines[:-1], before] if before else lines[:-1]
    reason = "\n".join(lines).strip()
    reason = re.sub(r"^\W*reasoning\W*", "", reason, flags=re.IGNORECASE)
    return reason[:_MAX_REASON]


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

    def verdict(self, result: ChatResult) -> CheckResult:
        details = {
            "judge_model": result.model,
            "judge_cost_usd": result.cost_usd,
            "judge_latency_ms": result.latency_ms,
        }
        verdict = parse_verdict(result.text, _BINARY)
        if verdict is None:
            details["raw"] = result.text[:_MAX_REASON]
            return CheckResult(
                passed=False,
                score=0.0,
                reason="the judge gave no PASS/FAIL verdict",
                error="malformed judge output: no verdict found",
                details=details,
            )
        details["verdict"] = verdict
        return CheckResult(
            passed=verdict == "pass",
            score=float(verdict == "pass"),
            reason=reasoning_of(result.text) or f"judge says {verdict}",
            details=details,
        )

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        req = self.request(output, ctx)
        if isinstance(req, CheckResult):
            return req
        try:
            return self.verdict(ask(_gateway(ctx), req))
        except GatewayError as exc:  # the judge's endpoint failing is this result's error, not the run's
            return _unreachable(exc)

    async def aevaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        req = self.request(output, ctx)
        if isinstance(req, CheckResult):
            return req
        try:
            return self.verdict(await ask_async(_gateway(ctx), req))
        except GatewayError as exc:
            return _unreachable(exc)


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

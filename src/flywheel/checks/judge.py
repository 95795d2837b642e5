"""LLM checks through the gateway: `judge` (pass/fail against a written criterion), `agrees-with-reference`.

    - judge: "The answer tells the user where the version is configured."
    - judge: {criterion: "Polite and concise.", model: strong}
    - agrees-with-reference                       # compares with the case's `reference`
    - agrees-with-reference: {model: strong}

Binary verdicts only (no 1–10 scales: they drift and nobody can say what a 7 means), and the judge writes its
reasoning BEFORE the verdict. Parsing is lenient (`Verdict: PASS`, `**verdict**: yes`, `{"verdict": "fail"}`,
a bare `PASS`); output without any verdict is recorded as an error on the result, never raised.

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


# ---------------------------------------------------------------- lenient verdict parsing (shared with evals)


def parse_verdict(text: str, labels: dict[str, str]) -> str | None:
    """The verdict in a judge's output, as one of `labels`' values, or None when there is none.

    `labels` maps lower-case words to verdicts, e.g. {"pass": "pass", "yes": "pass", "fail": "fail"}.
    Words match in any case; one-letter labels (A, B) only in upper case, so the article "a" is no verdict.
    Tried in order: a JSON object with `verdict`; the last `verdict: X` (any markup); the last `[[X]]`;
    the whole output being one label; the last line holding exactly one label.
    """
    if not text or not text.strip():
        return None
    alts = [
        f"(?-i:{re.escape(w.upper())})" if len(w) == 1 else re.escape(w)
        for w in sorted(labels, key=len, reverse=True)
    ]
    label = rf"(?<![\w])({'|'.join(alts)})(?![\w])"
    for m in reversed(list(re.finditer(r"\{[^{}]*\}", text))):
        try:
            obj = json.loads(m.group(0))
        except ValueError:
            continue
        if isinstance(obj, dict):
            for key in ("verdict", "winner", "answer", "result", "decision"):
                value = str(obj.get(key, "")).strip().strip("[]*").lower()
                if value in labels:
                    return labels[value]
    hits = list(re.finditer(rf"(?i:verdict|winner|decision)[^\w\n]{{0,12}}?{label}", text, re.IGNORECASE))
    if hits:
        return labels[hits[-1].group(1).lower()]
    brackets = list(re.finditer(rf"\[\[\s*{label}\s*\]\]", text, re.IGNORECASE))
    if brackets:
        return labels[brackets[-1].group(1).lower()]
    bare = re.sub(r"[\s*_`\"'.!:\[\]()]+", " ", text).strip().lower()
    if bare in labels:
        return labels[bare]
    for line in reversed([ln for ln in text.strip().splitlines() if ln.strip()][-3:]):
        found = {labels[m.group(1).lower()] for m in re.finditer(label, line, re.IGNORECASE)}
        if len(found) == 1:
            return found.pop()
    return None


def reasoning_of(text: str) -> str:
    """The judge's reasoning: its output without the final verdict line."""
    lines = text.strip().splitlines()
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


async def ask_async(gateway: Any, request: ChatRequest) -> ChatResult:
    achat = getattr(gateway, "achat", None)
    if achat is not None:
        return await achat(request)
    import asyncio

    return await asyncio.to_thread(gateway.chat, request)


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
        return ChatRequest(
            messages=[Message(role="system", content=JUDGE_SYSTEM), Message(role="user", content=user)],
            model=judge_alias(ctx, self.model),
            temperature=0.0,
            metadata={"purpose": "judge", "check": self.name},
        )

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
            return self.verdict(_gateway(ctx).chat(req))
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

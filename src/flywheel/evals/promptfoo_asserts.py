"""promptfoo `assert:` entries as flywheel checks, and promptfoo's test scoring (weights, `threshold`).

Each supported assertion type maps onto an existing check (`contains` → contains, `llm-rubric` → judge,
`factuality` → agrees-with-reference, `similar` → similar …); `not-` works as in promptfoo. A test whose
assertions all weigh 1 and that has no `threshold` is a plain list of checks (every one must pass); otherwise
its checks are wrapped in one `promptfoo-test` check that passes like promptfoo: the weighted mean score
reaches the test's threshold, or, without one, every assertion passes (a weight of 0 only leaves the score;
`metricOnly: true` leaves the score and the verdict, the assertion is reported only).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flywheel.checks.base import Check, CheckContext, from_entry
from flywheel.errors import UserError
from flywheel.types import CheckResult

ASSERT_KEYS = frozenset(
    {"type", "value", "threshold", "weight", "provider", "metric", "description", "assert", "metricOnly"}
)

# promptfoo type → flywheel check taking the value as is
SAME = (
    "equals",
    "contains",
    "icontains",
    "contains-any",
    "contains-all",
    "icontains-any",
    "icontains-all",
    "starts-with",
    "regex",
    "is-json",
    "contains-json",
)
# model-graded types → the judge criterion (None: the assertion's value is the criterion)
JUDGED: dict[str, str | None] = {
    "llm-rubric": None,
    "model-graded-closedqa": None,
    "answer-relevance": "The output is relevant to the input: it answers what was asked, without drifting to "
    "other topics.",
    "context-faithfulness": "Every claim the output makes is supported by the context below; it adds nothing "
    "the context does not say.\n\nContext:\n{context}",
    # these two grade the retrieved context (the output is not what they judge)
    "context-recall": "Whatever the output says, the context below contains every fact of this expected "
    "answer: {value}\n\nContext:\n{context}",
    "context-relevance": "Whatever the output says, the context below holds the information needed to "
    "answer the question: {query}\n\nContext:\n{context}",
}
SUPPORTED = sorted(
    {
        *SAME,
        *JUDGED,
        "factuality",
        "similar",
        "levenshtein",
        "rouge-n",
        "bleu",
        "cost",
        "latency",
        "is-xml",
        "assert-set",
    }
)
UNSUPPORTED_WHY = {
    "javascript": "flywheel runs no JavaScript",
    "python": "write a Python check plugin (the `flywheel.checks` entry point) or a flywheel suite instead",
    "webhook": "call the service from a Python target instead",
    "perplexity": "flywheel's gateway does not return token log-probabilities for every provider",
    "perplexity-score": "flywheel's gateway does not return token log-probabilities for every provider",
    "select-best": "it compares the outputs of several prompts; use `flywheel compare RUN_A RUN_B` instead",
    "max-score": "it compares the outputs of several prompts; use `flywheel compare RUN_A RUN_B` instead",
}


@dataclass
class Located:
    """One assertion as read: its check, weight and where it was written."""

    check: Check
    weight: float
    where: str
    metric_only: bool = False  # reported, but neither scored nor deciding (promptfoo's `metricOnly`)


def to_check(
    raw: Any,
    where: str,
    render: Callable[[Any], Any],
    judge: Callable[[Any, str], str | None],
    warnings: list[str],
    vars: dict[str, Any],
) -> Located:
    """A promptfoo assertion (`{type, value, threshold, weight, provider}`) as a flywheel check.

    `render` fills the test's vars into the value; `judge` maps a provider id to a gateway alias."""
    if not isinstance(raw, dict) or "type" not in raw:
        raise UserError(
            f"an assertion must be a mapping with `type:`, got {raw!r}",
            where=where,
            hint="write `- type: contains` with `value: …`",
        )
    if "transform" in raw:
        raise UserError(
            "assertion `transform` is not supported: it is JavaScript, and flywheel runs no JavaScript",
            where=where,
            hint="assert on the text itself: `is-json` / `contains-json` with a JSON Schema, `regex`, "
            "`icontains` …",
        )
    unknown = set(raw) - ASSERT_KEYS
    if unknown:
        raise UserError(
            f"unknown assertion key(s) {', '.join(sorted(map(str, unknown)))}",
            where=where,
            hint=f"valid keys: {', '.join(sorted(ASSERT_KEYS))}",
        )
    kind = str(raw["type"])
    negate = kind.startswith("not-")
    base = kind[4:] if negate else kind
    value = render(raw.get("value"))
    threshold = raw.get("threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int | float)):
        raise UserError(f"`threshold` must be a number, got {threshold!r}", where=where)
    weight = raw.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
        raise UserError(f"`weight` must be a number ≥ 0, got {weight!r}", where=where)
    metric_only = raw.get("metricOnly", False)
    if not isinstance(metric_only, bool):
        raise UserError(f"`metricOnly` must be true or false, got {metric_only!r}", where=where)
    model = judge(raw["provider"], where) if raw.get("provider") is not None else None
    if base == "assert-set":
        return Located(
            _assert_set(raw, negate, threshold, where, render, judge, warnings, vars),
            float(weight),
            where,
            metric_only,
        )
    entry = _entry(base, value, threshold, model, where, warnings, vars)
    return Located(
        from_entry({("not-" if negate else "") + next(iter(entry)): next(iter(entry.values()))}, where=where),
        float(weight),
        where,
        metric_only,
    )


def _entry(
    base: str,
    value: Any,
    threshold: Any,
    model: str | None,
    where: str,
    warnings: list[str],
    vars: dict[str, Any],
) -> dict[str, Any]:
    def need_value() -> Any:
        if value is None:
            raise UserError(f"assertion `{base}` needs a `value:`", where=where)
        return value

    if base in SAME:
        if threshold is not None:
            warnings.append(f"{where}: `threshold` on `{base}` has no effect (it passes or fails)")
        if base == "regex" and isinstance(value, str):
            return {"regex": value}
        if base in ("is-json", "contains-json"):
            return {base: value}  # None, or a JSON Schema
        if base.endswith(("-any", "-all")) and isinstance(value, str):  # promptfoo splits "a, b" on commas
            return {base: [v.strip() for v in value.split(",") if v.strip()]}
        return {base: need_value()}
    if base in JUDGED:
        criterion = JUDGED[base]
        if criterion is None:
            criterion = str(need_value())
        else:
            needed = [n for n in ("context", "query") if "{" + n + "}" in criterion and n not in vars]
            if needed:
                raise UserError(
                    f"`{base}` needs a `{needed[0]}` var in the test",
                    where=where,
                    hint=f"add `{needed[0]}: …` to the test's vars",
                )
            if "{value}" in criterion:
                need_value()
            criterion = criterion.format(
                context=vars.get("context", ""), query=vars.get("query", ""), value=value
            )
        if threshold is not None:
            warnings.append(f"{where}: flywheel judges say pass or fail; `threshold` on `{base}` is ignored")
        return {"judge": {"criterion": criterion, **({"model": model} if model else {})}}
    if base == "factuality":
        return {
            "agrees-with-reference": {"reference": str(need_value()), **({"model": model} if model else {})}
        }
    if base == "similar":
        return {
            "similar": {"reference": str(need_value()), "threshold": 0.75 if threshold is None else threshold}
        }
    if base == "levenshtein":
        return {"levenshtein": {"value": need_value(), "max": 5 if threshold is None else threshold}}
    if base in ("rouge-n", "bleu"):
        default = 0.75 if base == "rouge-n" else 0.5
        return {base: {"value": need_value(), "threshold": default if threshold is None else threshold}}
    if base in ("cost", "latency"):
        if threshold is None:
            raise UserError(
                f"assertion `{base}` needs `threshold:` ({'USD' if base == 'cost' else 'ms'})", where=where
            )
        return {base: threshold}
    if base == "is-xml":
        return {"is-xml": _xml_paths(value)}
    why = UNSUPPORTED_WHY.get(base)
    raise UserError(
        f"assertion type `{base}` is not supported" + (f": {why}" if why else ""),
        where=where,
        hint=f"supported types (each also as not-TYPE): {', '.join(SUPPORTED)}",
    )


def _assert_set(
    raw: dict[str, Any],
    negate: bool,
    threshold: Any,
    where: str,
    render: Callable[[Any], Any],
    judge: Callable[[Any, str], str | None],
    warnings: list[str],
    vars: dict[str, Any],
) -> Check:
    """promptfoo's `assert-set`: its assertions scored as one (weighted mean; passes at its `threshold`, or
    without one when every assertion passes)."""
    inner = raw.get("assert")
    if negate or not isinstance(inner, list) or not inner:
        raise UserError(
            "`assert-set` needs `assert:`, a list of assertions (and cannot be negated)",
            where=where,
            hint="- type: assert-set\n  threshold: 0.5\n  assert: [{type: contains, value: a}, …]",
        )
    parts = [to_check(a, where, render, judge, warnings, vars) for a in inner]
    return PromptfooTest(parts, threshold, name="assert-set")


def _xml_paths(value: Any) -> list[str] | None:
    """promptfoo's required elements (`"a.b, c"` or {requiredElements: [...]}) as is-xml's element paths."""
    if isinstance(value, dict):
        value = value.get("requiredElements")
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(i).strip().replace(".", "/") for i in items if str(i).strip()]


class PromptfooTest(Check):
    """A promptfoo test's assertions scored together: weighted mean score, pass at the test's `threshold`
    (or, without one, when every assertion passes); `metricOnly` assertions are reported only."""

    name = "promptfoo-test"

    def __init__(self, parts: list[Located], threshold: float | None, name: str = "promptfoo-test"):
        super().__init__(
            {"threshold": threshold, "weights": [0 if p.metric_only else p.weight for p in parts]}
        )
        self.name = name  # type: ignore[misc]
        self.parts, self.threshold = parts, threshold
        self.needs_llm = any(p.check.needs_llm for p in parts)  # type: ignore[misc]
        self.blocking = any(p.check.blocking for p in parts)  # type: ignore[misc]

    def definition(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "threshold": self.threshold,
            "parts": [[0 if p.metric_only else p.weight, p.check.definition()] for p in self.parts],
        }

    def bindings(self, ctx: CheckContext | None) -> dict[str, Any]:
        bound = [p.check.bindings(ctx) for p in self.parts]
        return {"parts": bound} if any(bound) else {}

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        return self._score([p.check.run(output, ctx) for p in self.parts])

    async def aevaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        return self._score(list(await asyncio.gather(*(p.check.arun(output, ctx) for p in self.parts))))

    def _score(self, results: list[CheckResult]) -> CheckResult:
        counted = [(p, r) for p, r in zip(self.parts, results, strict=True) if not p.metric_only]
        total = sum(p.weight for p, _ in counted)
        # like promptfoo: no weight at all scores 0 (and passes unless a threshold above 0 says otherwise)
        score = sum(p.weight * r.score for p, r in counted) / total if total else 0.0
        if self.threshold is not None:
            passed = score >= self.threshold
            rule = f"weighted score {score:.3f} {'≥' if passed else '<'} threshold {self.threshold:g}"
        else:
            failed = [r.name for _, r in counted if not r.passed]  # weight 0 still decides, as in promptfoo
            passed = not failed
            rule = "every assertion passed" if passed else f"failed: {', '.join(failed)}"
        errors = [r.error for r in results if r.error]
        return CheckResult(
            passed=passed,
            score=score,
            reason=rule,
            error=errors[0] if errors and not passed else None,
            details={
                "assertions": [
                    {
                        "name": r.name,
                        "weight": p.weight,
                        "metric_only": p.metric_only,
                        "passed": r.passed,
                        "score": r.score,
                        "reason": r.reason,
                        "error": r.error,
                    }
                    for p, r in zip(self.parts, results, strict=True)
                ]
            },
        )


def checks_of_test(parts: list[Located], threshold: float | None) -> list[Check]:
    """The checks a test runs: plain when promptfoo's scoring equals flywheel's (every check must pass)."""
    if threshold is None and all(p.weight == 1 and not p.metric_only for p in parts):
        return [p.check for p in parts]
    return [PromptfooTest(parts, threshold)]

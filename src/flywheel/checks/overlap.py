"""Overlap with an expected text: `levenshtein` (edit distance), `rouge-n` (n-gram recall), `bleu` (n-gram
precision with a brevity penalty).

    - levenshtein: "Paris"                          # at most 5 character edits (the default)
    - levenshtein: {value: "Paris", max: 2}
    - rouge-n: {value: "The capital is Paris.", threshold: 0.75, n: 1}
    - bleu: {value: "The capital is Paris.", threshold: 0.5}

The expected text is the check's `value`, else the case's `reference`. Words come from flywheel.text.tokenize
(lower-cased, Chinese segmented into words, stopwords kept), so the scores work for Chinese as for English.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from flywheel.checks.base import Check, CheckContext, register
from flywheel.types import CheckResult


def levenshtein(a: str, b: str) -> int:
    """Character edits (insert, delete, substitute) turning `a` into `b`."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _words(text: str) -> list[str]:
    from flywheel.text import tokenize

    return tokenize(text, keep_stopwords=True)


def _ngrams(words: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def rouge_n(output: str, reference: str, n: int = 1) -> float:
    """ROUGE-N recall: the share of the reference's n-grams the output has (counts clipped)."""
    ref = _ngrams(_words(reference), n)
    if not ref:
        return 0.0
    out = _ngrams(_words(output), n)
    return sum(min(c, out[g]) for g, c in ref.items()) / sum(ref.values())


def bleu(output: str, reference: str, max_n: int = 4) -> float:
    """Sentence BLEU: geometric mean of clipped 1..4-gram precisions (add-one smoothed above unigrams, so a
    short answer is not zero for lacking a 4-gram) times the brevity penalty."""
    out, ref = _words(output), _words(reference)
    if not out or not ref:
        return 0.0
    logs = []
    for n in range(1, max_n + 1):
        grams, ref_grams = _ngrams(out, n), _ngrams(ref, n)
        matched, total = sum(min(c, ref_grams[g]) for g, c in grams.items()), sum(grams.values())
        if n == 1 and matched == 0:
            return 0.0
        logs.append(math.log((matched + (n > 1)) / (total + (n > 1))) if total or n > 1 else 0.0)
    penalty = 1.0 if len(out) > len(ref) else math.exp(1 - len(ref) / len(out))
    return penalty * math.exp(sum(logs) / max_n)


def _number(value: Any, what: str, low: float, high: float | None = None) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"between {low:g} and {high:g}" if high is not None else f"≥ {low:g}"
        raise ValueError(f"{what} must be a number {bound}, got {value!r}")
    return float(value)


class _Overlap(Check):
    scope = "answer"  # the whole answer against the expected text
    keys: frozenset[str] = frozenset({"value"})
    default_threshold = 0.0

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        options = dict(arg) if isinstance(arg, dict) else {"value": arg}
        unknown = set(options) - self.keys
        if unknown:
            raise ValueError(f"{self.name} takes {', '.join(sorted(self.keys))}, not {sorted(unknown)}")
        value = options.get("value")
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int | float)):
            raise ValueError(f"{self.name} needs the expected text, got {value!r}")
        self.expected = None if value is None else str(value)
        self.options = options

    def _expected(self, ctx: CheckContext) -> str | None:
        return self.expected if self.expected is not None else ctx.reference

    def _missing(self) -> CheckResult:
        return CheckResult(
            passed=False,
            score=0.0,
            reason="nothing to compare with",
            error=f"{self.name}: give the expected text as the value, or a case `reference`",
        )


@register
class Levenshtein(_Overlap):
    """levenshtein: TEXT or {value: TEXT, max: N} — at most N character edits (default 5) from the text."""

    name = "levenshtein"
    keys = frozenset({"value", "max"})

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        self.max = int(_number(self.options.get("max", 5), "levenshtein max", 0))

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        expected = self._expected(ctx)
        if expected is None:
            return self._missing()
        distance = levenshtein(output.strip(), expected.strip())
        ok = distance <= self.max
        return CheckResult(
            passed=ok,
            score=float(ok),
            details={"distance": distance},
            reason=f"edit distance {distance} {'≤' if ok else '>'} {self.max}",
        )


@register
class RougeN(_Overlap):
    """rouge-n: TEXT or {value: TEXT, threshold: 0.75, n: 1} — ROUGE-N recall of the text's n-grams ≥ it."""

    name = "rouge-n"
    keys = frozenset({"value", "threshold", "n"})

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        self.threshold = _number(self.options.get("threshold", 0.75), "rouge-n threshold", 0, 1)
        self.n = int(_number(self.options.get("n", 1), "rouge-n n", 1, 4))

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        expected = self._expected(ctx)
        if expected is None:
            return self._missing()
        score = rouge_n(output, expected, self.n)
        ok = score >= self.threshold
        return CheckResult(
            passed=ok,
            score=score,
            details={"rouge": round(score, 4)},
            reason=f"ROUGE-{self.n} {score:.3f} {'≥' if ok else '<'} {self.threshold:g}",
        )


@register
class Bleu(_Overlap):
    """bleu: TEXT or {value: TEXT, threshold: 0.5} — sentence BLEU (1-4 grams) against the text ≥ it."""

    name = "bleu"
    keys = frozenset({"value", "threshold"})

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        self.threshold = _number(self.options.get("threshold", 0.5), "bleu threshold", 0, 1)

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        expected = self._expected(ctx)
        if expected is None:
            return self._missing()
        score = bleu(output, expected)
        ok = score >= self.threshold
        return CheckResult(
            passed=ok,
            score=score,
            details={"bleu": round(score, 4)},
            reason=f"BLEU {score:.3f} {'≥' if ok else '<'} {self.threshold:g}",
        )

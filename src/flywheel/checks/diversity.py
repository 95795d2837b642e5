"""Output diversity: the `diversity` check and the prompt-side helper that shuffles list variables.

    checks: [{diversity: {min_distinct_2: 0.6, min_spread: 0.15}}]

In an eval run (`flywheel eval --repeat 5`) the check looks at every repeated output of a case together; on
one output (a guard, a run without repeats) it measures that output alone, which still catches an answer
that repeats itself.

- distinct-n: unique n-grams / all n-grams over the outputs (n = 1, 2), words from flywheel.text.tokenize
  (Chinese segmented into words, stopwords kept), so 1.0 means no n-gram ever repeats.
- spread: the mean pairwise cosine distance (1 − cos) of the outputs' embeddings, with the project's embedder
  (`ctx.services.embedder`); measured only when asked (`min_spread`, or `spread: true`), as an embedder may
  be a local model to load.

`shuffle_lists(values, seed)` shuffles every list-valued prompt variable (seeded, so a run is reproducible and
each repeat can get its own order): the order of examples or options in a prompt is one source of sameness.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Any

from flywheel.checks.base import Check, CheckContext, register, service
from flywheel.text.tokenize import tokenize
from flywheel.types import CheckResult

_LIMITS = ("min_distinct_1", "min_distinct_2", "min_spread")


def ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    words = tokenize(text, keep_stopwords=True)
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique n-grams / all n-grams over `texts` (1.0 when there is none at all: nothing repeats)."""
    grams = [g for t in texts for g in ngrams(t, n)]
    return len(set(grams)) / len(grams) if grams else 1.0


def embedding_spread(texts: Sequence[str], embedder: Any) -> float:
    """Mean pairwise cosine distance of the texts' embeddings (0.0 for fewer than two texts)."""
    if len(texts) < 2:
        return 0.0
    import numpy as np

    vectors = np.asarray(embedder.embed(list(texts)), dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms == 0, 1.0, norms)
    pairs = list(itertools.combinations(range(len(texts)), 2))
    return float(sum(1.0 - float(unit[i] @ unit[j]) for i, j in pairs) / len(pairs))


def shuffle_lists(values: dict[str, Any], seed: Any) -> dict[str, Any]:
    """`values` with every list shuffled (a copy; each variable's order depends on the seed and its name)."""
    out = dict(values)
    for name, value in values.items():
        if isinstance(value, list) and len(value) > 1:
            items = list(value)
            random.Random(f"{seed}:{name}").shuffle(items)
            out[name] = items
    return out


@register
class Diversity(Check):
    """diversity: {min_distinct_1: 0.5, min_distinct_2: 0.6, min_spread: 0.1, spread: true} — over a case's
    repeated outputs; with no limit given it only measures (and passes)."""

    name = "diversity"
    scope = "answer"
    over_repeats = True  # an eval runner gives it all the repeated outputs of a case at once

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        arg = {} if arg is None or arg is True else arg
        if not isinstance(arg, dict):
            raise TypeError(f"expected a mapping with {', '.join(_LIMITS)} or spread, got {arg!r}")
        unknown = sorted(set(arg) - {*_LIMITS, "spread"})
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}; valid: {', '.join((*_LIMITS, 'spread'))}")
        self.limits: dict[str, float] = {}
        for key in _LIMITS:
            value = arg.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"`{key}` must be a number between 0 and 1, got {value!r}")
            self.limits[key] = float(value)
        self.spread = bool(arg.get("spread", "min_spread" in self.limits))

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        return self.evaluate_many([output], ctx)

    def evaluate_many(self, outputs: Sequence[str], ctx: CheckContext) -> CheckResult:
        texts = [o for o in outputs if o]
        measured: dict[str, Any] = {"outputs": len(texts), "distinct_1": round(distinct_n(texts, 1), 4),
                                    "distinct_2": round(distinct_n(texts, 2), 4)}
        error = None
        if self.spread:
            embedder = service(ctx, "embedder")
            if embedder is None:
                error = "no embedder: set `retrieval.embedder` in flywheel.yaml to measure spread"
            else:
                measured["spread"] = round(embedding_spread(texts, embedder), 4)
        short = [f"{k.removeprefix('min_')} {measured.get(k.removeprefix('min_'))} < {v:g}"
                 for k, v in self.limits.items()
                 if measured.get(k.removeprefix("min_")) is not None and measured[k.removeprefix("min_")] < v]
        score = measured.get("spread", measured["distinct_2"])
        if error is not None and "min_spread" in self.limits:
            return CheckResult(passed=False, score=0.0, reason=error, error=error, details=measured)
        shown = ", ".join(f"{k} {measured[k]}" for k in ("distinct_1", "distinct_2", "spread") if k in measured)
        reason = f"too little diversity over {len(texts)} output(s): {'; '.join(short)}" if short else \
            f"{shown} over {len(texts)} output(s)"
        return CheckResult(passed=not short, score=float(score), reason=reason, details=measured)

    def run_many(self, outputs: Sequence[str], ctx: CheckContext | None = None) -> CheckResult:
        """`run` over several outputs (a case's repeats): a crash is a recorded failure, as in `run`."""
        ctx = ctx or CheckContext()
        try:
            result = self.evaluate_many(list(outputs), ctx)
        except Exception as exc:  # noqa: BLE001 - a crashing check is a recorded failure, not a crash
            result = CheckResult(passed=False, score=0.0, reason=f"check crashed: {exc}",
                                 error=f"{type(exc).__name__}: {exc}")
        return self._finish(result, ctx)

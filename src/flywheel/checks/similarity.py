"""`similar`: the output means roughly what the reference says — embedding cosine similarity ≥ a threshold.

    - similar: 0.8                                  # against the case's `reference`
    - similar: {threshold: 0.75, reference: "…"}    # against this text

The embedder comes from `ctx.services.embedder` (the project's retrieval embedder in eval runs); any
object with `embed(list[str]) -> vectors` works. Its name is part of the result's `spec`, since a score
from another embedding model is another number.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flywheel.checks.base import Check, CheckContext, register, service
from flywheel.types import CheckResult


def embedder_name(embedder: Any) -> str:
    for attr in ("name", "model_name", "model"):
        value = getattr(embedder, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(embedder).__name__


def cosine(a: Any, b: Any) -> float:
    va, vb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na, nb = np.linalg.norm(va), np.linalg.norm(vb)
    if na == 0 or nb == 0:
        return 0.0
    return float(np.dot(va, vb) / (na * nb))


def _embed(embedder: Any, texts: list[str]) -> list[Any]:
    fn = getattr(embedder, "embed", None) or getattr(embedder, "encode", None)
    if fn is None:
        raise TypeError(f"{type(embedder).__name__} has no embed(texts) method")
    return list(fn(texts))


@register
class Similar(Check):
    """similar: THRESHOLD or {threshold: 0.8, reference: TEXT} — embedding cosine to the reference ≥ it."""

    name = "similar"
    scope = "answer"  # the whole answer against the reference
    blocking = True  # a local embedding model computes on the CPU

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        if isinstance(arg, dict):
            unknown = set(arg) - {"threshold", "reference"}
            if unknown:
                raise ValueError(f"similar takes `threshold` and `reference`, not {sorted(unknown)}")
            threshold, self.reference = arg.get("threshold", 0.8), arg.get("reference")
        else:
            threshold, self.reference = (0.8 if arg is None else arg), None
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not -1 <= threshold <= 1:
            raise ValueError(f"similar needs a threshold between -1 and 1, got {threshold!r}")
        if self.reference is not None and not isinstance(self.reference, str):
            raise ValueError("similar: `reference` must be text")
        self.threshold = float(threshold)

    def bindings(self, ctx: CheckContext | None) -> dict[str, Any]:
        embedder = service(ctx, "embedder") if ctx is not None else None
        return {"embedder": embedder_name(embedder)} if embedder is not None else {}

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        reference = self.reference or ctx.reference
        if not reference:
            return CheckResult(
                passed=False,
                score=0.0,
                reason="nothing to compare with",
                error="similar: this case has no reference",
            )
        embedder = service(ctx, "embedder")
        if embedder is None:
            return CheckResult(
                passed=False,
                score=0.0,
                reason="no embedder available",
                error="similar needs an embedder: ctx.services.embedder",
            )
        out_vec, ref_vec = _embed(embedder, [output, reference])
        sim = cosine(out_vec, ref_vec)
        ok = sim >= self.threshold
        return CheckResult(
            passed=ok,
            score=max(0.0, min(1.0, sim)),
            reason=f"cosine {sim:.3f} {'≥' if ok else '<'} {self.threshold:g}",
            details={"cosine": round(sim, 4), "embedder": embedder_name(embedder)},
        )

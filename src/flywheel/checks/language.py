"""`language: zh` — the output is written in the given language (or one of a list).

The detector is `flywheel.text`'s, the same one that picks a reply's language and an embedder's coverage: the
dominant script decides between scripts, marker words between the Latin-script languages.
"""

from __future__ import annotations

from typing import Any

from flywheel.checks.base import Check, CheckContext, register
from flywheel.text import normalize_language as normalize
from flywheel.text.language import LANGUAGES, LATIN
from flywheel.text.language import detect as detect_text
from flywheel.types import CheckResult

__all__ = ["LANGUAGES", "LATIN", "Language", "detect", "normalize"]


def detect(text: str) -> tuple[list[str], float, dict[str, Any]]:
    """(candidate languages, confidence 0..1, evidence); several candidates when the script cannot tell."""
    found = detect_text(text)
    return list(found.candidates), found.confidence, dict(found.evidence)


@register
class Language(Check):
    """language: zh (or [zh, en]) — the output is written in that language."""

    name = "language"

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        codes = arg if isinstance(arg, list) else [arg]
        if not codes or not all(isinstance(c, str) and c.strip() for c in codes):
            raise ValueError(f"language needs a language code or a list of them, got {arg!r}")
        self.expected = [normalize(c) for c in codes]
        unknown = [c for c in self.expected if c not in LANGUAGES]
        if unknown:
            raise ValueError(f"unsupported language {unknown}; supported: {', '.join(LANGUAGES)}")

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        candidates, confidence, evidence = detect(output)
        if not candidates:
            return CheckResult(
                passed=False, score=0.0, reason="no letters to detect a language from", details=evidence
            )
        matched = [c for c in candidates if c in self.expected]
        detected = candidates[0] if len(candidates) == 1 else "latin-script"
        evidence["detected"] = detected
        if matched:
            return CheckResult(
                passed=True,
                score=round(max(confidence, 0.5), 3),
                reason=f"detected {detected}, expected {'/'.join(self.expected)}",
                details=evidence,
            )
        return CheckResult(
            passed=False,
            score=0.0,
            reason=f"detected {detected}, expected {'/'.join(self.expected)}",
            details=evidence,
        )

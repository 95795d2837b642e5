"""`language: zh` — the output is written in the given language (or one of a list).

The detector is `flywheel.text`'s, the same one that picks a reply's language and an embedder's coverage: the
dominant script decides between scripts, marker words between the Latin-script languages. What is not prose —
URLs, e-mail addresses, `inline code` and fenced code blocks — is left out first (`flywheel.text.language.prose`) (a Chinese answer pointing to
https://docs.example.com/guide/install is Chinese), unless nothing with letters is left.

The check judges the answer as a whole (`scope = "answer"`): a stream judges it on the answer so far, never on
one sentence alone, holds new text back while that fails (`holds`) and gives its verdict on the whole answer at
the end (flywheel.guards.streaming): a long English log or code block inside a Chinese answer passes as it
passes whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flywheel.checks.base import Check, CheckContext, register
from flywheel.errors import ConfigError
from flywheel.text import normalize_language as normalize
from flywheel.text.language import LANGUAGES, LATIN, prose
from flywheel.text.language import detect as detect_text
from flywheel.types import CheckResult

__all__ = ["LANGUAGES", "LATIN", "Language", "detect", "meant", "normalize", "prose"]

# Names users write for a language that the detector does not take: told back as a did-you-mean.
_MEANT = {"cn": "zh", "chs": "zh", "cht": "zh", "中文": "zh", "汉语": "zh", "漢語": "zh", "简体中文": "zh",
          "繁體中文": "zh", "繁体中文": "zh", "普通话": "zh", "英文": "en", "英语": "en", "jp": "ja", "日文": "ja",
          "日语": "ja", "kr": "ko", "韩文": "ko", "韩语": "ko", "gr": "el", "ua": "uk"}


def meant(code: str) -> str | None:
    """The supported code a user most likely meant by an unsupported one (`cn`, `中文` → `zh`), else None."""
    guess = _MEANT.get(code.strip().lower())
    return guess if guess in LANGUAGES else None


def detect(text: str) -> tuple[list[str], float, dict[str, Any]]:
    """(candidate languages, confidence 0..1, evidence); several candidates when the script cannot tell."""
    found = detect_text(text)
    return list(found.candidates), found.confidence, dict(found.evidence)


@register
class Language(Check):
    """language: zh (or [zh, en]) — the output is written in that language."""

    name = "language"
    scope = "answer"  # a short English line ("pip install flywheel.") in a Chinese answer is still Chinese
    holds = True  # on a stream, text is not shown while the answer so far is in another language

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        codes = arg if isinstance(arg, list) else [arg]
        if not codes or not all(isinstance(c, str) and c.strip() for c in codes):
            raise ValueError(f"language needs a language code or a list of them, got {arg!r}")
        self.expected = [normalize(c) for c in codes]
        unknown = [c for c in self.expected if c not in LANGUAGES]
        if unknown:
            fixes = [f"`{meant(c)}` for `{c}`" for c in unknown if meant(c)]
            hint = f" (write {', '.join(fixes)})" if fixes else ""
            raise ValueError(f"unsupported language {unknown}{hint}; supported: {', '.join(LANGUAGES)}")

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


def by_language(value: Mapping[str, str], where: str | None) -> dict[str, str]:
    """Texts per language as written in YAML (`message: {zh-CN: …, EN: …}`), keyed by the codes questions are
    detected as (`zh`, `en`): a key that is no such code (`中文`) would never be picked, so it is a config error
    rather than a silent English reply."""
    out: dict[str, str] = {}
    for key, text in value.items():
        code, guess = normalize(key), meant(key)
        if code not in LANGUAGES or code in out:
            raise ConfigError(f"guard `message` has two texts for language `{code}`" if code in out else
                              f"guard `message` has a text for `{key}`, which is not a language code", where=where,
                              hint=(f"write `{guess}` for `{key}`; " if guess else "") + "one text per language "
                              f"code, such as en or zh (supported: {', '.join(LANGUAGES)})")
        out[code] = text
    return out

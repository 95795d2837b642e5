"""`language: zh` — the output is written in the given language (or one of a list).

A dependency-free detector: the dominant script decides between scripts (Han, kana, Hangul, Cyrillic,
Arabic, …), stop words decide between the Latin-script languages. CJK characters weigh three Latin
letters each, so a Chinese answer quoting `version:` or an English product name is still Chinese.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from flywheel.checks.base import Check, CheckContext, register
from flywheel.types import CheckResult

_SCRIPTS: list[tuple[str, re.Pattern[str]]] = [
    ("han", re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")),
    ("kana", re.compile(r"[\u3040-\u30ff]")),
    ("hangul", re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")),
    ("cyrillic", re.compile(r"[\u0400-\u04ff]")),
    ("arabic", re.compile(r"[\u0600-\u06ff]")),
    ("hebrew", re.compile(r"[\u0590-\u05ff]")),
    ("greek", re.compile(r"[\u0370-\u03ff]")),
    ("devanagari", re.compile(r"[\u0900-\u097f]")),
    ("thai", re.compile(r"[\u0e00-\u0e7f]")),
    ("latin", re.compile(r"[A-Za-z\u00c0-\u024f]")),
]
_CJK_WEIGHT = 3
_SCRIPT_LANG = {"arabic": "ar", "hebrew": "he", "greek": "el", "devanagari": "hi", "thai": "th"}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOPWORDS: dict[str, frozenset[str]] = {
    "en": _words(
        "the and is are of to in that it you for with this was be on not have as what how can do your "
        "an or by from at will which there their if"
    ),
    "fr": _words(
        "le la les et est des un une du que pas pour dans ce il vous sur avec qui au sont nous mais ne "
        "cette être"
    ),
    "de": _words(
        "der die das und ist nicht ein eine zu den mit sie es sich auf für dem ich wir auch wie oder "
        "werden sind"
    ),
    "es": _words(
        "el la los las y es de que en un una por con para no se del está como pero más son lo usted"
    ),
    "pt": _words("o a os as e é de que em um uma não para com do da no na se por mais são você"),
    "it": _words("il lo la gli le e è di che un una non per con del della sono si come ma più anche"),
    "nl": _words("de het een en is van niet dat op te zijn met voor die er ook maar wat je hoe"),
}
LATIN = list(_STOPWORDS)
LANGUAGES = sorted({"zh", "ja", "ko", "ru", "uk", *LATIN, *_SCRIPT_LANG.values()})
_ALIASES = {
    "chinese": "zh",
    "english": "en",
    "japanese": "ja",
    "korean": "ko",
    "russian": "ru",
    "ukrainian": "uk",
    "french": "fr",
    "german": "de",
    "spanish": "es",
    "portuguese": "pt",
    "italian": "it",
    "dutch": "nl",
    "arabic": "ar",
    "hebrew": "he",
    "greek": "el",
    "hindi": "hi",
    "thai": "th",
}
_LATIN_WORD = re.compile(r"[a-z\u00e0-\u024f]+(?:'[a-z]+)?")


def normalize(code: str) -> str:
    """`zh-CN`, `ZH`, `Chinese` → `zh`."""
    c = code.strip().lower().replace("_", "-")
    return _ALIASES.get(c, c.split("-")[0])


def detect(text: str) -> tuple[list[str], float, dict[str, Any]]:
    """(candidate languages, confidence 0..1, evidence); several candidates when the script cannot tell."""
    counts = {name: len(rx.findall(text)) for name, rx in _SCRIPTS}
    weights = {k: v * (_CJK_WEIGHT if k in ("han", "kana", "hangul") else 1) for k, v in counts.items()}
    cjk = weights["han"] + weights["kana"] + weights["hangul"]
    total = sum(weights.values())
    if total == 0:
        return [], 0.0, {"scripts": {}}
    evidence: dict[str, Any] = {"scripts": {k: v for k, v in counts.items() if v}}
    scored = dict(weights)
    scored["cjk"] = cjk
    for k in ("han", "kana", "hangul"):
        scored.pop(k)
    script = max(scored, key=lambda k: scored[k])
    share = scored[script] / total
    if script == "cjk":
        han, kana, hangul = counts["han"], counts["kana"], counts["hangul"]
        if hangul >= max(han, kana):
            return ["ko"], share, evidence
        if kana and kana >= 0.1 * (han + kana):
            return ["ja"], share, evidence
        return ["zh"], share, evidence
    if script == "cyrillic":
        return (["uk"] if re.search(r"[іїєґІЇЄҐ]", text) else ["ru"]), share, evidence
    if script in _SCRIPT_LANG:
        return [_SCRIPT_LANG[script]], share, evidence
    words = Counter(_LATIN_WORD.findall(text.lower()))
    hits = {lang: sum(n for w, n in words.items() if w in stop) for lang, stop in _STOPWORDS.items()}
    evidence["stopwords"] = {k: v for k, v in hits.items() if v}
    best = max(hits.values())
    if best == 0:
        return list(LATIN), share * 0.5, evidence  # Latin script, too little text to tell which language
    ranked = sorted(hits, key=lambda k: -hits[k])
    runner_up = hits[ranked[1]]
    return [ranked[0]], share * (best - runner_up + 1) / (best + 1), evidence


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

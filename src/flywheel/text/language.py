"""Language detection, one detector for every room: which language a question is asked in (the reply's
language, the no-answer message), which language a chunk or query is in (whether an embedder covers it), and
which language an output is written in (the `language` check).

Dependency-free and deterministic. The dominant script decides between scripts (Han, kana, Hangul, Cyrillic,
Arabic, …), counting a CJK character against a whole word of a space-separated script, plus the function words
that frame a sentence ("怎么", "的", "the", "for"): a Chinese question naming English terms ("怎么设置 model
version pinning？") is Chinese, an English sentence naming a Chinese person ("Contact 王小明 for details") is
English. Between Latin-script languages, short marker words decide. Code, URLs and e-mail addresses are left
out first (`prose`): a Chinese answer pointing to https://docs.example.com/guide/install is Chinese.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flywheel.text.stopwords import LANGUAGE_MARKERS, STOPWORDS_ZH

# Runs of Han, kana, Hangul and any of them (characters are counted a run at a time: far fewer objects).
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_KANA_RUN = re.compile(r"[\u3040-\u30ff]+")
_HANGUL_RUN = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]+")
_CJK_RUN = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")
_WORD = re.compile(r"[^\W\d_]+")
_UKRAINIAN = re.compile(r"[іїєґІЇЄҐ]")
# Script of a space-separated word, by its first letter.
_SCRIPTS: list[tuple[str, re.Pattern[str]]] = [
    ("latin", re.compile(r"[A-Za-z\u00c0-\u024f]")),
    ("cyrillic", re.compile(r"[\u0400-\u04ff]")),
    ("arabic", re.compile(r"[\u0600-\u06ff]")),
    ("hebrew", re.compile(r"[\u0590-\u05ff]")),
    ("greek", re.compile(r"[\u0370-\u03ff]")),
    ("devanagari", re.compile(r"[\u0900-\u097f]")),
    ("thai", re.compile(r"[\u0e00-\u0e7f]")),
]
_THAI_CHARS_PER_WORD = 4  # Thai is written without spaces between words
_SCRIPT_LANG = {"arabic": "ar", "hebrew": "he", "greek": "el", "devanagari": "hi", "thai": "th"}
_ZH_FRAME = sorted(STOPWORDS_ZH)
LATIN: list[str] = list(LANGUAGE_MARKERS)  # "en" first: the answer when Latin text is too short to tell
LANGUAGES: list[str] = sorted({"zh", "ja", "ko", "ru", "uk", *LATIN, *_SCRIPT_LANG.values()})
_ALIASES = {
    "chinese": "zh", "english": "en", "japanese": "ja", "korean": "ko", "russian": "ru", "ukrainian": "uk",
    "french": "fr", "german": "de", "spanish": "es", "portuguese": "pt", "italian": "it", "dutch": "nl",
    "arabic": "ar", "hebrew": "he", "greek": "el", "hindi": "hi", "thai": "th",
}
_MIN_MARKERS = 2  # marker words needed before naming one Latin-script language
_SAMPLE_CHARS = 4000  # detect_language reads this much: enough for a chunk or a question, cheap for a document


@dataclass(frozen=True)
class Detection:
    """candidates: one language, several when the script cannot tell (short Latin text), none without letters."""

    candidates: list[str]
    confidence: float
    evidence: dict[str, Any] = field(default_factory=dict)


def normalize_language(code: str) -> str:
    """`zh-CN`, `ZH`, `Chinese` → `zh`."""
    c = code.strip().lower().replace("_", "-")
    return _ALIASES.get(c, c.split("-")[0])


_NAMES = {"en": "English", "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "fr": "French", "de": "German",
          "es": "Spanish", "pt": "Portuguese", "it": "Italian", "nl": "Dutch", "ru": "Russian", "uk": "Ukrainian",
          "ar": "Arabic", "he": "Hebrew", "el": "Greek", "hi": "Hindi", "th": "Thai"}


def language_name(code: str) -> str:
    """The English name of a language tag for messages (`zh` → `Chinese`); the tag itself when unknown."""
    return _NAMES.get(code, code)


def _script_of(ch: str) -> str | None:
    """The script of a space-separated word starting with `ch` (None: none of _SCRIPTS), cached per character."""
    try:
        return _FIRST_LETTER[ch]
    except KeyError:
        name = next((name for name, rx in _SCRIPTS if rx.match(ch)), None)
        if len(_FIRST_LETTER) < 65536:
            _FIRST_LETTER[ch] = name
        return name


_FIRST_LETTER: dict[str, str | None] = {}
# marker word → the positions in LATIN of the languages it marks
_MARKERS: dict[str, tuple[int, ...]] = {
    w: tuple(i for i, stop in enumerate(LANGUAGE_MARKERS.values()) if w in stop)
    for w in frozenset().union(*LANGUAGE_MARKERS.values())}
# ASCII bytes → lower-case letters, everything else a space: what _WORD finds in ASCII text, lower-cased
_ASCII_LETTERS = bytes(c + 32 if 65 <= c <= 90 else c if 97 <= c <= 122 else 32 for c in range(256))


def _count(text: str, cjk_frame: bool) -> tuple[dict[str, float], list[tuple[int, ...]], int, int, int]:
    """(script scores, the Latin marker words found (as _MARKERS values), han, kana, hangul). With
    `cjk_frame=False` the Chinese function words are counted only when they can change which script wins
    (detect_language needs no more)."""
    words: dict[str, list[str]] = {name: [] for name, _ in _SCRIPTS}
    if text.isascii():  # the common case: only Latin words, no CJK (same result, a fraction of the work)
        han = kana = hangul = 0
        words["latin"] = text.encode("ascii").translate(_ASCII_LETTERS).decode("ascii").split()
    else:
        han, kana, hangul = (sum(map(len, rx.findall(text))) for rx in (_HAN_RUN, _KANA_RUN, _HANGUL_RUN))
        for w in _WORD.findall(_CJK_RUN.sub(" ", text) if han or kana or hangul else text):
            name = _script_of(w[0])
            if name is not None:
                words[name].append(w.lower())
    scores = {name: float(len(ws)) for name, ws in words.items()}
    scores["thai"] = sum(max(1.0, len(w) / _THAI_CHARS_PER_WORD) for w in words["thai"])
    marks = [m for m in map(_MARKERS.get, words["latin"]) if m]
    scores["latin"] += len(marks)
    scores["cjk"] = float(han + kana + hangul)
    # cjk is the last key, so it wins only when strictly ahead: then more frame words change nothing
    if han and (cjk_frame or scores["cjk"] <= max(v for k, v in scores.items() if k != "cjk")):
        scores["cjk"] += sum(text.count(w) for w in _ZH_FRAME)
    return scores, marks, han, kana, hangul


def _latin_hits(marks: list[tuple[int, ...]]) -> list[int]:
    """Marker words found per Latin-script language, in LATIN order."""
    hits = [0] * len(LATIN)
    for langs in marks:
        for i in langs:
            hits[i] += 1
    return hits


_NOT_PROSE = re.compile(  # each alternative starts only where a run starts and is bounded: linear in the text
    r"```.*?(?:```|\Z)"  # a fenced code block (to the end when still open)
    r"|`[^`\n]+`"  # inline code
    r"|(?<![A-Za-z0-9+.-])(?:[a-z][a-z0-9+.-]{0,15}://|www\.)[^\s<>\"'`\u3000-\u303f\u3400-\u9fff\uff00-\uffef]+"  # a URL
    r"|(?<![A-Za-z0-9.+_-])[A-Za-z0-9.+_-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+",  # e-mail
    re.DOTALL | re.IGNORECASE,
)
_LETTER = re.compile(r"[^\W\d_]")


def prose(text: str) -> str:
    """`text` without what is not written language (code, URLs, e-mail addresses); `text` itself when nothing
    with letters would be left (an answer that is only a command is judged on the command)."""
    rest = _NOT_PROSE.sub(" ", text)
    return rest if _LETTER.search(rest) else text


def detect(text: str) -> Detection:
    """All the evidence: candidate languages, a 0..1 confidence and the counts they came from (of the text's
    prose: code, URLs and e-mail addresses left out)."""
    text = prose(text)
    scores, marks, han, kana, hangul = _count(text, cjk_frame=True)
    total = sum(scores.values())
    evidence: dict[str, Any] = {"scripts": {k: round(v, 2) for k, v in scores.items() if v}}
    if total == 0:
        return Detection([], 0.0, evidence)
    script = max(scores, key=lambda k: scores[k])
    share = scores[script] / total
    if script == "cjk":
        if hangul >= max(han, kana):
            return Detection(["ko"], share, evidence)
        if kana and kana >= 0.1 * (han + kana):
            return Detection(["ja"], share, evidence)
        return Detection(["zh"], share, evidence)
    if script == "cyrillic":
        return Detection(["uk"] if _UKRAINIAN.search(text) else ["ru"], share, evidence)
    if script in _SCRIPT_LANG:
        return Detection([_SCRIPT_LANG[script]], share, evidence)
    hits = dict(zip(LATIN, _latin_hits(marks)))
    evidence["stopwords"] = {k: v for k, v in hits.items() if v}
    ranked = sorted(hits, key=lambda k: -hits[k])
    best, runner_up = hits[ranked[0]], hits[ranked[1]]
    if best < _MIN_MARKERS or best == runner_up:
        # Latin script, too little evidence to tell which language ("pin a model version" has one Portuguese
        # marker, "a"): every Latin language stays a candidate, English first.
        return Detection(list(LATIN), share * 0.5, evidence)
    return Detection([ranked[0]], share * (best - runner_up + 1) / (best + 1), evidence)


def detect_language(text: str) -> str:
    """The language of `text` as a short code ('zh', 'en', 'ja', 'ko', 'fr', 'ru', …); 'en' for Latin text too
    short to tell; '' when there are no letters at all."""
    # detect()'s decision without its evidence and confidence: called per chunk at ingest, so it is kept cheap
    sample = prose(text[:_SAMPLE_CHARS])
    scores, marks, han, kana, hangul = _count(sample, cjk_frame=False)
    script = max(scores, key=lambda k: scores[k])
    if not scores[script]:
        return ""
    if script == "cjk":
        return "ko" if hangul >= max(han, kana) else "ja" if kana and kana >= 0.1 * (han + kana) else "zh"
    if script == "cyrillic":
        return "uk" if _UKRAINIAN.search(sample) else "ru"
    if script in _SCRIPT_LANG:
        return _SCRIPT_LANG[script]
    hits = _latin_hits(marks)
    best, runner_up = sorted(hits, reverse=True)[:2]
    return LATIN[hits.index(best)] if best >= _MIN_MARKERS and best != runner_up else LATIN[0]

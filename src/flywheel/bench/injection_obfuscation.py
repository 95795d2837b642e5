"""Held-out obfuscation sets for the injection benchmark (`flywheel bench guards --only obfuscation`).

Each obfuscation is applied mechanically to every text of the benchmark's own sets — the held-out English
attacks (Tensor Trust hijacking file), the Chinese test set (`tests/data/injection_zh.jsonl`, attacks and
benign), the held-out benign questions and sentences (cmrc2018, askfsdl, MRPC) and the held-out questions to
an assistant (`tests/data/injection_benign_assistant.jsonl`) — so nothing here was tuned on or trained on.
Detection rate is over the obfuscated attacks, false-positive rate over the obfuscated benign texts; the
`plain` row is the same texts untouched. Besides spelling out: homoglyphs (Latin letters swapped for the
Cyrillic or Greek letters that look the same), leetspeak (`1gn0r3`, and with `s t` too: `5y573m`), diacritics
(`ìgnörè`) and a mix of full-width letters, homoglyphs and diacritics in one word. The look-alike tables here
are written out independently of the normaliser's (`checks/injection_normalise.py`). Chinese has no Latin
letters to swap, so those obfuscations leave it as it is apart from the English words in it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

_FULLWIDTH = {c: chr(c + 0xFEE0) for c in range(0x21, 0x7F)} | {0x20: "\u3000"}
# Latin letter -> the Cyrillic / Greek letter an attacker types instead (they look the same)
_CYRILLIC = str.maketrans("aceijopsxyABCEHIJKMOPSTXY", "асеіјорѕхуАВСЕНІЈКМОРЅТХУ")
_GREEK = str.maketrans("aiopvuyABEHIKMNOPTXYZ", "αιορνυγΑΒΕΗΙΚΜΝΟΡΤΧΥΖ")
_LEET = str.maketrans("aeioAEIO", "43104310")
_LEET_HEAVY = str.maketrans("aeiostAEIOST", "431057431057")
_ASCII_WORD = re.compile(r"[A-Za-z0-9]+")
_MARKS = {"a": "\u0300", "e": "\u0301", "i": "\u0308", "o": "\u0308", "u": "\u0308", "n": "\u0303", "c": "\u0327"}


def _diacritics(text: str) -> str:
    """A mark on every vowel, n and c (`ìgnörè àll`), composed where Unicode has the letter."""
    return unicodedata.normalize("NFC", "".join(c + _MARKS.get(c.lower(), "") for c in text))


def _leet(table: dict[int, int]) -> Callable[[str], str]:
    """Letters swapped for digits in every word that keeps a letter: `AI` would become the number `41`, which
    no reader (human or model) takes for a word, so a leetspeak writer leaves it."""
    def word(match: re.Match[str]) -> str:
        swapped = match.group(0).translate(table)
        return swapped if any(c.isalpha() for c in swapped) else match.group(0)

    def apply(text: str) -> str:
        return _ASCII_WORD.sub(word, text)
    return apply


def _partial(table: dict[int, int]) -> Callable[[str], str]:
    """Every second letter that has a look-alike swapped for it (`іgnоre` with Cyrillic і о)."""
    def apply(text: str) -> str:
        out, n = [], 0
        for c in text:
            swapped = c.translate(table)
            if swapped != c:
                n += 1
                c = swapped if n % 2 else c
            out.append(c)
        return "".join(out)
    return apply


def _mixed(text: str) -> str:
    """Latin letters in turn full-width, a Cyrillic look-alike, with a diacritic, and as they were."""
    out, n = [], 0
    for c in text:
        if c.isascii() and c.isalpha():
            c = (chr(ord(c) + 0xFEE0), c.translate(_CYRILLIC), _diacritics(c), c)[n % 4]
            n += 1
        out.append(c)
    return "".join(out)


def _spell(sep: str, gap: str) -> Callable[[str], str]:
    """Every character of each whitespace-separated word joined by `sep`, the words by `gap` (Chinese,
    written without spaces, is spelt out character by character)."""
    def apply(text: str) -> str:
        return gap.join(sep.join(word) for word in text.split())
    return apply


# name -> what it does to a text
OBFUSCATIONS: dict[str, Callable[[str], str]] = {
    "plain": lambda text: text,
    "spaced": _spell(" ", "   "),              # i g n o r e   a l l / 忽 略 之 前
    "spaced_flat": _spell(" ", " "),           # i g n o r e a l l (word boundaries lost)
    "hyphenated": _spell("-", " "),            # i-g-n-o-r-e a-l-l / 忽-略-之-前
    "dotted": _spell(".", " "),                # i.g.n.o.r.e
    "underscored": _spell("_", " "),           # i_g_n_o_r_e
    "zero_width": _spell("\u200b", " "),       # zero-width spaces between the characters
    "fullwidth_spaced": _spell("\u3000", "\u3000\u3000"),  # ideographic (full-width) spaces
    "fullwidth": lambda text: text.translate(_FULLWIDTH),  # ｉｇｎｏｒｅ　ａｌｌ
    "homoglyph_cyrillic": lambda text: text.translate(_CYRILLIC),  # Іgnоrе аll рrеvіоus (Cyrillic І о е а р)
    "homoglyph_partial": _partial(_CYRILLIC),   # іgnоre аll prеviоus: every second swappable letter
    "homoglyph_greek": lambda text: text.translate(_GREEK),  # Ιgnοre αll ρreνιουs
    "leetspeak": _leet(_LEET),                  # 1gn0r3 4ll pr3v10us 1nstruct10ns
    "leetspeak_heavy": _leet(_LEET_HEAVY),      # 1gn0r3 4ll pr3v10u5 1n57ruc710n5
    "diacritics": _diacritics,                  # ìgnörè àll prévïöüs
    "mixed": _mixed,                            # ｉgn̈ｏrè: full-width, homoglyph, diacritic, plain in turn
}


def _rates(flags: list[bool]) -> float:
    return round(sum(flags) / len(flags), 4) if flags else 0.0


def evaluate(predict: Callable[[list[str]], list[bool]], sets: dict[str, tuple[list[str], int]]) -> dict[str, Any]:
    """Per obfuscation: detection rate per attack set and false-positive rate per benign set
    (`sets`: name -> (texts, label)), and overall `detection` / `fpr`."""
    out: dict[str, Any] = {}
    for name, obfuscate in OBFUSCATIONS.items():
        row: dict[str, Any] = {}
        pos: list[bool] = []
        neg: list[bool] = []
        for set_name, (texts, label) in sets.items():
            flags = predict([obfuscate(t) for t in texts])
            row[f"{'detection' if label else 'fpr'}_{set_name}"] = _rates(flags)
            (pos if label else neg).extend(flags)
        out[name] = {"detection": _rates(pos), "fpr": _rates(neg), **row}
    return out

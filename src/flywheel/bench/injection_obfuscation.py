"""Held-out obfuscation sets for the injection benchmark (`flywheel bench guards --only injection`).

Each obfuscation is applied mechanically to every text of the benchmark's own sets — the held-out English
attacks (Tensor Trust hijacking file), the Chinese test set (`tests/data/injection_zh.jsonl`, attacks and
benign), the held-out benign questions and sentences (cmrc2018, askfsdl, MRPC) and the held-out questions to
an assistant (`tests/data/injection_benign_assistant.jsonl`) — so nothing here was tuned on or trained on.
Detection rate is over the obfuscated attacks, false-positive rate over the obfuscated benign texts; the
`plain` row is the same texts untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_FULLWIDTH = {c: chr(c + 0xFEE0) for c in range(0x21, 0x7F)} | {0x20: "\u3000"}


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

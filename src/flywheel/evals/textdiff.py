"""Word-level diff of two texts as HTML (`<del>` / `<ins>`), CJK-aware: Chinese and Japanese are compared
character by character (they have no spaces between words), everything else word by word.

    diff_html("Set the version key.", "Set `version:` on the alias.")
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from html import escape

# Han ideographs (with extension A and compatibility forms), kana: one token per character
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|\s+|[^\w\s]", re.UNICODE)
MAX_TOKENS = 4000  # per side; SequenceMatcher is quadratic in the worst case


def tokens(text: str) -> list[str]:
    """Words, single CJK characters, runs of whitespace and single punctuation marks, in order; joined they
    give back `text`."""
    return _TOKEN.findall(text)


def diff_html(old: str, new: str) -> str:
    """`new` against `old`: removed tokens in `<del>`, added ones in `<ins>`, the rest plain (escaped)."""
    a, b = tokens(old or ""), tokens(new or "")
    if len(a) > MAX_TOKENS or len(b) > MAX_TOKENS:
        return "<span class='muted'>(too long to diff)</span>"
    out: list[str] = []
    for op, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(escape("".join(a[i1:i2])))
            continue
        if op in ("delete", "replace"):
            out.append(f"<del>{escape(''.join(a[i1:i2]))}</del>")
        if op in ("insert", "replace"):
            out.append(f"<ins>{escape(''.join(b[j1:j2]))}</ins>")
    return "".join(out)

"""Word-level diff of two texts, CJK-aware: Chinese and Japanese are compared character by character (they have no
spaces between words), everything else word by word. The evals report (`<del>`/`<ins>` HTML) and
`flywheel prompts diff` (`[-…-]{+…+}`) both render these runs.

    word_diff("Be brief.", "Be very brief.")   # [("equal", "Be"), ("insert", " very"), ("equal", " brief.")]
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from typing import Literal

Op = Literal["equal", "delete", "insert"]

# Han ideographs (with extension A and compatibility forms), kana: one token per character
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|\s+|[^\w\s]", re.UNICODE)


def tokens(text: str) -> list[str]:
    """Words, single CJK characters, runs of whitespace and single punctuation marks, in order; joined they
    give back `text`."""
    return _TOKEN.findall(text)


def word_diff(old: str, new: str) -> list[tuple[Op, str]]:
    """`new` against `old` as (op, text) runs: equal, delete (only in old), insert (only in new)."""
    return diff_tokens(tokens(old), tokens(new))


def diff_tokens(a: list[str], b: list[str]) -> list[tuple[Op, str]]:
    """`word_diff` of already tokenized texts (callers that first check the size)."""
    out: list[tuple[Op, str]] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            out.append(("equal", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(("delete", "".join(a[i1:i2])))
        if j2 > j1:
            out.append(("insert", "".join(b[j1:j2])))
    return out

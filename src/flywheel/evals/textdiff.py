"""A word-level diff of two texts as HTML (`<del>` / `<ins>`), CJK-aware (`flywheel.text.diff`): Chinese and
Japanese are compared character by character, everything else word by word.

    diff_html("Set the version key.", "Set `version:` on the alias.")
"""

from __future__ import annotations

from html import escape

from flywheel.text.diff import diff_tokens, tokens

MAX_TOKENS = 4000  # per side; SequenceMatcher is quadratic in the worst case
_MARKS = {"delete": ("<del>", "</del>"), "insert": ("<ins>", "</ins>"), "equal": ("", "")}


def diff_html(old: str, new: str) -> str:
    """`new` against `old`: removed tokens in `<del>`, added ones in `<ins>`, the rest plain (escaped)."""
    a, b = tokens(old or ""), tokens(new or "")
    if len(a) > MAX_TOKENS or len(b) > MAX_TOKENS:
        return "<span class='muted'>(too long to diff)</span>"
    return "".join(f"{_MARKS[op][0]}{escape(text)}{_MARKS[op][1]}" for op, text in diff_tokens(a, b))

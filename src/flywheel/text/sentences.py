"""Sentence splitting for English, Chinese and mixed text, one splitter for every room (chunking, the
extractive model, sentence counts, streaming guards).

A sentence ends at Chinese/Japanese sentence punctuation 。！？； (no space follows it in CJK text), at . ! ?
followed by whitespace or the end, or at a line break; closing quotes and brackets stay with the sentence they
close (他说：“你好。” / He said "Stop."). A period does not end a sentence after an abbreviation ("e.g.",
"Dr."), an initial ("J. Smith"), a list number at the start of a line ("1. Install"), or before a lower-case
word ("e.g. this", "approx. ten"); a period inside a number ("3.14", "v1.2") is never followed by a space.
"""

from __future__ import annotations

import re

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CLOSERS = "”’」』）)\"'\\]"
_END = re.compile(
    rf"[。！？；]+[{_CLOSERS}]*"  # CJK sentence punctuation: always an end
    rf"|(?<=[{_CJK}])…+[{_CLOSERS}]*"  # a Chinese ellipsis
    rf"|[!?]+[{_CLOSERS}]*(?=\s|$|[{_CJK}])"
    rf"|\.+[{_CLOSERS}]*(?=\s|$)"
    r"|\n"
)
# Abbreviations after which a period does not end the sentence, whatever follows.
_ABBREVIATIONS = frozenset({
    "e.g", "i.e", "cf", "vs", "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "fig", "figs", "eq", "approx",
    "ca", "al", "resp", "incl",
})
_WORD_BEFORE = re.compile(r"(\S+)$")
_LIST_NUMBER = re.compile(r"[ \t]*(?:\d+|[A-Za-z])")
_LOOKBACK = 40  # characters read back from a period to find the word it ends
_NEXT = re.compile(r"\s*(\S)")


def _is_end(text: str, m: re.Match[str]) -> bool:
    mark = m.group(0)
    if not mark.startswith("."):
        return True
    window = max(0, m.start() - _LOOKBACK)  # bounded look-back: splitting stays linear in the text length
    newline = text.rfind("\n", window, m.start())
    line_start = newline + 1 if newline >= 0 else (0 if window == 0 else -1)  # -1: the line began earlier
    before = text[max(line_start, window): m.start()]
    word = _WORD_BEFORE.search(before)
    if word is None:
        return True
    token = word.group(1).lstrip("(\"'“‘[").lower()
    if token in _ABBREVIATIONS or re.fullmatch(r"[a-z]", token) and word.group(1)[-1].isupper():
        return False
    if line_start >= 0 and _LIST_NUMBER.fullmatch(before):
        return False  # "1. Install" / "a. first" at the start of a line
    nxt = _NEXT.match(text, m.end())
    return nxt is None or not nxt.group(1).islower()


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of text[start:end], surrounding whitespace excluded: for callers
    that need verbatim slices (quotes must be byte-identical to the source)."""
    stop = len(text) if end is None else end
    part = text[start:stop]
    spans: list[tuple[int, int]] = []
    a = 0
    for b in [*(m.end() for m in _END.finditer(part) if _is_end(part, m)), len(part)]:
        piece = part[a:b]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            spans.append((start + a + lead, start + a + len(piece.rstrip())))
        a = max(a, b)
    return spans


def sentences_with_separators(text: str) -> list[tuple[str, str]]:
    """[(sentence, the whitespace that preceded it: "" | " " | "\\n")]; joining them rebuilds the text (up to
    runs of whitespace)."""
    out: list[tuple[str, str]] = []
    prev = 0
    for a, b in sentence_spans(text):
        between = text[prev:a]
        gap = "\n" if "\n" in between else (" " if between else "")
        out.append((text[a:b], gap if out else ""))
        prev = b
    return out


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, stripped, empty ones left out."""
    return [text[a:b] for a, b in sentence_spans(text)]


def complete_sentences(buffer: str) -> tuple[list[str], str]:
    """For text arriving in pieces (a stream): (the sentences already complete, each with the whitespace after
    it, the rest). A sentence is complete when something follows its end: "3." may still become "3.5"."""
    done: list[str] = []
    a = 0
    for m in _END.finditer(buffer):
        if a < m.end() < len(buffer) and _is_end(buffer, m):
            b = m.end()
            while b < len(buffer) and buffer[b].isspace():
                b += 1
            if b == len(buffer) and m.group(0) != "\n":
                break  # only whitespace follows: the next piece may still continue this sentence
            done.append(buffer[a:b])
            a = b
    return done, buffer[a:]

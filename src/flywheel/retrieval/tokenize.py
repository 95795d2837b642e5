"""Keyword tokens for BM25, the same for indexing and querying (the tokenizer itself lives in `flywheel.text`).
The index stores the tokens space-joined, so FTS5 / tsvector see pre-segmented text and a Chinese query matches
Chinese text. Traditional characters are folded to simplified in the tokens (and the bigrams coverage compares),
so a question in either script finds documents in the other.

English words are stemmed (flywheel.text's `stem`: Snowball English, i.e. Porter2, as Lucene's EnglishAnalyzer,
bm25s and Pyserini do; the extractive model matches questions with the same stems), so "refund rule" matches
"Refund rules" and "refunded". Only words of ASCII letters written as words: a piece of a name keeps its exact
form, and so does a token with a digit (s3, gpt4) or another script. A name is
a run of word characters joined by `_`, `.`, `/`, `::` or `->` (min_relevance, v1.2, os.path, docs/a.md,
std::vector): `settings.yaml` stemmed would be `set` + `yaml`, matching every text with "set" in it. camelCase
is not told apart: its case is gone once lower-cased, and a user typing `maxtokens` must get the same tokens
as a document writing `maxTokens`. Hyphens join English words (follow-ups, e-mails), which are stemmed.

An acronym's plural is the acronym: written as capitals and an s (LLMs, GPUs, VMs) before lower-casing, and by
its letters after it (llms, pdfs: `stem`), since Snowball keeps an s without a vowel before it. A Chinese word of
two characters that jieba's dictionary lacks is its two characters (`unglue_chinese`): jieba's HMM made it up by gluing
characters the dictionary cut one by one, and glues them differently with the next character, so a question's
one-character word (表, 库) would miss the document's."""

from __future__ import annotations

import re
from collections.abc import Iterable

from flywheel.text import STOPWORDS_EN, STOPWORDS_ZH, detect_language, normalize, stem
from flywheel.text import tokenize as _tokenize
from flywheel.text.stopwords import STOPWORDS
from flywheel.text.tokenize import MAX_TOKEN_CHARS, fold_traditional, in_dictionary, singular_acronyms

__all__ = ["MAX_TOKEN_CHARS", "STOPWORDS_EN", "STOPWORDS_ZH", "TOKENIZER_HISTORY", "TOKENIZER_VERSION",
           "detect_language", "keyword_tokens", "marked_tokens", "normalize", "tokenize", "tokenize_many"]

# Part of the ingest settings hash (changing keyword_tokens re-indexes files) and recorded per ingested file, so
# a search over files indexed by another version warns (retriever.py). 2: traditional Chinese folded to simplified;
# 3: English words stemmed; 4: an acronym's plural is the acronym (LLMs → llm), a Chinese two-character word
# jieba's HMM made up is its two characters (表在 → 表).
TOKENIZER_VERSION = "4"
TOKENIZER_HISTORY = ("4: acronym plurals (LLMs) match the acronym, one-character Chinese words are not glued to "
                     "the next; 3: English words stemmed; 2: traditional Chinese folded to simplified")  # for that warning


def tokenize(text: str, *, stopwords: bool = False) -> list[str]:
    """The words of `text` as written (not stemmed, unlike keyword_tokens). With `stopwords=True` common English
    and Chinese function words are dropped."""
    return _tokenize(text, keep_stopwords=not stopwords)


def keyword_tokens(text: str) -> list[str]:
    """The tokens BM25 indexes and queries with (stopwords dropped: +0.002 nDCG@10 on cmrc2018, and common
    words no longer make every query score the whole corpus), English words stemmed (see the module's doc)."""
    out: list[str] = []
    for tokens, words in _pieces(text):
        out.extend(map(stem, tokens) if words else tokens)
    return out


def marked_tokens(text: str) -> list[tuple[str, bool]]:
    """flywheel.text.tokenize's tokens of `text` (stopwords dropped), each with whether it was written as a word
    (True) or is a piece of a name (False: min_relevance, os.path, v1.2)."""
    return [(t, words) for tokens, words in _pieces(text) for t in tokens]


_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # flywheel.text.tokenize's CJK ranges
_N = rf"[^\W{_CJK}]"  # a word character outside CJK, `_` included
# A name: word characters joined by `.`, `/`, `::` or `->`, or with a `_` among them; whole, not inside a word.
_NAME = re.compile(rf"(?<!{_N})(?:{_N}++(?:(?:\.|/|::|->){_N}++)++|[^\W_{_CJK}]*+_{_N}*+)(?!{_N})")
# Where a name may start: scanned for first, since a regex tried at every position costs ~1 µs a character.
_MARKS = re.compile(r"[_/:>]|\.(?=\w)")
_SPACE = re.compile(r"\s")


def _name_spans(text: str) -> list[tuple[int, int]]:
    """Where `text` (normalized) has names: _NAME's matches in the whitespace-delimited pieces around a mark."""
    spans: list[tuple[int, int]] = []
    done = 0
    for mark in _MARKS.finditer(text):
        i = mark.start()
        if i < done:
            continue
        c = text[i]
        if c in "./":
            if not (0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()):
                continue  # a full stop, a path's leading slash
        elif c == ":" and text[i:i + 2] != "::" or c == ">" and text[i - 1:i + 1] != "->":
            continue
        lo = i
        while lo and not text[lo - 1].isspace():
            lo -= 1
        space = _SPACE.search(text, i)
        done = space.start() if space else len(text)
        spans.extend(m.span() for m in _NAME.finditer(text, lo, done))
    return spans


def _pieces(text: str) -> list[tuple[list[str], bool]]:
    """The tokens of `text`, cut where names start and end: (tokens, True) for the text between names,
    (tokens, False) for a name. Names start and end where tokens do, so together they are exactly the
    tokenizer's tokens of the whole text (tests/test_retrieval_stemming.py checks it on the docs)."""
    text = normalize(singular_acronyms(text))
    out: list[tuple[list[str], bool]] = []
    start = 0
    for lo, hi in _name_spans(text):
        if text[start:lo].strip():  # not only the space between two names
            out.append((unglue_chinese(_tokenize(text[start:lo])), True))
        out.append((_tokenize(text[lo:hi]), False))
        start = hi
    out.append((unglue_chinese(_tokenize(text[start:] if start else text)), True))
    return out


_HAN2 = re.compile(r"[\u4e00-\u9fff]{2}")


def unglue_chinese(tokens: list[str]) -> list[str]:
    """`tokens` with each two-character Chinese word that jieba's dictionary lacks as its two characters: its
    HMM glued two characters the dictionary cut one by one, and which it glues depends on the next character
    (订单表在哪 → 订单 表在, 订单表记录 → 订单 表 记录), so the one-character word of a question (表, 库) missed
    the same word in a document."""
    out: list[str] = []
    for t in tokens:
        if len(t) == 2 and _HAN2.fullmatch(t) and not in_dictionary(t):
            out.extend(c for c in t if c not in STOPWORDS)
        else:
            out.append(t)
    return out


def tokenize_many(texts: Iterable[str], *, stopwords: bool = False) -> list[list[str]]:
    return [tokenize(t, stopwords=stopwords) for t in texts]


_CJK_RUN = re.compile(f"[{_CJK}]+")


def cjk_bigrams(text: str) -> list[str]:
    """Overlapping character bigrams of the CJK runs of `text` (NFKC, traditional folded to simplified as in
    the keyword tokens, in order; a one-character run is kept whole). Empty for text without Chinese or
    Japanese."""
    out: list[str] = []
    for m in _CJK_RUN.finditer(normalize(text)):
        run = fold_traditional(m.group(0))
        out.extend([run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)])
    return out

"""Keyword tokens for BM25, the same for indexing and querying (the tokenizer itself lives in `flywheel.text`).
The index stores the tokens space-joined, so FTS5 / tsvector see pre-segmented text and a Chinese query matches
Chinese text. Traditional characters are folded to simplified in the tokens (and the bigrams coverage compares),
so a question in either script finds documents in the other."""

from __future__ import annotations

import re
from collections.abc import Iterable

from flywheel.text import STOPWORDS_EN, STOPWORDS_ZH, detect_language, normalize
from flywheel.text import tokenize as _tokenize
from flywheel.text.tokenize import MAX_TOKEN_CHARS, fold_traditional

__all__ = ["MAX_TOKEN_CHARS", "STOPWORDS_EN", "STOPWORDS_ZH", "TOKENIZER_VERSION", "detect_language",
           "keyword_tokens", "normalize", "tokenize", "tokenize_many"]

# Part of the ingest settings hash (changing keyword_tokens re-indexes files) and recorded per ingested file, so
# a search over files indexed by another version warns (retriever.py). 2: traditional Chinese folded to simplified.
TOKENIZER_VERSION = "2"


def tokenize(text: str, *, stopwords: bool = False) -> list[str]:
    """Keyword tokens of `text`. With `stopwords=True` common English and Chinese function words are dropped."""
    return _tokenize(text, keep_stopwords=not stopwords)


def keyword_tokens(text: str) -> list[str]:
    """The tokens BM25 indexes and queries with (stopwords dropped: +0.002 nDCG@10 on cmrc2018, and common
    words no longer make every query score the whole corpus)."""
    return _tokenize(text)


def tokenize_many(texts: Iterable[str], *, stopwords: bool = False) -> list[list[str]]:
    return [tokenize(t, stopwords=stopwords) for t in texts]


_CJK_RUN = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def cjk_bigrams(text: str) -> list[str]:
    """Overlapping character bigrams of the CJK runs of `text` (NFKC, traditional folded to simplified as in
    the keyword tokens, in order; a one-character run is kept whole). Empty for text without Chinese or
    Japanese."""
    out: list[str] = []
    for m in _CJK_RUN.finditer(normalize(text)):
        run = fold_traditional(m.group(0))
        out.extend([run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)])
    return out

"""Verify a semantic-cache candidate before it is served: is the cached question really the same question?

Embedding similarity alone cannot tell "the index rose 7.42 points" from "the index rose 14.35 points", or
"the court upheld the ban" from "the court did not uphold the ban": those are near-duplicates in vector
space and wrong answers in a cache. The verifier is a small classifier (gradient-boosted depth-3 trees, or
a logistic regression) over cheap pair features (numbers, negation, capitalised tokens / entities, token,
bigram and character overlap, what each side says that the other does not, length ratio, the cosine
itself), fitted on the MRPC training split by `scripts/train_cache_verifier.py`. The fitted model ships as
JSON next to this file (`verifier.json`), never as a pickle, and is evaluated here in plain Python
(~0.1 ms per candidate).
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

WEIGHTS_PATH = Path(__file__).with_name("verifier.json")

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
# CJK characters become one token each (no segmenter needed for overlap features); other words whole.
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+(?:['’.,][^\W{_CJK}]+)*", re.UNICODE)
_NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")
_NEGATIONS = frozenset(
    ["not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "without", "不", "没", "没有", "别", "未", "非", "无"]
)
_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "twenty": "20", "hundred": "100",
    "thousand": "1000", "million": "1000000", "billion": "1000000000",
}
_STOPWORDS = frozenset(
    ["a", "an", "the", "of", "to", "in", "on", "at", "for", "by", "with", "from", "and", "or", "but", "as", "is", "are", "was", "were", "be", "been", "being", "it", "its", "this", "that", "these", "those", "he", "she", "they", "we", "you", "i", "his", "her", "their", "our", "your", "my", "me", "him", "them", "us", "will", "would", "shall", "should", "can", "could", "may", "might", "must", "do", "does", "did", "has", "have", "had", "said", "says", "say", "also", "than", "then", "there", "here", "which", "who", "whom", "whose", "what", "when", "where", "why", "how", "'s"]
)

FEATURES: tuple[str, ...] = (
    "cosine",
    "token_jaccard",
    "content_jaccard",
    "bigram_jaccard",
    "char3_jaccard",
    "length_ratio",
    "numbers_any",
    "numbers_jaccard",
    "numbers_only_one_side",
    "numbers_mismatch",
    "negation_mismatch",
    "entity_jaccard",
    "entities_unmatched",
    "content_unmatched",
    "query_extra",
    "cached_extra",
    "sequence_ratio",
    "longest_run",
)


@dataclass(frozen=True)
class _Parsed:
    tokens: tuple[str, ...]
    lower: frozenset[str]
    content: frozenset[str]
    bigrams: frozenset[tuple[str, str]]
    char3: frozenset[str]
    numbers: frozenset[str]
    negations: int
    entities: frozenset[str]


_CONTRACTIONS = (
    (re.compile(r"\b(won)['’]t\b", re.IGNORECASE), "will not"),
    (re.compile(r"\b(can)['’]t\b|\bcannot\b", re.IGNORECASE), "can not"),
    (re.compile(r"n['’]t\b", re.IGNORECASE), " not"),
    (re.compile(r"['’]re\b", re.IGNORECASE), " are"),
    (re.compile(r"['’]ve\b", re.IGNORECASE), " have"),
    (re.compile(r"['’]ll\b", re.IGNORECASE), " will"),
    (re.compile(r"\b(i)['’]m\b", re.IGNORECASE), r"\1 am"),
    (re.compile(r"\b(what|that|it|there|here|who|where|when|how|he|she)['’]s\b", re.IGNORECASE), r"\1 is"),
)


def _expand(text: str) -> str:
    """Spell out common English contractions, so "what's" and "what is" compare equal."""
    if "'" not in text and "’" not in text and "cannot" not in text.lower():
        return text
    for pattern, repl in _CONTRACTIONS:
        text = pattern.sub(repl, text)
    return text


@lru_cache(maxsize=4096)
def _parse(text: str) -> _Parsed:
    text = _expand(text)
    tokens = tuple(_TOKEN.findall(text))
    lower = [t.lower() for t in tokens]
    numbers = {n.replace(",", "") for n in _NUMBER.findall(text)}
    numbers |= {_NUMBER_WORDS[t] for t in lower if t in _NUMBER_WORDS}
    # A capitalised token that is no common word stands in for a named entity; spaCy-free on purpose: this
    # runs on every candidate.
    entities = {t.lower() for t in tokens if t[:1].isupper() and t.lower() not in _STOPWORDS}
    negations = sum(1 for t in lower if t in _NEGATIONS)
    squashed = " ".join(lower)
    return _Parsed(
        tokens=tuple(lower),
        lower=frozenset(lower),
        content=frozenset(t for t in lower if t not in _STOPWORDS and not _NUMBER.fullmatch(t)),
        bigrams=frozenset(itertools.pairwise(lower)),
        char3=frozenset(squashed[i:i + 3] for i in range(max(len(squashed) - 2, 0))),
        numbers=frozenset(numbers),
        negations=negations,
        entities=frozenset(entities),
    )


def _jaccard(a: frozenset, b: frozenset, empty: float = 1.0) -> float:
    if not a and not b:
        return empty
    return len(a & b) / len(a | b)


def same_words(a: str, b: str) -> bool:
    """Same words in the same order, differing at most in case, punctuation and contractions: the same
    question, accepted without the model (MRPC labels some such pairs non-paraphrase for reasons a cache does
    not share, e.g. a sentence repeated across pairs, so the model is not trained on them)."""
    return _parse(a).tokens == _parse(b).tokens


def features(query: str, candidate: str, cosine: float) -> list[float]:
    """The verifier's feature vector for (query, cached question), in FEATURES order."""
    q, c = _parse(query), _parse(candidate)
    lq, lc = len(q.tokens), len(c.tokens)
    unmatched_ents = len(q.entities ^ c.entities)
    unmatched_content = len(q.content ^ c.content)
    matcher = difflib.SequenceMatcher(None, q.tokens, c.tokens, autojunk=False)
    return [
        cosine,
        _jaccard(q.lower, c.lower),
        _jaccard(q.content, c.content),
        _jaccard(q.bigrams, c.bigrams, empty=0.0),
        _jaccard(q.char3, c.char3),
        min(lq, lc) / max(lq, lc, 1),
        float(bool(q.numbers or c.numbers)),
        _jaccard(q.numbers, c.numbers),
        float(bool(q.numbers) != bool(c.numbers)),
        float(len(q.numbers ^ c.numbers)),
        float((q.negations % 2) != (c.negations % 2)),
        _jaccard(q.entities, c.entities),
        math.log1p(unmatched_ents),
        math.log1p(unmatched_content),
        len(q.content - c.content) / max(len(q.content), 1),  # what the query asks that the cached one did not
        len(c.content - q.content) / max(len(c.content), 1),
        matcher.ratio(),
        max(b.size for b in matcher.get_matching_blocks()) / max(lq, lc, 1),
    ]


def _f32(x: float) -> float:
    """Round to float32, as scikit-learn's trees compare features (their thresholds are float32 midpoints)."""
    return struct.unpack("f", struct.pack("f", x))[0]


class Verifier:
    """`probability(query, cached_question, cosine)` and `accept(...)` with the fitted threshold."""

    def __init__(self, weights: dict):
        names = tuple(weights["features"])
        if names != FEATURES:
            raise ValueError(f"verifier weights were fitted on features {names}, this code computes {FEATURES}; "
                             "re-run scripts/train_cache_verifier.py")
        self.kind = weights.get("kind", "logistic")
        if self.kind == "logistic":
            self.mean = [float(x) for x in weights["mean"]]
            self.scale = [float(x) or 1.0 for x in weights["scale"]]
            self.coef = [float(x) for x in weights["coef"]]
            self.intercept = float(weights["intercept"])
        elif self.kind == "gbdt":
            self.init = float(weights["init"])
            self.learning_rate = float(weights["learning_rate"])
            self.trees = [(t["feature"], t["threshold"], t["left"], t["right"], t["value"]) for t in weights["trees"]]
        else:
            raise ValueError(f"unknown verifier model kind {self.kind!r}")
        self.threshold = float(weights.get("threshold", 0.5))
        self.meta = {k: v for k, v in weights.items() if k not in ("mean", "scale", "coef", "intercept", "trees")}

    @classmethod
    def load(cls, path: str | Path = WEIGHTS_PATH) -> Verifier:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def score(self, x: list[float]) -> float:
        """Log-odds that serving the candidate is right, from a feature vector."""
        if self.kind == "logistic":
            return self.intercept + sum(w * (v - m) / s for v, m, s, w in
                                        zip(x, self.mean, self.scale, self.coef, strict=True))
        x32 = [_f32(v) for v in x]
        z = self.init
        for feature, threshold, left, right, value in self.trees:
            node = 0
            while left[node] != -1:
                node = left[node] if x32[feature[node]] <= threshold[node] else right[node]
            z += self.learning_rate * value[node]
        return z

    def probability(self, query: str, candidate: str, cosine: float) -> float:
        if same_words(query, candidate):
            return 1.0
        z = self.score(features(query, candidate, cosine))
        return 1.0 / (1.0 + math.exp(-max(min(z, 60.0), -60.0)))

    def accept(self, query: str, candidate: str, cosine: float) -> bool:
        return self.probability(query, candidate, cosine) >= self.threshold


@lru_cache(maxsize=1)
def default_verifier() -> Verifier:
    return Verifier.load()

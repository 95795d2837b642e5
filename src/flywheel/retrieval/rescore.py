"""Hybrid re-scoring (fusion `auto`): the candidates both retrievers found are scored again on the passage itself
and fused by a linear model over a few features, instead of by rank.

1. The pool is the keyword side's top n and the dense side's top n, fetched once (the index already applied
   the tenant and the filters to both sides).
2. `words`: BM25 of every pooled passage over its keyword tokens, with the corpus-wide document frequencies the
   index reports, k1 = 0.9 and b = 0.4 (Anserini's defaults; FTS5's bm25() is fixed at 1.2 / 0.75, whose
   stronger length normalisation pushes down the longer passage that actually states the answer). A passage
   the dense side alone found gets its exact keyword score too, instead of no rank on that side.
3. `dense`: the embedder's cosine (a passage the keyword side alone found gets the lowest pooled cosine).
4. Each signal is z-scored over the pool, and the fused score is Σ coefficient × feature (`features`) with one
   model for a pool the dense side ran on (`DENSE_MODEL`) and one for a keyword-only pool (`WORDS_MODEL`).
   Every dense-side term is scaled by the language weight of `fusion.dense_weight` (0 for a Chinese question
   with an English-only embedder, which uses the keyword-only model) and by `Weights.dense`.

The coefficients are fitted on the development sets only (`scripts/fit_fusion.py`, coordinate ascent on the mean
nDCG@10 of cmrc2018-sentence-dev, mrpc-train and the `-dev` halves of debian-desc-{en,zh} and manpages-{en,zh};
docs/retrieval.md has the dev and held-out tables and what was tried and left out).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from itertools import pairwise

from flywheel.retrieval.tokenize import cjk_bigrams

K1, B = 0.9, 0.4

# Per-candidate features (`features`); the per-query trust signals enter as products with the dense z-score.
FEATURES = (
    "words",  # BM25 (k1 0.9, b 0.4) z-scored over the pool
    "dense",  # cosine z-scored over the pool
    "words_rr",  # 1 / rank on the keyword side (FTS5's BM25), 0 when that side did not return it
    "dense_rr",  # 1 / rank on the dense side, 0 when it did not return it
    "coverage",  # idf-weighted share of the query's terms the passage contains
    "pairs",  # share of adjacent query-term pairs found in order within 2 tokens in the passage
    "cjk",  # share of the query terms' CJK character bigrams in the passage's tokens joined (jieba cuts differ)
    "dense_x_dense_gap",  # dense z × the dense side's top-1 − top-2 z-score gap in the pool
    "dense_x_words_gap",  # dense z × the keyword side's top-1 − top-2 z-score gap
    "dense_x_length",  # dense z × min(query terms, 12) / 12
)
DENSE_FEATURES = frozenset(f for f in FEATURES if f.startswith("dense"))
# Re-scoring as it was before the fitted model (words 1.0 + dense 1.0): the starting point of the fit.
BASELINE = {"words": 1.0, "dense": 1.0}
# Fitted by scripts/fit_fusion.py (--limit 1000 --l2 0.002) on the six dev sets; docs/retrieval.md, "Fusion".
DENSE_MODEL: dict[str, float] = {"words": 1.0, "dense": 1.0, "dense_rr": -0.2}
WORDS_MODEL: dict[str, float] = {"words": 1.0, "words_rr": -0.1, "coverage": 0.2, "pairs": 0.2, "cjk": 0.4}


@dataclass(frozen=True)
class Weights:
    words: float = 1.0
    # nDCG@10 at 0.5 / 1.0 / 1.5 on the English dev sets: debian-desc-en-dev 0.942 / 0.950 / 0.952,
    # manpages-en-dev 0.801 / 0.818 / 0.823, mrpc-train 0.964 / 0.963 / - (2.0: 0.957): 1.0 gains on both
    # description sets and costs MRPC, where BM25 is at its ceiling, 0.001. Scales every dense-side term.
    dense: float = 1.0
    k1: float = K1
    b: float = B


def idf(n_docs: int, df: int) -> float:
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


def bm25(query: Sequence[str], docs: Sequence[Sequence[str]], df: dict[str, int], n_docs: int,
         k1: float = K1, b: float = B) -> list[float]:
    """BM25 of each doc (a token list) for the distinct `query` terms, idf from `df` over `n_docs`; the
    average length is the docs' own (the pool's)."""
    if not docs:
        return []
    avg = (sum(len(d) for d in docs) / len(docs)) or 1.0
    weights = {t: idf(max(n_docs, 1), df.get(t, 0)) for t in dict.fromkeys(query)}
    out = []
    for doc in docs:
        tf = Counter(t for t in doc if t in weights)
        norm = k1 * (1 - b + b * len(doc) / avg)
        out.append(sum(weights[t] * f * (k1 + 1) / (f + norm) for t, f in tf.items()))
    return out


def zscores(values: Sequence[float]) -> list[float]:
    if not values:
        return []
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    if sd < 1e-12:
        return [0.0] * len(values)
    return [(v - mean) / sd for v in values]


@dataclass
class Candidate:
    pk: int
    words: list[str]  # the passage's keyword tokens
    dense: float | None = None  # cosine, when the dense side returned it
    keyword_rank: int | None = None  # from 1, when the keyword side returned it
    dense_rank: int | None = None


def _gap(values: Sequence[float]) -> float:
    top = sorted(values, reverse=True)[:2]
    return top[0] - top[1] if len(top) == 2 else 0.0


def _pairs(pairs: Sequence[tuple[str, str]], at: dict[str, list[int]]) -> float:
    """Share of `pairs` (a, b) with b one or two positions after a, given the positions of the query terms."""
    if not pairs:
        return 0.0
    found = 0
    for a, b in pairs:
        after = {i + d for i in at.get(a, ()) for d in (1, 2)}
        found += any(j in after for j in at.get(b, ()))
    return found / len(pairs)


def _has_gram(text: str, gram: str) -> bool:
    """Whether `gram` (of cjk_bigrams) is among cjk_bigrams(text), for keyword tokens joined (already normalised):
    a bigram anywhere; a one-character run only standing alone between non-CJK characters. A substring search
    instead of the passage's own bigrams: 5x faster on a pool of Chinese man pages."""
    if len(gram) > 1:
        return gram in text
    at = text.find(gram)
    while at >= 0:
        if not cjk_bigrams(text[at - 1:at] if at else "") and not cjk_bigrams(text[at + 1:at + 2]):
            return True
        at = text.find(gram, at + 1)
    return False


def features(candidates: Sequence[Candidate], query_terms: Sequence[str], df: dict[str, int], n_docs: int,
             with_dense: bool, weights: Weights = Weights(), wanted: Collection[str] = FEATURES
             ) -> dict[str, list[float]]:
    """The `wanted` FEATURES per candidate (in order), each a list; the dense ones only `with_dense` and when the
    dense side returned a candidate. `words` is always there."""
    docs = [c.words for c in candidates]
    terms = list(dict.fromkeys(query_terms))
    words = zscores(bm25(terms, docs, df, n_docs, weights.k1, weights.b))
    out: dict[str, list[float]] = {"words": words}
    if "words_rr" in wanted:
        out["words_rr"] = [1.0 / c.keyword_rank if c.keyword_rank else 0.0 for c in candidates]
    if "coverage" in wanted or "pairs" in wanted:
        wanted_terms = set(terms)
        positions: list[dict[str, list[int]]] = []
        for doc in docs:
            at: dict[str, list[int]] = {}
            for i, t in enumerate(doc):
                if t in wanted_terms:
                    at.setdefault(t, []).append(i)
            positions.append(at)
        idfs = {t: idf(max(n_docs, 1), df.get(t, 0)) for t in terms}
        total = sum(idfs.values()) or 1.0
        if "coverage" in wanted:
            out["coverage"] = [sum(idfs[t] for t in at) / total for at in positions]
        if "pairs" in wanted:
            pairs = list(pairwise(terms))
            out["pairs"] = [_pairs(pairs, at) for at in positions]
    if "cjk" in wanted:
        grams = {g for t in terms for g in cjk_bigrams(t)}
        out["cjk"] = [sum(_has_gram("".join(d), g) for g in grams) / len(grams) if grams else 0.0 for d in docs]
    known = [c.dense for c in candidates if c.dense is not None]
    if with_dense and known:
        lowest = min(known)
        dense = zscores([c.dense if c.dense is not None else lowest for c in candidates])
        dense_gap, words_gap = _gap(dense), _gap(words)
        length = min(len(terms), 12) / 12
        out["dense"] = dense
        # a correction between the two sides: with no keyword candidate at all, the order is the cosine's
        both = any(c.keyword_rank for c in candidates)
        extra = {"dense_rr": lambda: [1.0 / c.dense_rank if c.dense_rank and both else 0.0 for c in candidates],
                 "dense_x_dense_gap": lambda: [d * dense_gap for d in dense],
                 "dense_x_words_gap": lambda: [d * words_gap for d in dense],
                 "dense_x_length": lambda: [d * length for d in dense]}
        out.update({name: make() for name, make in extra.items() if name in wanted})
    return out


def combine(feats: dict[str, list[float]], model: dict[str, float], dense_scale: float) -> list[float]:
    """Σ coefficient × feature per candidate; a dense-side feature's term is also × `dense_scale`."""
    n = len(next(iter(feats.values()), []))
    scores = [0.0] * n
    for name, coef in model.items():
        if coef == 0 or name not in feats:
            continue
        w = coef * (dense_scale if name in DENSE_FEATURES else 1.0)
        scores = [s + w * v for s, v in zip(scores, feats[name], strict=True)]
    return scores


def fuse(candidates: Sequence[Candidate], query_terms: Sequence[str], df: dict[str, int], n_docs: int,
         dense_weight: float, weights: Weights = Weights()) -> tuple[dict[int, float], dict[str, float]]:
    """Fused score per candidate pk, and the weights used ({"dense_weight"})."""
    if not candidates:
        return {}, {"dense_weight": 0.0}
    with_dense = dense_weight > 0 and any(c.dense is not None for c in candidates)
    model = dict(DENSE_MODEL if with_dense else WORDS_MODEL)
    feats = features(candidates, query_terms, df, n_docs, with_dense, weights, wanted=model.keys())
    w_dense = dense_weight * weights.dense if with_dense else 0.0
    model["words"] = model.get("words", 0.0) * weights.words
    fused = combine(feats, model, w_dense)
    # squashed to (0, 1), same order: a hit's score stays positive (a lone candidate's z-score is 0)
    return ({c.pk: 1.0 / (1.0 + math.exp(-s)) for c, s in zip(candidates, fused, strict=True)},
            {"dense_weight": round(w_dense, 4)})

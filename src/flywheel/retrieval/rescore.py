"""Hybrid re-scoring (fusion `auto`): the candidates both retrievers found are scored again on the passage itself
and fused by normalised score, instead of by rank.

1. The pool is the keyword side's top n and the dense side's top n, fetched once (the index already applied
   the tenant and the filters to both sides).
2. `words`: BM25 of every pooled passage over its keyword tokens, with the corpus-wide document frequencies the
   index reports, k1 = 0.9 and b = 0.4 (Anserini's defaults; FTS5's bm25() is fixed at 1.2 / 0.75, whose
   stronger length normalisation pushes down the longer passage that actually states the answer). A passage
   the dense side alone found gets its exact keyword score too, instead of no rank on that side.
3. `dense`: the embedder's cosine (a passage the keyword side alone found gets the lowest pooled cosine).
4. Each signal is z-scored over the pool and the two are added with weights words 1.0 and dense 1.0 × the
   language weight of `fusion.dense_weight` (0 for a Chinese question with an English-only embedder).

Measured on the development sets only (cmrc2018-sentence-dev, mrpc-train, and the `-dev` halves of
debian-desc-{en,zh} and manpages-{en,zh}; docs/retrieval.md has the held-out table). Also tried there and left out because they did not help: CJK character-bigram BM25 as a third signal
(−0.006 nDCG@10 at weight 0.3 on cmrc2018-sentence-dev), a query-term proximity bonus (−0.002 to −0.004 zh, ±0.001 en),
RM3-style pseudo-relevance feedback (−0.010 zh), and a dense weight that follows the two sides' top-10
agreement (±0.001 en).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

K1, B = 0.9, 0.4


@dataclass(frozen=True)
class Weights:
    words: float = 1.0
    # nDCG@10 at 0.5 / 1.0 / 1.5 on the English dev sets: debian-desc-en-dev 0.942 / 0.950 / 0.952,
    # manpages-en-dev 0.801 / 0.818 / 0.823, mrpc-train 0.964 / 0.963 / - (2.0: 0.957): 1.0 gains on both
    # description sets and costs MRPC, where BM25 is at its ceiling, 0.001
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


def fuse(candidates: Sequence[Candidate], query_terms: Sequence[str], df: dict[str, int], n_docs: int,
         dense_weight: float, weights: Weights = Weights()) -> tuple[dict[int, float], dict[str, float]]:
    """Fused score per candidate pk, and the weights used ({"dense_weight"})."""
    if not candidates:
        return {}, {"dense_weight": 0.0}
    words = zscores(bm25(query_terms, [c.words for c in candidates], df, n_docs, weights.k1, weights.b))
    fused = [weights.words * z for z in words]
    w_dense = 0.0
    known = [c.dense for c in candidates if c.dense is not None]
    if dense_weight > 0 and known:
        w_dense = dense_weight * weights.dense
        lowest = min(known)
        dense = zscores([c.dense if c.dense is not None else lowest for c in candidates])
        fused = [f + w_dense * d for f, d in zip(fused, dense, strict=True)]
    # squashed to (0, 1), same order: a hit's score stays positive (a lone candidate's z-score is 0)
    return ({c.pk: 1.0 / (1.0 + math.exp(-s)) for c, s in zip(candidates, fused, strict=True)},
            {"dense_weight": round(w_dense, 4)})

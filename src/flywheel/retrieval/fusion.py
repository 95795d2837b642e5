"""Fusing keyword and dense rankings.

- `rrf`: reciprocal-rank fusion, score(d) = Σ_i w_i / (k + rank_i(d)), ranks from 1; absent → no term.
- `weighted`: min-max normalise each retriever's scores to [0, 1] over its candidates, then Σ_i w_i · s_i(d).
- `dense_weight`: how much the dense side can help, from the languages the embedder covers: 0 when the query's
  language is not covered (an English-only model on a Chinese question), scaled by the share of the tenant's
  corpus in covered languages. `auto` fusion (rescore.py: both sides' candidates re-scored on the passage and
  fused by a fitted linear model over their z-scores and a few features) scales the dense side by this weight,
  and skips it entirely when the weight is negligible; a multilingual embedder (languages=None) gets weight 1
  everywhere. A question in a language the embedder reads as dictionary glosses (Chinese with the local MiniLM)
  gets GLOSSED_DENSE_WEIGHT of that.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
MIN_DENSE_WEIGHT = 0.05  # below this the dense side is not even computed
# Chosen on the Chinese dev sets only (docs/retrieval.md, "Chinese"): hybrid nDCG@10 − best single retriever at
# dense weight 1.0 / 0.5: debian-desc-zh-dev +0.039 / +0.037, manpages-zh-dev +0.058 / +0.051,
# cmrc2018-sentence-dev +0.007 / +0.021 (short passages, where glossed names are noise)
GLOSSED_DENSE_WEIGHT = 0.5


def rrf(rankings: dict[str, Sequence[K]], weights: dict[str, float] | None = None, k: int = 60) -> dict[K, float]:
    fused: dict[K, float] = {}
    for name, ranked in rankings.items():
        w = 1.0 if weights is None else weights.get(name, 1.0)
        if w <= 0:
            continue
        for rank, key in enumerate(ranked, start=1):
            fused[key] = fused.get(key, 0.0) + w / (k + rank)
    return fused


def minmax(scored: Sequence[tuple[K, float]]) -> dict[K, float]:
    if not scored:
        return {}
    values = [s for _, s in scored]
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        return {key: 1.0 for key, _ in scored}
    return {key: (s - lo) / (hi - lo) for key, s in scored}


def weighted(scores: dict[str, Sequence[tuple[K, float]]], weights: dict[str, float] | None = None) -> dict[K, float]:
    fused: dict[K, float] = {}
    for name, scored in scores.items():
        w = 1.0 if weights is None else weights.get(name, 1.0)
        if w <= 0:
            continue
        for key, s in minmax(scored).items():
            fused[key] = fused.get(key, 0.0) + w * s
    return fused


def dense_weight(languages: frozenset[str] | None, query_language: str, corpus: dict[str, int] | None = None,
                 glossed: frozenset[str] = frozenset()) -> float:
    """Weight of the dense side for one query on one tenant's corpus ({language: chunks}); `glossed`: the
    languages the embedder reads as glosses."""
    if languages is None:
        return 1.0
    if query_language and query_language not in languages:
        return 0.0
    trust = GLOSSED_DENSE_WEIGHT if query_language in glossed else 1.0
    total = sum((corpus or {}).values())
    if not total:
        return trust
    covered = sum(n for lang, n in (corpus or {}).items() if not lang or lang in languages)
    return trust * covered / total


def ranked(fused: dict[K, float], n: int) -> list[tuple[K, float]]:
    return sorted(fused.items(), key=lambda kv: -kv[1])[:n]

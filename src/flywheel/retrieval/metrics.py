"""Ranking metrics over one query's ranked ids and its graded relevance judgements ({id: grade}, grade > 0 is
relevant). nDCG uses linear gains (grade / log2(rank + 1)), as trec_eval and BEIR do."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def _relevant(qrels: Mapping[str, float]) -> set[str]:
    return {d for d, g in qrels.items() if g > 0}


def hit_rate(ranked: Sequence[str], qrels: Mapping[str, float], k: int) -> float:
    rel = _relevant(qrels)
    return 1.0 if any(d in rel for d in ranked[:k]) else 0.0


def recall_at_k(ranked: Sequence[str], qrels: Mapping[str, float], k: int) -> float:
    rel = _relevant(qrels)
    if not rel:
        return 0.0
    return len(rel & set(ranked[:k])) / len(rel)


def mrr_at_k(ranked: Sequence[str], qrels: Mapping[str, float], k: int) -> float:
    rel = _relevant(qrels)
    for i, d in enumerate(ranked[:k], start=1):
        if d in rel:
            return 1.0 / i
    return 0.0


def ndcg_at_k(ranked: Sequence[str], qrels: Mapping[str, float], k: int) -> float:
    dcg = sum(qrels.get(d, 0.0) / math.log2(i + 1) for i, d in enumerate(ranked[:k], start=1) if qrels.get(d, 0) > 0)
    ideal = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 1) for i, g in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def dedupe(ranked: Sequence[str]) -> list[str]:
    """First occurrence of each id (several chunks of one document count as that document once)."""
    return list(dict.fromkeys(ranked))


METRICS = {"ndcg": ndcg_at_k, "mrr": mrr_at_k, "recall": recall_at_k, "hit_rate": hit_rate}


def evaluate(run: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, float]],
             wanted: Sequence[str] = ("ndcg@10", "mrr@10", "recall@5", "recall@10")) -> dict[str, float]:
    """Mean of each metric (e.g. "ndcg@10") over the queries in `qrels`; a query missing from `run` scores 0."""
    out: dict[str, float] = {}
    for name in wanted:
        metric, _, k = name.partition("@")
        fn = METRICS[metric]
        values = [fn(dedupe(run.get(q, [])), rel, int(k)) for q, rel in qrels.items()]
        out[name] = round(sum(values) / len(values), 4) if values else 0.0
    return out

"""Topic clusters over trace vectors: k-means in numpy, keyword labels, emerging and vanishing topics.

    model = TopicModel.fit(Z_ref, ref_terms, seed=0)
    new, gone = model.compare(Z_cur, cur_terms, cur_ids)

k: `choose_k(n)` = √(n/4), between 2 and 12 (enough clusters to separate the topics of a product's traffic,
few enough that each holds a readable sample). A trace is *novel* when it lies farther from every reference
centroid than 95% of the reference's own traces; when a window holds clearly more novel traces than that 5%,
the novel ones are clustered and each cluster of at least MIN_CLUSTER traces is reported as emerging, labelled
by its keywords (CJK-aware tokens, stopwords dropped) with the traces nearest its centre as examples. A
reference cluster is vanishing when the window should hold at least 10 of its traces and holds under a tenth.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flywheel.text import QUESTION_WORDS, STOPWORDS

NOVEL_QUANTILE = 95.0
MIN_CLUSTER = 5
EXAMPLES = 5
# words that say nothing about a topic: function words and the ones a question is framed with (可以, 如何, how)
_NOT_TOPIC = STOPWORDS | QUESTION_WORDS


def choose_k(n: int) -> int:
    return int(min(12, max(2, round(math.sqrt(n / 4)))))


def kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """(centroids, labels) of k-means with k-means++ seeding; deterministic for a seed."""
    n = len(x)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    sq = np.einsum("ij,ij->i", x, x)
    centers = [x[rng.integers(n)]]
    d2 = np.maximum(sq - 2 * x @ centers[0] + centers[0] @ centers[0], 0)
    for _ in range(1, k):
        total = d2.sum()
        pick = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
        centers.append(x[pick])
        d2 = np.minimum(d2, np.maximum(sq - 2 * x @ x[pick] + x[pick] @ x[pick], 0))
    c = np.array(centers, dtype=np.float64)
    labels = np.zeros(n, dtype=np.int64)
    for it in range(iters):
        dist = sq[:, None] - 2 * x @ c.T + np.einsum("ij,ij->i", c, c)[None, :]
        new = dist.argmin(axis=1)
        if it and np.array_equal(new, labels):
            break
        labels = new
        for j in range(len(c)):
            members = x[labels == j]
            if len(members):
                c[j] = members.mean(axis=0)
    return c.astype(np.float32), labels


def distances(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Euclidean distances (n, k) of rows to centroids."""
    d2 = np.einsum("ij,ij->i", x, x)[:, None] - 2 * x @ c.T + np.einsum("ij,ij->i", c, c)[None, :]
    return np.sqrt(np.maximum(d2, 0))


def keywords(docs: Sequence[Sequence[str]], background: Counter[str], n_background: int, top: int = 5
             ) -> list[str]:
    """The terms that set `docs` apart: share of docs using the term × log inverse background frequency."""
    df: Counter[str] = Counter()
    for doc in docs:
        df.update(set(doc))
    n = max(1, len(docs))
    need = 2 if len(docs) >= 4 else 1
    scored = [(df[t] / n * math.log((1 + n_background + n) / (1 + background.get(t, 0) + df[t])), t)
              for t in df if df[t] >= need and len(t) > 1 and not t.isdigit() and t not in _NOT_TOPIC]
    return [t for _, t in sorted(scored, key=lambda s: (-s[0], s[1]))[:top]]


def document_frequency(docs: Sequence[Sequence[str]]) -> Counter[str]:
    df: Counter[str] = Counter()
    for doc in docs:
        df.update(set(doc))
    return df


@dataclass
class Cluster:
    label: str
    keywords: list[str]
    n: int
    examples: list[str]
    share: float = 0.0
    reference_share: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "keywords": self.keywords, "n": self.n, "examples": self.examples,
                "share": round(self.share, 4), "reference_share": round(self.reference_share, 4)}


def describe_cluster(x: np.ndarray, ids: Sequence[str], docs: Sequence[Sequence[str]], members: np.ndarray,
                     centre: np.ndarray, background: Counter[str], n_background: int) -> Cluster:
    words = keywords([docs[i] for i in members], background, n_background)
    order = members[np.argsort(distances(x[members], centre[None, :])[:, 0])]
    return Cluster(" / ".join(words[:3]) or "(no keywords)", words, len(members),
                   [ids[i] for i in order[:EXAMPLES]])


class TopicModel:
    """Reference topics: centroids, the novelty radius and each cluster's share, keywords and examples."""

    def __init__(self, centroids: np.ndarray, radius: float, shares: np.ndarray, clusters: list[Cluster],
                 background: Counter[str], n_docs: int, seed: int):
        self.centroids, self.radius, self.shares, self.clusters = centroids, radius, shares, clusters
        self.background, self.n_docs, self.seed = background, n_docs, seed

    @classmethod
    def fit(cls, x: np.ndarray, docs: Sequence[Sequence[str]], ids: Sequence[str] | None = None, *,
            k: int | None = None, seed: int = 0) -> TopicModel:
        ids = list(ids) if ids is not None else [str(i) for i in range(len(x))]
        k = choose_k(len(x)) if k is None else k
        centroids, labels = kmeans(x, k, seed)
        near = distances(x, centroids).min(axis=1)
        radius = float(np.percentile(near, NOVEL_QUANTILE)) if len(near) else 0.0
        background = document_frequency(docs)
        shares = np.bincount(labels, minlength=len(centroids)) / max(1, len(x))
        clusters = []
        for j in range(len(centroids)):
            members = np.flatnonzero(labels == j)
            c = describe_cluster(x, ids, docs, members, centroids[j], background, len(docs))
            c.share = c.reference_share = float(shares[j])
            clusters.append(c)
        return cls(centroids, radius, shares, clusters, background, len(docs), seed)

    def assign(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(nearest centroid, distance to it) per row."""
        d = distances(x, self.centroids)
        nearest = d.argmin(axis=1)
        return nearest, d[np.arange(len(x)), nearest]

    def compare(self, x: np.ndarray, docs: Sequence[Sequence[str]], ids: Sequence[str]
                ) -> tuple[list[Cluster], list[Cluster]]:
        """(emerging, vanishing) clusters of a window against the reference topics."""
        n = len(x)
        if n == 0:
            return [], []
        nearest, dist = self.assign(x)
        novel = np.flatnonzero(dist > self.radius)
        emerging: list[Cluster] = []
        expected = n * (1 - NOVEL_QUANTILE / 100)
        # clearly more novel traces than the reference's own 5% tail (4 standard deviations above it)
        if len(novel) >= max(MIN_CLUSTER, expected + 4 * math.sqrt(expected + 1)):
            sub = x[novel]
            centroids, labels = kmeans(sub, max(1, min(3, len(novel) // (2 * MIN_CLUSTER))), self.seed)
            for j in range(len(centroids)):
                members = novel[labels == j]
                if len(members) < max(MIN_CLUSTER, 0.03 * n):
                    continue
                c = describe_cluster(x, ids, docs, members, centroids[j], self.background, self.n_docs)
                c.share = len(members) / n
                emerging.append(c)
        counts = np.bincount(nearest, minlength=len(self.centroids))
        vanishing = []
        for j, ref in enumerate(self.clusters):
            want = n * self.shares[j]
            if want >= 10 and counts[j] < 0.1 * want:
                vanishing.append(Cluster(ref.label, ref.keywords, int(counts[j]), ref.examples,
                                         share=counts[j] / n, reference_share=float(self.shares[j])))
        emerging.sort(key=lambda c: -c.n)
        return emerging, vanishing

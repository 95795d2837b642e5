"""In-process vector search for one semantic-cache scope, in NumPy.

A scope holds up to ~100k unit vectors. A full float32 scan of 100k x 384 reads 150 MB per query, which is
tens of milliseconds on a busy machine, so larger scopes are searched in two steps:

1. random-hyperplane sign codes (SimHash, 256 bits): two unit vectors at angle θ disagree on each bit with
   probability θ/π, whatever the data. Only rows whose Hamming distance is within three standard deviations
   of what the cosine threshold implies are kept (recall ≥ 99.8 % at exactly the threshold, higher above);
2. those candidates are re-scored exactly with float32 dot products.

Small scopes (< EXACT_BELOW rows) are scanned exactly. The codes are stored one 64-bit word per row in
column-major arrays so XOR and popcount run over contiguous memory.
"""

from __future__ import annotations

import math

import numpy as np

BITS = 256
WORDS = BITS // 64
EXACT_BELOW = 8192
MAX_CANDIDATES = 4096  # bound on step 2; nearest by Hamming distance first when more pass step 1


def _planes(dim: int) -> np.ndarray:
    # Fixed seed: the codes are a pure function of the vector, so every process computes the same ones.
    return np.random.default_rng(20240607 + dim).standard_normal((dim, BITS)).astype(np.float32)


def hamming_cutoff(min_cosine: float, bits: int = BITS, z: float = 3.0) -> int:
    """Largest Hamming distance kept for a vector at cosine `min_cosine` (mean + z standard deviations)."""
    p = math.acos(max(-1.0, min(1.0, min_cosine))) / math.pi
    return min(bits, math.ceil(bits * p + z * math.sqrt(bits * p * (1 - p)) + 1))


class VectorIndex:
    """Append-only store of (id, unit vector, expiry) with thresholded top-k search."""

    def __init__(self, dim: int, capacity: int = 1024):
        self.dim = dim
        self.n = 0
        self._vectors = np.zeros((capacity, dim), dtype=np.float32)
        self._codes = np.zeros((WORDS, capacity), dtype=np.uint64)
        self._expires = np.full(capacity, np.inf, dtype=np.float64)
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._planes = _planes(dim)

    def __len__(self) -> int:
        return self.n

    def _grow(self, need: int) -> None:
        cap = self._vectors.shape[0]
        if need <= cap:
            return
        new = max(need, cap * 2)
        self._vectors = np.concatenate([self._vectors, np.zeros((new - cap, self.dim), np.float32)])
        self._codes = np.concatenate([self._codes, np.zeros((WORDS, new - cap), np.uint64)], axis=1)
        self._expires = np.concatenate([self._expires, np.full(new - cap, np.inf)])

    def _encode(self, vectors: np.ndarray) -> np.ndarray:
        bits = np.packbits((vectors @ self._planes) > 0, axis=1)  # (n, 32) uint8
        return np.ascontiguousarray(bits.view(np.uint64).T)  # (WORDS, n)

    def add(self, ids: list[str], vectors: np.ndarray, expires: list[float | None] | None = None) -> None:
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        if not ids:
            return
        start, end = self.n, self.n + len(ids)
        self._grow(end)
        self._vectors[start:end] = vectors
        self._codes[:, start:end] = self._encode(vectors)
        if expires is not None:
            self._expires[start:end] = [np.inf if e is None else e for e in expires]
        self._ids.extend(ids)
        self._row.update(zip(ids, range(start, end), strict=True))
        self.n = end

    def search(self, query: np.ndarray, *, min_cosine: float, k: int = 3, now: float | None = None
               ) -> list[tuple[str, float]]:
        """Up to k (id, cosine) with cosine ≥ min_cosine, best first; expired rows are skipped."""
        if self.n == 0:
            return []
        q = np.asarray(query, dtype=np.float32).reshape(self.dim)
        if self.n < EXACT_BELOW:
            rows = np.arange(self.n)
        else:
            rows = self._prefilter(q, min_cosine)
            if rows.size == 0:
                return []
        scores = self._vectors[rows] @ q if rows.size < self.n else self._vectors[: self.n] @ q
        keep = scores >= min_cosine
        if now is not None:
            keep &= self._expires[rows] > now
        rows, scores = rows[keep], scores[keep]
        if rows.size > k:
            top = np.argpartition(-scores, k)[:k]
            rows, scores = rows[top], scores[top]
        order = np.argsort(-scores)
        return [(self._ids[int(rows[i])], float(scores[i])) for i in order]

    def _prefilter(self, q: np.ndarray, min_cosine: float) -> np.ndarray:
        qcode = self._encode(q[None, :])[:, 0]
        dist = np.zeros(self.n, dtype=np.uint16)
        for w in range(WORDS):
            dist += np.bitwise_count(self._codes[w, : self.n] ^ qcode[w])
        rows = np.flatnonzero(dist <= hamming_cutoff(min_cosine))
        if rows.size > MAX_CANDIDATES:
            rows = rows[np.argpartition(dist[rows], MAX_CANDIDATES)[:MAX_CANDIDATES]]
        return rows

    def remove(self, entry_id: str) -> None:
        """Hide one id (it was found gone or expired in the backend); the row stays until compaction."""
        i = self._row.get(entry_id)
        if i is not None:
            self._expires[i] = -np.inf

    def live_fraction(self, now: float) -> float:
        return float(np.mean(self._expires[: self.n] > now)) if self.n else 1.0

    def compact(self, now: float) -> None:
        """Drop expired and removed rows (called when most of the index is dead)."""
        live = np.flatnonzero(self._expires[: self.n] > now)
        ids = [self._ids[i] for i in live]
        vectors, expires = self._vectors[live].copy(), self._expires[live].copy()
        self.__init__(self.dim, capacity=max(1024, live.size))  # type: ignore[misc]
        self.add(ids, vectors, [None if math.isinf(e) else float(e) for e in expires])

"""Statistics that do not overstate: Wilson intervals, an exact sign test, a percentile bootstrap.

    wilson(0.8, 20)          # (0.584, 0.919): 95 % Wilson score interval of a proportion
    sign_test_p(9, 2)        # 0.0654: two-sided exact binomial test of 9 wins vs 2 losses (ties dropped)
    bootstrap_ci(scores)     # 95 % percentile bootstrap of the mean (None when every score is equal)

The Wilson interval never has zero width for 0 < n, unlike the bootstrap of a sample whose values are all
equal (every pair a tie, every case passing); reports show it next to (or instead of) the bootstrap.
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054
MIN_N = 30  # below this many independent items, reports warn that the interval is wide
BOOTSTRAP_RESAMPLES = 2000


def wilson(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion `p` observed over `n` independent items."""
    if n <= 0:
        raise ValueError("wilson needs n ≥ 1")
    p = min(1.0, max(0.0, p))
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


def sign_test_p(wins: int, losses: int) -> float:
    """Two-sided exact sign test (binomial, p = ½) of wins against losses; ties are left out. 1.0 when
    there is no decisive pair."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return round(min(1.0, 2 * tail), 6)


def bootstrap_ci(
    scores: list[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> tuple[float, float] | None:
    """95 % percentile-bootstrap interval of the mean, or None when it would have zero width (all scores
    equal: resampling cannot show any uncertainty, which is not the same as there being none)."""
    if not scores or len(set(scores)) == 1:
        return None
    import numpy as np

    data = np.asarray(scores, dtype=float)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    step = max(1, 2_000_000 // max(1, len(data)))  # bound memory: resample in blocks
    for start in range(0, resamples, step):
        stop = min(resamples, start + step)
        means[start:stop] = data[rng.integers(0, len(data), (stop - start, len(data)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return round(float(low), 4), round(float(high), 4)

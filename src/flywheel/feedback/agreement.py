"""Agreement between annotators on nominal verdicts (pass/fail, a/b/tie …), with bootstrap 95 % intervals.

    from flywheel.feedback.agreement import agreement_report, majority
    report = agreement_report([("item-1", "ann", "pass"), ("item-1", "bob", "fail"), ...], n_boot=1000, seed=0)

Statistics (all nominal; missing labels allowed everywhere):

- Cohen's κ for each pair of annotators, on the items both labelled. Same value as
  `sklearn.metrics.cohen_kappa_score`.
- Fleiss' κ across all annotators. When every item has the same number of ratings this is the standard
  formula, same value as `statsmodels.stats.inter_rater.fleiss_kappa(table)`. When the number of ratings varies
  per item we use Gwet's generalisation (K. Gwet, Handbook of Inter-Rater Reliability; R package irrCAC,
  `fleiss.kappa.raw`): observed agreement = mean over the items with ≥ 2 ratings of
  Σ_k n_ik(n_ik − 1) / (r_i(r_i − 1)); chance agreement = Σ_k π_k², π_k = mean over the items with ≥ 1 rating
  of n_ik / r_i. It reduces to the standard formula when r_i is constant.
- Krippendorff's α (nominal), from the coincidence matrix over items with ≥ 2 ratings; same value as
  `krippendorff.alpha(reliability_data=…, level_of_measurement="nominal")`.

Bootstrap: items are resampled with replacement (all statistics see the same resampled item sets, drawn from
`numpy.random.default_rng(seed)`); every statistic is a ratio of sums of per-item quantities, so one matrix
product `counts (n_boot × items) @ features (items × f)` gives every resample at once. The interval is the 2.5
and 97.5 percentiles of the resamples where the statistic is defined.

A statistic is undefined (the plain functions return NaN; the report gives None and a reason) when fewer than
two items carry it, or when only one category occurs so chance agreement is already perfect.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flywheel.errors import UserError

BOOT_CHUNK = 250  # bootstrap resamples per matrix product: bounds memory at ~20 MB for 10,000 items
LEVELS = ("nominal",)

Array = np.ndarray[Any, Any]


# ----------------------------------------------------------------------------- coding labels into arrays


def _code(rows: Sequence[Sequence[Hashable | None]]) -> tuple[Array, int]:
    """Rows of values (None or NaN = missing; ragged rows allowed) → (items × slots int matrix, -1 missing; K)."""
    width = max((len(r) for r in rows), default=0)
    values: dict[Hashable, int] = {}
    matrix = np.full((len(rows), width), -1, dtype=np.int64)
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            matrix[i, j] = values.setdefault(v, len(values))
    return matrix, len(values)


def _counts(matrix: Array, k: int) -> Array:
    """items × K: how many ratings of each category every item got."""
    n = matrix.shape[0]
    present = matrix >= 0
    rows = np.broadcast_to(np.arange(n)[:, None], matrix.shape)[present]
    return np.bincount(rows * k + matrix[present], minlength=n * k).reshape(n, k).astype(np.float64)


# ----------------------------------------------------------------------------- features and statistics
# Each statistic = f(column sums of its per-item features). Sums over the real items give the point
# estimate; sums weighted by bootstrap counts give the resamples.


def _pair_features(x: Array, y: Array, k: int) -> Array:
    """Per item: [both labelled, agreed, one-hot of x (K), one-hot of y (K)], zero unless both labelled."""
    both = (x >= 0) & (y >= 0)
    f = np.zeros((x.shape[0], 2 + 2 * k))
    f[:, 0] = both
    f[:, 1] = both & (x == y)
    idx = np.flatnonzero(both)
    f[idx, 2 + x[idx]] = 1.0
    f[idx, 2 + k + y[idx]] = 1.0
    return f


def _cohen_from_sums(s: Array, k: int) -> Array:
    n, agreed = s[..., 0], s[..., 1]
    rows, cols = s[..., 2:2 + k], s[..., 2 + k:2 + 2 * k]
    with np.errstate(divide="ignore", invalid="ignore"):
        expected_agree = (rows * cols).sum(-1) / n
        kappa = 1.0 - (n - agreed) / (n - expected_agree)
    return np.where((n >= 2) & (n - expected_agree > 1e-12 * np.maximum(n, 1)), kappa, np.nan)


def _fleiss_features(counts: Array) -> Array:
    """Per item: [agreement term if ≥2 ratings, has ≥2 ratings, rated at all, n_ik / r_i (K)]."""
    r = counts.sum(1)
    f = np.zeros((counts.shape[0], 3 + counts.shape[1]))
    multi = r >= 2
    f[multi, 0] = (counts[multi] * (counts[multi] - 1)).sum(1) / (r[multi] * (r[multi] - 1))
    f[:, 1] = multi
    f[:, 2] = r >= 1
    f[r >= 1, 3:] = counts[r >= 1] / r[r >= 1, None]
    return f


def _fleiss_from_sums(s: Array) -> Array:
    with np.errstate(divide="ignore", invalid="ignore"):
        p_obs = s[..., 0] / s[..., 1]
        pi = s[..., 3:] / s[..., 2:3]
        p_exp = (pi * pi).sum(-1)
        kappa = (p_obs - p_exp) / (1.0 - p_exp)
    return np.where((s[..., 1] >= 2) & (1.0 - p_exp > 1e-12), kappa, np.nan)


def _alpha_features(counts: Array) -> Array:
    """Per pairable item (≥2 ratings): [1, off-diagonal coincidences, n_ik (K)]. Row sums of an item's coincidence
    matrix are its own counts, so the expected disagreement needs only the K totals."""
    m = counts.sum(1)
    f = np.zeros((counts.shape[0], 2 + counts.shape[1]))
    pairable = m >= 2
    mp = m[pairable]
    f[pairable, 0] = 1.0
    f[pairable, 1] = (mp * mp - (counts[pairable] ** 2).sum(1)) / (mp - 1)
    f[pairable, 2:] = counts[pairable]
    return f


def _alpha_from_sums(s: Array) -> Array:
    n_c = s[..., 2:]
    n = n_c.sum(-1)
    expected = n * n - (n_c * n_c).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = 1.0 - (n - 1.0) * s[..., 1] / expected
    return np.where((s[..., 0] >= 2) & (expected > 1e-12 * np.maximum(n * n, 1)), alpha, np.nan)


# ----------------------------------------------------------------------------- plain functions


def cohen_kappa(a: Sequence[Hashable | None], b: Sequence[Hashable | None]) -> float:
    """Cohen's κ of two annotators' labels on the same items (None = not labelled; such items are skipped).
    NaN when undefined (fewer than 2 common items, or both used one and the same category only)."""
    if len(a) != len(b):
        raise ValueError(f"cohen_kappa needs two label lists of the same length, got {len(a)} and {len(b)}")
    matrix, k = _code([list(pair) for pair in zip(a, b, strict=True)])
    if matrix.shape[1] < 2:
        return math.nan
    s = _pair_features(matrix[:, 0], matrix[:, 1], k).sum(0)
    return float(_cohen_from_sums(s, k))


def fleiss_kappa(ratings: Sequence[Sequence[Hashable | None]]) -> float:
    """Fleiss' κ of items × annotators labels (None = missing; rows may be ragged). Equal ratings per item: the
    standard formula (= statsmodels); varying: Gwet's generalisation (see the module docstring). NaN when
    undefined (fewer than 2 items with ≥ 2 ratings, or one category only)."""
    matrix, k = _code(ratings)
    return float(_fleiss_from_sums(_fleiss_features(_counts(matrix, k)).sum(0)))


def krippendorff_alpha(units: Sequence[Sequence[Hashable | None]], level: str = "nominal") -> float:
    """Krippendorff's α of items × annotators labels (one row per unit; None = missing; rows may be ragged).
    Only the nominal level is implemented. NaN when undefined (one category only among pairable values)."""
    if level not in LEVELS:
        raise UserError(f"krippendorff_alpha: level {level!r} is not supported", hint="use level='nominal'")
    matrix, k = _code(units)
    return float(_alpha_from_sums(_alpha_features(_counts(matrix, k)).sum(0)))


# ----------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class _Labels:
    items: list[str]
    annotators: list[str]
    categories: list[str]
    matrix: Array  # items × annotators, category index or -1
    n_labels: int


def _index(values: list[str], *, sort: bool) -> tuple[list[str], Array]:
    """Distinct values (sorted, or in order of first appearance) and each value's position among them."""
    distinct = list(dict.fromkeys(values))
    if sort:
        distinct.sort()
    position = {v: i for i, v in enumerate(distinct)}
    return distinct, np.array([position[v] for v in values], dtype=np.int64)


def _collect(labels: Iterable[tuple[str, str, str]]) -> _Labels:
    rows = list(labels)
    if not set(map(type, rows)) <= {tuple, list} or not set(map(len, rows)) <= {3}:  # C loops: fast path
        for n, label in enumerate(rows):
            if not isinstance(label, (tuple, list)) or len(label) != 3:
                raise UserError(f"label #{n + 1} is {label!r}, not an (item_id, annotator, verdict) triple")
    columns = [list(map(str, col)) for col in zip(*rows, strict=True)] if rows else [[], [], []]
    items, item_codes = _index(columns[0], sort=False)
    annotators, ann_codes = _index(columns[1], sort=True)
    categories, cat_codes = _index(columns[2], sort=True)
    matrix = np.full((len(items), len(annotators)), -1, dtype=np.int64)
    if rows:
        keys = item_codes * len(annotators) + ann_codes
        if np.unique(keys).size < keys.size:
            seen: dict[int, int] = {}
            for n, key in enumerate(keys.tolist()):
                if key in seen:
                    first = seen[key]
                    raise UserError(f"annotator {annotators[key % len(annotators)]!r} labelled item "
                                    f"{items[key // len(annotators)]!r} twice (labels #{first + 1} and #{n + 1}: "
                                    f"{rows[first][2]!r}, {rows[n][2]!r})",
                                    hint="keep one label per annotator and item")
                seen[key] = n
        matrix[item_codes, ann_codes] = cat_codes
    return _Labels(items, annotators, categories, matrix, len(rows))


def majority(labels: Iterable[tuple[str, str, str]]) -> dict[str, str | None]:
    """item_id → the verdict most annotators gave, or None on a tie for first place."""
    data = _collect(labels)
    out: dict[str, str | None] = {}
    for i, item in enumerate(data.items):
        top = Counter(int(c) for c in data.matrix[i] if c >= 0).most_common(2)
        tie = len(top) > 1 and top[0][1] == top[1][1]
        out[item] = None if tie else data.categories[top[0][0]]
    return out


def _bootstrap(features: Array, n_boot: int, seed: int) -> Array:
    """n_boot × f: feature sums over items resampled with replacement. The product runs in float32 (half the
    memory traffic; counts stay exact, fractions carry ~1e-6 relative error, far below the bootstrap's own)."""
    n = features.shape[0]
    rng = np.random.default_rng(seed)
    features32 = features.astype(np.float32)
    out = np.empty((n_boot, features.shape[1]))
    for start in range(0, n_boot, BOOT_CHUNK):
        rows = min(BOOT_CHUNK, n_boot - start)
        picks = rng.integers(0, n, size=(rows, n)) + (np.arange(rows) * n)[:, None]
        weights = np.bincount(picks.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float32)
        out[start:start + rows] = weights @ features32
    return out


def _interval(samples: Array | None) -> list[float] | None:
    if samples is None:
        return None
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return None
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return [float(lo), float(hi)]


def _value(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _why_undefined(n_units: int, what: str, n_categories: int) -> str:
    if n_units < 2:
        return f"fewer than 2 items {what}"
    if n_categories < 2:
        return "only one category used: chance agreement is already perfect"
    return "only one category used on the items that count: chance agreement is already perfect"


def agreement_report(labels: Iterable[tuple[str, str, str]], *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Cohen's κ per pair, Fleiss' κ and Krippendorff's α with bootstrap 95 % intervals, and the disagreements.

    `labels` are (item_id, annotator, verdict) triples, at most one per (item, annotator) (a second one is a
    UserError). Undefined statistics are None (never NaN) and `reasons` says why, keyed by statistic
    ("fleiss_kappa", "krippendorff_alpha"); a pair with an undefined κ carries its own `reason`. Only pairs that
    share at least one item are listed. n_boot=0 skips the intervals (all None).
    """
    if n_boot < 0:
        raise UserError(f"n_boot must be 0 or more, got {n_boot}")
    data = _collect(labels)
    k = len(data.categories)
    counts = _counts(data.matrix, k)
    pairs = []
    blocks = []
    for a, b in itertools.combinations(range(len(data.annotators)), 2):
        f = _pair_features(data.matrix[:, a], data.matrix[:, b], k)
        if f[:, 0].any():
            pairs.append((a, b, f.shape[1]))
            blocks.append(f)
    blocks += [_fleiss_features(counts), _alpha_features(counts)]
    features = np.concatenate(blocks, axis=1) if data.items else np.zeros((0, sum(b.shape[1] for b in blocks)))
    point = features.sum(0)
    # resampled in item-id order: the intervals of the same labels do not depend on the order they were read in
    # (`flywheel review agreement` and an export's datasheet print the same ones)
    by_id = np.array(sorted(range(len(data.items)), key=data.items.__getitem__), dtype=np.int64)
    boot = _bootstrap(features[by_id], n_boot, seed) if n_boot and len(data.items) >= 2 else None

    out_pairs: list[dict[str, Any]] = []
    col = 0
    for a, b, width in pairs:
        s = point[col:col + width]
        kappa = _value(_cohen_from_sums(s, k))
        entry: dict[str, Any] = {
            "annotators": [data.annotators[a], data.annotators[b]],
            "cohen_kappa": kappa,
            "ci95": _interval(None if kappa is None or boot is None
                              else _cohen_from_sums(boot[:, col:col + width], k)),
            "n": int(s[0]),
        }
        if kappa is None:
            used = int(((s[2:2 + k] + s[2 + k:]) > 0).sum())
            entry["reason"] = _why_undefined(int(s[0]), "labelled by both", used)
        out_pairs.append(entry)
        col += width

    reasons: dict[str, str] = {}
    f_width = 3 + k
    fs = point[col:col + f_width]
    fleiss = _value(_fleiss_from_sums(fs))
    if fleiss is None:
        reasons["fleiss_kappa"] = _why_undefined(int(fs[1]), "with 2 or more labels", k)
    fleiss_ci = _interval(None if fleiss is None or boot is None else _fleiss_from_sums(boot[:, col:col + f_width]))
    col += f_width
    als = point[col:]
    alpha = _value(_alpha_from_sums(als))
    if alpha is None:
        reasons["krippendorff_alpha"] = _why_undefined(int(als[0]), "with 2 or more labels", k)
    alpha_ci = _interval(None if alpha is None or boot is None else _alpha_from_sums(boot[:, col:]))

    rated = data.matrix >= 0
    first = np.where(rated, data.matrix, np.iinfo(np.int64).max).min(1, initial=np.iinfo(np.int64).max)
    differs = np.flatnonzero((rated & (data.matrix != first[:, None])).any(1))
    disagreements = [
        {"item_id": data.items[i],
         "verdicts": {ann: data.categories[c] for ann, c in zip(data.annotators, row, strict=True) if c >= 0}}
        for i, row in zip(differs.tolist(), data.matrix[differs].tolist(), strict=True)
    ]
    return {
        "n_items": len(data.items),
        "n_labels": data.n_labels,
        "annotators": data.annotators,
        "pairs": out_pairs,
        "fleiss_kappa": fleiss,
        "fleiss_ci95": fleiss_ci,
        "krippendorff_alpha": alpha,
        "krippendorff_ci95": alpha_ci,
        "disagreements": disagreements,
        "reasons": reasons,
    }

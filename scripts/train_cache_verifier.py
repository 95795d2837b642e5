#!/usr/bin/env python3
"""Fit the semantic-cache verifier (src/flywheel/cache/verifier.json) on the MRPC training split.

    python scripts/train_cache_verifier.py [--data ../shared/data/mrpc] [--vectors /tmp/mrpc-train.npz]

Training examples mirror what the cache sees at lookup time: sentence 1 of every pair is "cached",
sentence 2 is the query. Each query contributes its own pair (label = MRPC's paraphrase label) and its
nearest other cached sentences at cosine ≥ 0.6 (label 0: serving those counts as a wrong hit; many are the
number- and name-swapped near-duplicates that embeddings cannot tell apart). Pairs with the same words
(case, punctuation and contractions aside) are left out of fitting: the verifier accepts them by rule.

The model (gradient-boosted depth-3 trees by default, or --model logistic) is fitted on
flywheel.cache.verifier.features. The operating point (cosine floor, acceptance probability) is chosen out
of fold, on the training split only: the highest hit precision in the cache's own lookup protocol (top 3
candidates by cosine, first accepted one served) whose hit rate is at least --min-hit-rate. The model is
written as JSON (tree arrays or coefficients), never a pickle, and checked to reproduce scikit-learn's scores.
Remember to set `SemanticCacheConfig.threshold`'s default to the chosen cosine floor (printed at the end).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from flywheel.bench.cache import read_mrpc
from flywheel.cache.verifier import FEATURES, WEIGHTS_PATH, Verifier, features, same_words

NEIGHBOURS = 4
NEIGHBOUR_FLOOR = 0.6
TOP_K = 3  # flywheel.cache.semantic.TOP_K
COSINES = (0.75, 0.80, 0.85, 0.90)
CUTS = tuple(round(x, 2) for x in np.arange(0.40, 0.91, 0.05))


def embed_pairs(rows: list[tuple[int, str, str]], cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    if cache is not None and cache.exists():
        data = np.load(cache)
        if len(data["a"]) == len(rows):
            return data["a"], data["b"]
    from flywheel.cache.embedding import default_embedder

    emb = default_embedder()
    t = time.time()
    a, b = emb.embed([r[1] for r in rows]), emb.embed([r[2] for r in rows])
    print(f"embedded {2 * len(rows)} sentences in {time.time() - t:.0f} s", file=sys.stderr)
    if cache is not None:
        np.savez(cache, a=a, b=b)
    return a, b


def build(rows: list[tuple[int, str, str]], a: np.ndarray, b: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Feature matrix, labels, query index, cosine, and whether the verifier's same-words rule decides the
    example (those are accepted without the model, so they are left out of fitting)."""
    sims = b @ a.T
    X, y, qi, cos, same = [], [], [], [], []
    for i, (label, _s1, s2) in enumerate(rows):
        cands = [i] + [int(j) for j in np.argsort(-sims[i])[:NEIGHBOURS] if j != i and sims[i, j] >= NEIGHBOUR_FLOOR]
        for j in cands:
            X.append(features(s2, rows[j][1], float(sims[i, j])))
            y.append(int(j == i and label == 1))
            qi.append(i)
            cos.append(float(sims[i, j]))
            same.append(same_words(s2, rows[j][1]))
    return np.array(X), np.array(y), np.array(qi), np.array(cos), np.array(same)


def fit(kind: str, X: np.ndarray, y: np.ndarray):
    """A fitted model and a function giving P(serving is right) for a feature matrix."""
    if kind == "logistic":
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(X)
        model = LogisticRegression(C=1.0, max_iter=5000).fit(scaler.transform(X), y)
        return (scaler, model), lambda Z: model.predict_proba(scaler.transform(Z))[:, 1]
    from sklearn.ensemble import GradientBoostingClassifier

    model = GradientBoostingClassifier(n_estimators=150, max_depth=3, learning_rate=0.05, subsample=0.8,
                                       random_state=0).fit(X, y)
    return model, lambda Z: model.predict_proba(Z)[:, 1]


def export(kind: str, fitted) -> dict:
    if kind == "logistic":
        scaler, model = fitted
        return {"kind": "logistic", "mean": [float(v) for v in scaler.mean_],
                "scale": [float(v) for v in scaler.scale_], "coef": [float(v) for v in model.coef_[0]],
                "intercept": float(model.intercept_[0])}
    model = fitted
    trees = []
    for est in model.estimators_[:, 0]:
        t = est.tree_
        trees.append({"feature": [int(v) for v in t.feature], "threshold": [float(v) for v in t.threshold],
                      "left": [int(v) for v in t.children_left], "right": [int(v) for v in t.children_right],
                      "value": [float(v) for v in t.value[:, 0, 0]]})
    return {"kind": "gbdt", "init": float(model._raw_predict_init(np.zeros((1, len(FEATURES))))[0, 0]),
            "learning_rate": float(model.learning_rate), "trees": trees}


def lookup_protocol(p: np.ndarray, y: np.ndarray, qi: np.ndarray, cos: np.ndarray, n_queries: int,
                    cosine_floor: float, p_cut: float) -> tuple[float, float]:
    """Hit rate and precision of 'first of the top-3 candidates with cos ≥ floor and p ≥ cut' per query."""
    hits = right = 0
    order = np.lexsort((-cos, qi))
    starts = np.searchsorted(qi[order], np.arange(n_queries))
    ends = np.searchsorted(qi[order], np.arange(n_queries), side="right")
    for s, e in zip(starts, ends, strict=True):
        for k in order[s:e][:TOP_K]:
            if cos[k] >= cosine_floor and p[k] >= p_cut:
                hits += 1
                right += int(y[k])
                break
    return hits / n_queries, right / max(hits, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "mrpc")
    ap.add_argument("--vectors", type=Path, default=None, help="npz file to reuse / save the embeddings")
    ap.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    ap.add_argument("--model", choices=("gbdt", "logistic"), default="gbdt")
    ap.add_argument("--min-hit-rate", type=float, default=0.25)
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()

    rows = read_mrpc(args.data / "msr_paraphrase_train.txt")
    a, b = embed_pairs(rows, args.vectors)
    X, y, qi, cos, same = build(rows, a, b)
    print(f"{len(rows)} MRPC train pairs -> {len(y)} examples ({int(same.sum())} same-words, by rule), "
          f"{y.mean():.3f} positive", file=sys.stderr)

    # Out-of-fold probabilities, folds by query so a query's candidates never straddle train and test.
    fold = np.random.default_rng(0).integers(0, args.folds, size=len(rows))[qi]
    oof = np.zeros(len(y))
    for f in range(args.folds):
        _fitted, predict = fit(args.model, X[(fold != f) & ~same], y[(fold != f) & ~same])
        oof[fold == f] = predict(X[fold == f])
    oof[same] = 1.0
    grid = [(c, p, *lookup_protocol(oof, y, qi, cos, len(rows), c, p)) for c in COSINES for p in CUTS]
    ok = [g for g in grid if g[2] >= args.min_hit_rate]
    if not ok:
        raise SystemExit(f"no operating point reaches hit rate {args.min_hit_rate} out of fold")
    cosine, cut, rate, precision = max(ok, key=lambda g: (round(g[3], 3), g[2]))
    unverified = lookup_protocol(np.ones(len(y)), y, qi, cos, len(rows), cosine, 0.0)

    fitted, predict = fit(args.model, X[~same], y[~same])
    weights = {
        **export(args.model, fitted),
        "trained_on": "MRPC msr_paraphrase_train.txt (Microsoft Research Paraphrase Corpus, research use): own "
                      "pairs labelled by MRPC, nearest other sentences as negatives",
        "embedder": "all-MiniLM-L6-v2",
        "features": list(FEATURES),
        "threshold": cut,
        "cosine_threshold": cosine,
        "out_of_fold": {"hit_rate": round(rate, 4), "hit_precision": round(precision, 4),
                        "unverified_hit_rate": round(unverified[0], 4),
                        "unverified_hit_precision": round(unverified[1], 4)},
        "examples": int((~same).sum()),
    }
    check = Verifier(weights)
    ours = np.array([1 / (1 + np.exp(-check.score(list(x)))) for x in X[~same][:500]])
    drift = float(np.abs(ours - predict(X[~same][:500])).max())
    if drift > 1e-6:
        raise SystemExit(f"exported model does not reproduce scikit-learn's probabilities (max diff {drift:.2e})")
    args.out.write_text(json.dumps(weights, separators=(",", ":")) + "\n", encoding="utf-8")
    print(json.dumps({k: weights[k] for k in ("kind", "threshold", "cosine_threshold", "out_of_fold")}))
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB); semantic cache default threshold "
          f"(SemanticCacheConfig.threshold) should be {cosine}", file=sys.stderr)


if __name__ == "__main__":
    main()

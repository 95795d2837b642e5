"""Query-level router: a classifier trained on per-case eval outcomes that sends each query to the small model
unless it predicts the small model fails it (`flywheel route train-router`; served by gateway/routes.py).

    outcomes = pair_outcomes(small_run.results, strong_run.results)       # the same cases, both models
    fit = train_router(outcomes, features="tfidf", target_quality=0.95)
    save_router(root / "routers/ask", fit, meta={...})

Label: 1 when the small model fails the case (fewer than half of its repeats pass). Features and the fitting are
flywheel.loop.classifier's (the query as the input, an empty output), so the gateway scores with the same code
(checks.trained.TrainedModel). The cases are split by normalised input (loop.labelled.split: an input is never
on both sides). The threshold is picked on the training part only, from out-of-fold predictions (grouped k-fold
inside the training part, so the probabilities are not the in-sample, overconfident ones): the threshold that
sends the most queries to small (then: the lowest cost) while the routed answers keep `target_quality` of the
strong model's pass rate. The model saved is the one fitted on the whole training part, and the held-out numbers
are measured with exactly that model and threshold.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.checks.trained import FEATURES, TrainedModel, embedding, idf_of, sigmoid, term_counts
from flywheel.errors import UserError
from flywheel.gateway.routes import ROUTER_KIND
from flywheel.loop.classifier import MIN_EXAMPLES, _save, fit_logistic, metrics
from flywheel.loop.labelled import check_no_leak, norm_input, split
from flywheel.retrieval.embedders import vector_name

Array = np.ndarray[Any, Any]
ROUTERS_DIR = Path("routers")  # next to flywheel.yaml, versioned with it (.flywheel/ is git-ignored)
FOLDS = 5


@dataclass
class Outcome:
    """One case as both models did on it: pass share over its repeats, mean measured cost per execution."""

    case_id: str
    input: str
    small: float
    strong: float
    small_cost: float
    strong_cost: float

    @property
    def small_fails(self) -> bool:
        return self.small < 0.5


@dataclass
class RouterFit:
    features: str
    threshold: float
    weights: Array
    bias: float
    idf: Array | None
    report: dict[str, Any]
    embedder: str | None = None
    train_ids: list[str] = field(default_factory=list)


def pair_outcomes(small: list[Any], strong: list[Any]) -> list[Outcome]:
    """Per case id found in both result lists (CaseRun-like: case_id, input, passed, cost_usd)."""

    def by_case(results: list[Any]) -> dict[str, tuple[str, float, float]]:
        groups: dict[str, list[Any]] = defaultdict(list)
        for r in results:
            groups[r.case_id].append(r)
        return {cid: (rs[0].input or "", sum(bool(r.passed) for r in rs) / len(rs),
                      sum(float(r.cost_usd or 0.0) for r in rs) / len(rs)) for cid, rs in groups.items()}

    a, b = by_case(small), by_case(strong)
    return [Outcome(cid, a[cid][0] or b[cid][0], a[cid][1], b[cid][1], a[cid][2], b[cid][2])
            for cid in sorted(set(a) & set(b)) if (a[cid][0] or b[cid][0]).strip()]


def outcomes_from_runs(runs: Any, refs: list[str], *, suite: str, small: str, strong: str
                       ) -> tuple[list[Outcome], list[dict[str, Any]], list[str]]:
    """The outcomes of two stored eval runs (ids or prefixes, small's first), checked to be runs of `suite` with
    those models; also the run rows and warnings."""
    if len(refs) != 2:
        raise UserError(f"--runs takes two run ids, the small model's then the strong model's (got {len(refs)})",
                        hint="e.g. --runs 3f2a9c,8b1d07 (see `flywheel eval --list`)")
    rows, results, warnings = [], [], []
    for ref, alias in zip(refs, (small, strong), strict=True):
        row = runs.get(ref)
        rid = str(row["id"])[:12]
        if row["suite"] != suite:
            raise UserError(f"run {rid} is a run of suite '{row['suite']}', not '{suite}'",
                            hint="give runs of the suite passed with --suite")
        if row.get("model") not in (None, alias):
            raise UserError(f"run {rid} ran model '{row['model']}', not '{alias}'",
                            hint="--runs lists the small model's run first, then the strong model's")
        if row.get("model") is None:
            warnings.append(f"run {rid} ran the suite's own target, not a forced model; assumed to be '{alias}'")
        if row.get("status") != "finished":
            warnings.append(f"run {rid} is {row.get('status')}: only the cases it finished are used")
        got = runs.load_results(row["id"])
        if not got:
            raise UserError(f"run {rid} has no per-case results", hint="run the suite again (leave out --runs)")
        rows.append(row)
        results.append(got)
    return pair_outcomes(results[0], results[1]), rows, warnings


# ---------------------------------------------------------------------------- fitting and the threshold


def _features(inputs: list[str], features: str, embedder: Any) -> tuple[Array, Any]:
    """Raw rows: log term counts (IDF is fitted per training set) or the embeddings."""
    if features == "tfidf":
        return term_counts(inputs, [""] * len(inputs)), None
    if embedder is None:
        from flywheel.retrieval.embedders import local_embedder

        embedder = local_embedder()
    return embedding(inputs, [""] * len(inputs), embedder), embedder


def _fit(raw: Array, y: Array, rows: Array, features: str) -> tuple[Array, float, Array | None]:
    idf = idf_of(raw[rows]) if features == "tfidf" else None
    x = _scaled(raw[rows], idf)
    # Columns that are zero in every fitted row get no gradient but the L2 pull towards 0, where they start: fitting
    # on the active columns only gives the same weights, many times faster (the hashed space is mostly empty).
    active = np.flatnonzero(np.any(x != 0, axis=0))
    w_active, b = fit_logistic(np.ascontiguousarray(x[:, active]), y[rows])
    w = np.zeros(x.shape[1], dtype=np.float32)
    w[active] = w_active
    return w, b, idf


def _scaled(raw: Array, idf: Array | None) -> Array:
    if idf is None:
        return raw
    x = raw * idf
    return np.asarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12))


def _out_of_fold(raw: Array, y: Array, keys: list[str], train: Array, features: str, seed: int) -> Array:
    """P(small fails) for each training row from a model that did not see its input (grouped k-fold)."""
    groups = sorted({k for k, t in zip(keys, train, strict=True) if t},
                    key=lambda k: hashlib.sha256(f"fold{seed}\0{k}".encode()).hexdigest())
    k = min(FOLDS, len(groups))
    fold_of = {g: i % k for i, g in enumerate(groups)}
    fold = np.asarray([fold_of.get(key, -1) for key in keys])
    p = np.zeros(len(keys), dtype=np.float64)
    for f in range(k):
        fit_rows, pred_rows = train & (fold != f), train & (fold == f)
        if y[fit_rows].min() == y[fit_rows].max():  # one class only: its rate is the best guess
            p[pred_rows] = float(y[fit_rows].mean())
            continue
        w, b, idf = _fit(raw, y, fit_rows, features)
        p[pred_rows] = sigmoid(_scaled(raw[pred_rows], idf) @ w + b)
    return p[train]


def pick_threshold(p: Array, cases: list[Outcome], target: float) -> float:
    """The threshold (strong when p > t) sending the most cost to small while keeping `target` of the strong
    model's pass rate on `cases`; ties in p move together."""
    order = np.argsort(p, kind="stable")
    ps = p[order]
    small_q = np.asarray([cases[i].small for i in order])
    strong_q = np.asarray([cases[i].strong for i in order])
    small_c = np.asarray([cases[i].small_cost for i in order])
    strong_c = np.asarray([cases[i].strong_cost for i in order])
    n, strong_total = len(cases), float(strong_q.sum())
    best: tuple[float, int] | None = None  # (cost, -k): lowest cost, then most queries to small
    best_k = 0
    for k in range(n + 1):  # the k lowest-p cases go to small
        if 0 < k < n and ps[k - 1] == ps[k]:
            continue
        quality = float(small_q[:k].sum() + strong_q[k:].sum())
        if strong_total > 0 and quality < target * strong_total - 1e-9:
            continue
        key = (round(float(small_c[:k].sum() + strong_c[k:].sum()), 12), -k)
        if best is None or key < best:
            best, best_k = key, k
    if best_k == n:
        return 1.0
    if best_k == 0:
        return float(max(0.0, ps[0] / 2)) if n else 1.0
    return float((ps[best_k - 1] + ps[best_k]) / 2)


def routed_numbers(p: Array, cases: list[Outcome], threshold: float) -> dict[str, Any]:
    """What routing `cases` with these probabilities and this threshold gives, next to all-strong / all-small."""
    to_small = p <= threshold
    n = len(cases)
    small_q = np.asarray([c.small for c in cases])
    strong_q = np.asarray([c.strong for c in cases])
    small_c = np.asarray([c.small_cost for c in cases])
    strong_c = np.asarray([c.strong_cost for c in cases])
    routed_q = float(np.where(to_small, small_q, strong_q).mean()) if n else 0.0
    routed_c = float(np.where(to_small, small_c, strong_c).sum())
    strong_rate, small_rate = float(strong_q.mean()) if n else 0.0, float(small_q.mean()) if n else 0.0
    share = float(to_small.mean()) if n else 0.0
    random_q = share * small_rate + (1 - share) * strong_rate  # the same share sent to small at random
    all_strong_c = float(strong_c.sum())
    truth = [int(not c.small_fails) for c in cases]
    return {
        "n": n, "to_small": int(to_small.sum()), "small_share": round(share, 4),
        "pass_rate": {"routed": round(routed_q, 4), "strong": round(strong_rate, 4), "small": round(small_rate, 4),
                      "random_same_share": round(random_q, 4)},
        "quality_kept": round(routed_q / strong_rate, 4) if strong_rate else None,
        "quality_kept_random_same_share": round(random_q / strong_rate, 4) if strong_rate else None,
        "cost_usd": {"routed": round(routed_c, 8), "all_strong": round(all_strong_c, 8),
                     "all_small": round(float(small_c.sum()), 8)},
        "cost_saved": round(1 - routed_c / all_strong_c, 4) if all_strong_c else None,
        # the classifier as a "small passes" detector: pass = sent to small
        "classifier": metrics(truth, [int(v) for v in to_small]),
    }


def train_router(cases: list[Outcome], *, features: str = "tfidf", target_quality: float = 0.95,
                 heldout: float = 0.3, seed: int = 0, embedder: Any = None) -> RouterFit:
    if features not in FEATURES:
        raise UserError(f"--features must be one of {', '.join(FEATURES)}, got {features!r}")
    if not 0.0 < target_quality <= 1.0:
        raise UserError(f"--target-quality is a share of the strong model's pass rate in (0, 1], got {target_quality}")
    if not 0.0 < heldout < 1.0:
        raise UserError(f"--heldout is a share between 0 and 1 (exclusive), got {heldout}")
    fails = sum(c.small_fails for c in cases)
    if len(cases) < MIN_EXAMPLES or fails in (0, len(cases)):
        raise UserError(f"{len(cases)} case(s) with outcomes of both models, the small model failing {fails}: "
                        "too few to learn when it fails",
                        hint=f"a router needs at least {MIN_EXAMPLES} cases where the small model both passes and "
                             "fails some; add cases (or, if it never fails, route everything to it: route select)")
    if not any(c.strong > 0 for c in cases):
        raise UserError("the strong model passes none of the cases: there is no quality to keep",
                        hint="check the suite's checks, or pick another --strong")
    keys = [norm_input(c.input) for c in cases]
    train_keys, _ = split(keys, 1.0 - heldout, seed)
    train = np.asarray([k in train_keys for k in keys])
    check_no_leak([c.input for c, t in zip(cases, train, strict=True) if t],
                  [c.input for c, t in zip(cases, train, strict=True) if not t])
    y = np.asarray([1.0 if c.small_fails else 0.0 for c in cases], dtype=np.float32)
    if y[train].min() == y[train].max():
        raise UserError("the training part holds only one outcome of the small model",
                        hint="add cases, or change --seed")
    raw, embedder = _features([c.input for c in cases], features, embedder)
    tr_cases = [c for c, t in zip(cases, train, strict=True) if t]
    ho_cases = [c for c, t in zip(cases, train, strict=True) if not t]
    p_oof = _out_of_fold(raw, y, keys, train, features, seed)
    threshold = round(pick_threshold(p_oof, tr_cases, target_quality), 6)
    w, b, idf = _fit(raw, y, train, features)
    p_held = sigmoid(_scaled(raw[~train], idf) @ w + b)
    report = {"features": features, "target_quality": target_quality, "threshold": threshold, "seed": seed,
              "cases": {"total": len(cases), "train": int(train.sum()), "heldout": int((~train).sum()),
                        "small_fails": fails},
              "train_out_of_fold": routed_numbers(p_oof, tr_cases, threshold),
              "heldout": routed_numbers(p_held, ho_cases, threshold),
              "router_cost_per_query_usd": 0.0}
    return RouterFit(features, threshold, w, b, idf, report,
                     embedder=vector_name(embedder) if features == "embedding" else None,
                     train_ids=[c.case_id for c in tr_cases])


def save_router(folder: Path, fit: RouterFit, meta: dict[str, Any]) -> Path:
    """Write the router (model.json + weights.npz, the trained-check format) and check that it loads."""
    data_hash = hashlib.sha256(json.dumps(sorted(fit.train_ids)).encode()).hexdigest()[:16]
    full = {**meta, "kind": ROUTER_KIND, "label": "small_fails", "features": fit.features,
            "threshold": fit.threshold, "embedder": fit.embedder, "data_hash": data_hash,
            "weights_hash": hashlib.sha256(fit.weights.tobytes() + np.float32(fit.bias).tobytes()).hexdigest()[:16],
            "created_at": time.time(), "report": fit.report}
    _save(folder, full, fit.weights, fit.bias, fit.idf)
    TrainedModel.load(folder)
    return folder


def routes_yaml(route: str, model_path: str, small: str, strong: str, threshold: float) -> str:
    return (f"routes:\n  {route}:\n    router: {{model: {json.dumps(model_path)}, small: {small}, strong: {strong}, "
            f"threshold: {threshold:g}}}\n")

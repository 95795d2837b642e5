"""`flywheel train-check NAME --from-queue Q`: a logistic-regression check fitted on human review labels.

The examples are a binary queue's items with their annotators' majority verdict (ties left out); label 1 = pass.
Features come from flywheel.checks.trained (the same code scores at run time). The split into train and held-out
is by normalised input (an input never on both sides); the model saved is the one fitted on the train part, so
the held-out numbers describe exactly what is deployed. Fitting is numpy only: L2-regularised, class-balanced
logistic regression by full-batch gradient descent with Nesterov momentum.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flywheel.checks.trained import (
    FEATURES,
    MODELS_DIR,
    NAME_PATTERN,
    TrainedModel,
    embedding,
    idf_of,
    sigmoid,
    term_counts,
)
from flywheel.errors import UserError
from flywheel.feedback.agreement import cohen_kappa
from flywheel.loop.atomic import follow_umask, partial_dir
from flywheel.loop.labelled import collect, judge_verdicts, no_labels, norm_input, split
from flywheel.retrieval.embedders import vector_name

if TYPE_CHECKING:
    from flywheel.store import Store

Array = np.ndarray[Any, Any]
MIN_EXAMPLES = 10


def fit_logistic(
    x: Array, y: Array, *, l2: float = 1e-3, steps: int = 400, lr: float = 0.5
) -> tuple[Array, float]:
    """Weights and bias minimising the class-balanced log loss + l2/2·|w|² (features are unit-length rows)."""
    n, d = x.shape
    pos = max(1, int(y.sum()))
    neg = max(1, n - pos)
    sample_w = np.where(y == 1, n / (2.0 * pos), n / (2.0 * neg)).astype(np.float32)
    w, b = np.zeros(d, dtype=np.float32), 0.0
    vw, vb = np.zeros_like(w), 0.0
    for _ in range(steps):
        lw, lb = w + 0.9 * vw, b + 0.9 * vb  # Nesterov look-ahead
        err = (sigmoid(x @ lw + lb) - y) * sample_w
        gw = x.T @ err / n + l2 * lw
        gb = float(err.mean())
        vw, vb = 0.9 * vw - lr * gw, 0.9 * vb - lr * gb
        w, b = w + vw, b + vb
    return w.astype(np.float32), float(b)


def metrics(truth: list[int], predicted: list[int]) -> dict[str, Any]:
    """Precision / recall / F1 of both classes (pass = 1, fail = 0), accuracy, Cohen's κ."""
    t, p = np.asarray(truth), np.asarray(predicted)
    out: dict[str, Any] = {"n": len(t), "accuracy": round(float((t == p).mean()), 4) if len(t) else None}
    for name, cls in (("pass", 1), ("fail", 0)):
        tp = int(((p == cls) & (t == cls)).sum())
        precision = tp / int((p == cls).sum()) if (p == cls).any() else None
        recall = tp / int((t == cls).sum()) if (t == cls).any() else None
        f1 = (
            None
            if precision is None or recall is None
            else 0.0
            if precision + recall == 0
            else 2 * precision * recall / (precision + recall)
        )
        out[name] = {
            "precision": _r(precision),
            "recall": _r(recall),
            "f1": _r(f1),
            "support": int((t == cls).sum()),
        }
    kappa = cohen_kappa(list(t), list(p)) if len(t) >= 2 else float("nan")
    out["kappa"] = None if np.isnan(kappa) else round(float(kappa), 4)
    return out


def _r(v: float | None) -> float | None:
    return None if v is None else round(float(v), 4)


def train_check(
    store: Store,
    root: Path,
    name: str,
    queue: str,
    *,
    features: str = "tfidf",
    heldout: float = 0.3,
    seed: int = 0,
    embedder: Any = None,
    threshold: float = 0.5,
    judge: str | None = None,
) -> dict[str, Any]:
    """Fit, evaluate on the held-out part, save under ROOT/.flywheel/checks/NAME/; returns the report."""
    if not NAME_PATTERN.match(name):
        raise UserError(
            f"invalid check name {name!r}", hint="letters, digits and _.- (at most 100), e.g. relevant"
        )
    if features not in FEATURES:
        raise UserError(f"--features must be one of {', '.join(FEATURES)}, got {features!r}")
    if not 0.0 < heldout < 1.0:
        raise UserError(f"--heldout is a share between 0 and 1 (exclusive), got {heldout}")
    collected = collect(store, queue, kinds=("binary",))
    items = [x for x in collected.items if x.verdict in ("pass", "fail")]
    if not items:
        raise no_labels(queue)
    labels = np.asarray([1 if x.verdict == "pass" else 0 for x in items], dtype=np.float32)
    if labels.min() == labels.max():
        only = "pass" if labels[0] == 1 else "fail"
        raise UserError(
            f"queue {queue}: all {len(items)} labelled item(s) are {only}: a check cannot learn "
            "to tell pass from fail from one verdict",
            hint=f"label items of the other verdict too (at least {MIN_EXAMPLES} items in all)",
        )
    if len(items) < MIN_EXAMPLES:
        raise UserError(
            f"queue {queue} has {len(items)} labelled item(s), {int(labels.sum())} pass and "
            f"{len(items) - int(labels.sum())} fail: too few to learn from",
            hint=f"label at least {MIN_EXAMPLES} items with both verdicts present "
            "(`flywheel review sample -n 50`, then `flywheel review`)",
        )
    keys = [norm_input(x.input) + "\0" + norm_input(x.output) for x in items]
    train_keys, _ = split(keys, 1.0 - heldout, seed)
    tr = np.asarray([k in train_keys for k in keys])
    if labels[tr].min() == labels[tr].max():
        raise UserError("the training part holds only one verdict", hint="label more items, or change --seed")
    inputs, outputs = [x.input for x in items], [x.output for x in items]
    idf = None
    if features == "tfidf":
        counts = term_counts(inputs, outputs)
        idf = idf_of(counts[tr])
        x = counts * idf
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    else:
        if embedder is None:
            from flywheel.retrieval.embedders import local_embedder

            embedder = local_embedder()
        x = embedding(inputs, outputs, embedder)
    w, b = fit_logistic(x[tr], labels[tr])
    p_held = sigmoid(x[~tr] @ w + b)
    predicted = [int(v >= threshold) for v in p_held]
    truth = [int(v) for v in labels[~tr]]
    report: dict[str, Any] = {
        "name": name,
        "queue": queue,
        "features": features,
        "threshold": threshold,
        "examples": {
            "train": int(tr.sum()),
            "heldout": int((~tr).sum()),
            "pass": int(labels.sum()),
            "fail": int(len(labels) - labels.sum()),
        },
        "heldout": metrics(truth, predicted),
    }
    report["vs_human_majority_kappa"] = report["heldout"]["kappa"]
    report["warnings"] = _heldout_warnings(truth, heldout)
    report["judge"] = _versus_judge(
        store, [x.trace_id for x, h in zip(items, ~tr, strict=True) if h], predicted, truth, judge
    )
    data_hash = hashlib.sha256(
        json.dumps(sorted((x.trace_id, x.verdict) for x in items)).encode()
    ).hexdigest()[:16]
    meta = {
        **report,
        "data_hash": data_hash,
        "seed": seed,
        "created_at": time.time(),
        "weights_hash": hashlib.sha256(w.tobytes() + np.float32(b).tobytes()).hexdigest()[:16],
        "embedder": vector_name(embedder) if features == "embedding" else None,
        "cost_per_call_usd": 0.0,
    }
    folder = root / MODELS_DIR / name
    _save(folder, meta, w, b, idf)
    TrainedModel.load(folder)  # what was written loads
    report["path"] = str(folder)
    report["cost_per_call_usd"] = 0.0
    report["check"] = {"trained": name}
    return report


def _heldout_warnings(truth: list[int], heldout: float) -> list[str]:
    """The held-out numbers only describe the verdicts the held-out part holds."""
    missing = [name for name, cls in (("pass", 1), ("fail", 0)) if cls not in truth]
    if not missing:
        return []
    warning = (
        f"the held-out part ({len(truth)} item(s)) holds no {' and no '.join(missing)} item: its numbers say "
        f"nothing about {' or '.join(missing)} answers; label more items or raise --heldout (now {heldout})"
    )
    return [warning]


def _versus_judge(
    store: Store, trace_ids: list[str], predicted: list[int], truth: list[int], judge_name: str | None
) -> dict[str, Any]:
    """Agreement with the LLM judge on the held-out items it scored, the judge's own agreement with the humans,
    and its recorded cost per call."""
    verdicts = judge_verdicts(store, trace_ids, judge_name)
    rows = [
        (int(verdicts[t][0]), p, h)
        for t, p, h in zip(trace_ids, predicted, truth, strict=True)
        if t in verdicts
    ]
    if not rows:
        return {
            "n": 0,
            "judge": judge_name,
            "note": "no held-out item has an LLM judge verdict (feedback rows of source judge)",
        }
    judge, ours, human = (list(c) for c in zip(*rows, strict=True))
    costs = [c for t in trace_ids if t in verdicts for c in [verdicts[t][1]] if c is not None]
    k_ours = cohen_kappa(ours, judge) if len(rows) >= 2 else float("nan")
    k_judge = cohen_kappa(judge, human) if len(rows) >= 2 else float("nan")
    return {
        "n": len(rows),
        "judge": judge_name,
        "agreement": round(sum(a == b for a, b in zip(ours, judge, strict=True)) / len(rows), 4),
        "kappa_with_classifier": None if np.isnan(k_ours) else round(float(k_ours), 4),
        "judge_kappa_with_humans": None if np.isnan(k_judge) else round(float(k_judge), 4),
        "judge_cost_per_call_usd": round(sum(costs) / len(costs), 8) if costs else None,
    }


def _save(folder: Path, meta: dict[str, Any], w: Array, b: float, idf: Array | None) -> None:
    """Written to a temporary folder next to it, then swapped in (a reader never sees half a model)."""
    tmp = partial_dir(folder)
    try:
        arrays: dict[str, Any] = {"weights": w, "bias": np.float32(b)}
        if idf is not None:
            arrays["idf"] = idf
        np.savez_compressed(tmp / "weights.npz", **arrays)
        (tmp / "model.json").write_text(
            json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        follow_umask(tmp)
        old = folder.with_name(f".{folder.name}.old")
        if folder.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

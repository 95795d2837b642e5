"""Drift between a reference and time windows of production traces (`flywheel drift`).

    report = drift_report(store, embedder, reference="window:2026-10-01..2026-10-06", since=t0, until=t1,
                          window="1d")
    for w in report["windows"]: print(w["start"], w["input_drift"]["drifted"], w["new_clusters"])

Per window and side (input, output), over the vectors of flywheel.monitor.vectors (embedding ⊕ keyword TF-IDF):
- `distance`: cosine distance between the reference's and the window's mean vectors;
- `mmd`: squared maximum mean discrepancy, RBF kernel with the median heuristic, and its `p_value` from a
  seeded permutation test (all permutations in one matrix product; when the observed value beats every
  permutation, a Pearson type III curve fitted to the permutation values gives a finer p);
- `auc`: a domain classifier (logistic regression on kernel features, 3-fold cross-validated) telling the
  window from the reference: 0.5 = indistinguishable.
PSI over categorical fields and descriptors (model, app, languages, length buckets, output format, refusals)
with a chi-square p-value. A test `drifted` when its p-value is below alpha / (tests per window × windows)
(Bonferroni: stationary traffic raises a false alarm in a whole report with probability about alpha) and, for
PSI, the shift is also material (PSI ≥ 0.1). Topic clusters: flywheel.monitor.clusters.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from flywheel.config import Project
from flywheel.errors import UserError
from flywheel.monitor.clusters import TopicModel
from flywheel.monitor.vectors import (
    Lexicon,
    TraceRows,
    embedder_name,
    load_rows,
    representation,
    rows_from_texts,
    store_vectors,
)
from flywheel.monitor.windows import parse_duration, parse_time
from flywheel.protocols import Embedder
from flywheel.store import Store

if TYPE_CHECKING:
    from flywheel.evals.suite import EvalCase

ALPHA = 0.05
PERMUTATIONS = 200
MAX_REFERENCE = 300  # reference traces sampled into the kernel tests (all of them into centroids and PSI)
MAX_WINDOW = 300
MIN_TRACES = 5  # fewer traces in a window (or reference): no test, reported as such
PSI_MIN = 0.1  # a significant but tiny shift is not drift
PSI_FIELDS = ("model", "app", "input_language", "output_language", "input_length", "output_length",
              "output_format", "refused")
TOPIC_FIT_MAX = 3000
PROJECTED = 128  # dimensions the representation is randomly projected to for the kernel tests and clusters


# ---------------------------------------------------------------------------- statistics


def gamma_sf(a: float, x: float) -> float:
    """Regularized upper incomplete gamma Q(a, x) (series below a + 1, continued fraction above)."""
    if x <= 0:
        return 1.0
    if a <= 0:
        return 0.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(500):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-14:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    b, c, d = x + 1 - a, 1e300, 1 / (x + 1 - a)
    h = d
    for i in range(1, 500):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1e-300 if abs(d) < 1e-300 else d
        c = b + an / c
        c = 1e-300 if abs(c) < 1e-300 else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-14:
            break
    return min(1.0, math.exp(log_front) * h)


def pearson3_sf(null: np.ndarray, observed: float) -> float:
    """Tail probability of `observed` under a shifted gamma matching the mean, variance and skewness of the
    permutation values (a Pearson type III curve). Matching the skew too keeps the far tail honest: a gamma
    fitted on two moments alone gave 2 false alarms in 150 stationary benchmark windows, this 1 in 300."""
    mean, sd = float(null.mean()), float(null.std())
    if sd <= 0:
        return 1.0 if observed <= mean else 0.0
    skew = float(((null - mean) ** 3).mean()) / sd ** 3
    if skew <= 0.05:  # (nearly) symmetric: the normal tail, via the chi-square with one degree of freedom
        z = (observed - mean) / sd
        return 1.0 if z <= 0 else chi2_sf(z * z, 1) / 2
    shape, scale = 4.0 / skew ** 2, sd * skew / 2
    return gamma_sf(shape, max(0.0, observed - (mean - shape * scale)) / scale)


def chi2_sf(stat: float, df: int) -> float:
    return 1.0 if df <= 0 else gamma_sf(df / 2, stat / 2)


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.einsum("ij,ij->i", a, a)[:, None] - 2 * a @ b.T + np.einsum("ij,ij->i", b, b)[None, :]
    return np.maximum(d, 0)


class KernelReference:
    """The reference half of the kernel tests, computed once and reused for every window."""

    def __init__(self, x: np.ndarray, rng: np.random.Generator, max_n: int = MAX_REFERENCE):
        x = x.astype(np.float32, copy=False)
        self.x = x[rng.choice(len(x), max_n, replace=False)] if len(x) > max_n else x
        self.d_rr = _sq_dists(self.x, self.x)
        off = self.d_rr[~np.eye(len(self.x), dtype=bool)]
        med = float(np.median(off)) if len(off) else 1.0
        self.gamma = 1.0 / med if med > 0 else 1.0
        self.k_rr = np.exp(-self.gamma * self.d_rr)
        self.centroid = x.mean(axis=0)


def kernel_tests(ref: KernelReference, cur: np.ndarray, rng: np.random.Generator,
                 permutations: int = PERMUTATIONS) -> dict[str, float]:
    """distance, mmd (squared, biased), p_value and auc of `cur` against the reference."""
    full = cur = cur.astype(np.float32, copy=False)
    if len(cur) > MAX_WINDOW:
        cur = cur[rng.choice(len(cur), MAX_WINDOW, replace=False)]
    m, n = len(ref.x), len(cur)
    k_rc = np.exp(-ref.gamma * _sq_dists(ref.x, cur))
    k_cc = np.exp(-ref.gamma * _sq_dists(cur, cur))
    k = np.block([[ref.k_rr, k_rc], [k_rc.T, k_cc]])
    c = np.concatenate([np.full(m, 1.0 / m), np.full(n, -1.0 / n)])
    observed = float(c @ k @ c)
    cs = rng.permuted(np.tile(c, (permutations, 1)), axis=1).T  # (m + n, permutations)
    null = np.einsum("ij,ij->j", cs, k @ cs)
    beats = int((null >= observed).sum())
    p = (1 + beats) / (permutations + 1)
    if beats == 0:
        p = min(p, pearson3_sf(null, observed))
    a, b = ref.centroid, full.mean(axis=0)
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    distance = 1.0 - float(a @ b) / denom if denom > 0 else 0.0
    labels = np.concatenate([np.zeros(m), np.ones(n)])
    auc = domain_auc(k, labels, rng)
    return {"distance": round(distance, 6), "mmd": round(max(observed, 0.0), 6), "p_value": float(f"{p:.3g}"),
            "auc": round(auc, 4)}


def domain_auc(k: np.ndarray, labels: np.ndarray, rng: np.random.Generator, folds: int = 3,
               landmarks: int = 24) -> float:
    """Cross-validated ROC AUC of a ridge logistic regression (IRLS) on kernel features to `landmarks` points."""
    n = len(labels)
    cols = rng.choice(n, min(landmarks, n), replace=False)
    f = k[:, cols]
    f = (f - f.mean(axis=0)) / (f.std(axis=0) + 1e-9)
    f = np.hstack([np.ones((n, 1)), f])
    fold = rng.permutation(n) % folds
    scores = np.zeros(n)
    for i in range(folds):
        train, test = fold != i, fold == i
        w = _logistic(f[train], labels[train])
        scores[test] = f[test] @ w
    return roc_auc(scores, labels)


def _logistic(x: np.ndarray, y: np.ndarray, ridge: float = 1.0, iters: int = 6) -> np.ndarray:
    w = np.zeros(x.shape[1])
    penalty = ridge * np.eye(x.shape[1])
    penalty[0, 0] = 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - y) + penalty @ w
        hess = (x * (p * (1 - p))[:, None]).T @ x + penalty
        w -= np.linalg.solve(hess + 1e-9 * np.eye(len(w)), grad)
    return w


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann–Whitney AUC, ties counted half."""
    pos, neg = int(labels.sum()), int(len(labels) - labels.sum())
    if not pos or not neg:
        return 0.5
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.bincount(inverse, weights=ranks) / counts)[inverse]
    return float((ranks[labels == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _chi2_stats(r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Chi-square homogeneity statistics of reference counts `r` against current counts `c` (rows: samples)."""
    total = r + c
    nr, nc = r.sum(axis=-1, keepdims=True), c.sum(axis=-1, keepdims=True)
    er, ec = total * nr / (nr + nc), total * nc / (nr + nc)
    safe_r, safe_c = np.where(er > 0, er, 1), np.where(ec > 0, ec, 1)
    return (((r - er) ** 2 / safe_r) + ((c - ec) ** 2 / safe_c)).sum(axis=-1)


def psi_test(reference: Sequence[Any] | Counter[str], current: Sequence[Any], *, rng: np.random.Generator | None = None,
             threshold: float | None = None) -> dict[str, Any]:
    """PSI and chi-square p-value of a categorical field; `shift` names the categories that moved most.
    `reference` may be given as its Counter of str values (computed once for many windows). When the asymptotic
    p-value is below `threshold`, it is replaced by a Monte Carlo p-value (random splits of the pooled counts,
    4 / threshold of them): the chi-square approximation is far too optimistic for rare categories in small
    windows (3 false alarms in 50 stationary windows without this, measured)."""
    rc = reference if isinstance(reference, Counter) else Counter(map(str, reference))
    cc = Counter(map(str, current))
    cats = sorted(set(rc) | set(cc))
    nr, nc = sum(rc.values()), len(current)
    r = np.array([rc[c] for c in cats], dtype=float)
    c = np.array([cc[c] for c in cats], dtype=float)
    rs, cs = (r + 0.5) / (nr + 0.5 * len(cats)), (c + 0.5) / (nc + 0.5 * len(cats))
    psi = float(((cs - rs) * np.log(cs / rs)).sum())
    stat = float(_chi2_stats(r, c))
    p = chi2_sf(stat, int(((r + c) > 0).sum()) - 1)
    if threshold is not None and p < threshold and psi >= PSI_MIN and nc and nr:
        rng = rng or np.random.default_rng(0)
        sims = int(min(200_000, max(2_000, 4 / threshold)))
        pooled = (r + c).astype(np.int64)
        drawn = rng.multivariate_hypergeometric(pooled, int(nc), size=sims).astype(float)
        p = (1 + int((_chi2_stats(pooled - drawn, drawn) >= stat - 1e-9).sum())) / (sims + 1)
    moved = sorted(range(len(cats)), key=lambda i: -abs(c[i] / max(nc, 1) - r[i] / max(nr, 1)))[:3]
    shift = {cats[i]: [round(r[i] / max(nr, 1), 3), round(c[i] / max(nc, 1), 3)] for i in moved}
    return {"psi": round(psi, 4), "p_value": float(f"{p:.3g}"), "shift": shift}


def length_edges(reference: np.ndarray) -> np.ndarray:
    nonzero = reference[reference > 0]
    return np.unique(np.percentile(nonzero, [20, 40, 60, 80])) if len(nonzero) else np.array([])


def length_buckets(edges: np.ndarray, values: np.ndarray) -> list[str]:
    """Length quintile buckets fixed by the reference's `length_edges` ("q1".."q5"; "0" for empty)."""
    names = np.array(["0"] + [f"q{i}" for i in range(1, len(edges) + 2)])
    return names[np.where(values == 0, 0, np.searchsorted(edges, values, side="right") + 1)].tolist()


# ---------------------------------------------------------------------------- one report


@dataclass
class Window:
    start: float | None
    end: float | None
    rows: TraceRows


def field_values(rows: TraceRows, name: str, edges: dict[str, np.ndarray]) -> list[Any]:
    if name == "input_length":
        return length_buckets(edges["input"], rows.input_chars)
    if name == "output_length":
        return length_buckets(edges["output"], rows.output_chars)
    return rows.fields[name]


def compare(reference: TraceRows, windows: Sequence[Window], *, alpha: float = ALPHA, seed: int = 0,
            permutations: int = PERMUTATIONS, outputs: bool = True) -> tuple[list[dict[str, Any]],
                                                                              list[dict[str, Any]], dict[str, Any]]:
    """(windows, alerts, reference summary) of every window against the reference."""
    with one_blas_thread():
        return _compare(reference, windows, alpha=alpha, seed=seed, permutations=permutations, outputs=outputs)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """The matrices here are small: a multi-threaded BLAS spends more time waking threads than computing
    (12x slower on a busy 2-core machine, measured). threadpoolctl when installed; otherwise as is."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _compare(reference: TraceRows, windows: Sequence[Window], *, alpha: float, seed: int, permutations: int,
             outputs: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    rng = np.random.default_rng(seed)
    sides = ["input", "output"] if outputs and reference.has_output() else ["input"]
    fields = [f for f in PSI_FIELDS if any(v is not None for v in reference.fields.get(f, [None]))
              or f == "input_length" or (f == "output_length" and "output" in sides)]
    if "output" not in sides:
        fields = [f for f in fields if not f.startswith("output") and f != "refused"]
    tested = [w for w in windows if len(w.rows) >= MIN_TRACES]
    threshold = alpha / max(1, (len(sides) + len(fields)) * len(tested))
    lexicons = {s: Lexicon().fit(reference.terms[s]) for s in sides}
    edges = {"input": length_edges(reference.input_chars), "output": length_edges(reference.output_chars)}
    ref_counts = {f: Counter(map(str, field_values(reference, f, edges))) for f in fields}
    projection: dict[str, np.ndarray] = {}

    def project(rows: TraceRows, side: str) -> np.ndarray:
        z = representation(rows, side, lexicons[side])
        if side not in projection:  # Johnson–Lindenstrauss: distances kept, the kernel tests 5x cheaper
            projection[side] = (np.random.default_rng(seed).normal(size=(z.shape[1], PROJECTED))
                                / math.sqrt(PROJECTED)).astype(np.float32)
        return z @ projection[side] if z.shape[1] > PROJECTED else z

    ref_z = {s: project(reference, s) for s in sides}
    kernels = {s: KernelReference(ref_z[s], rng) for s in sides} if len(reference) >= MIN_TRACES else {}
    fit = rng.choice(len(reference), TOPIC_FIT_MAX, replace=False) if len(reference) > TOPIC_FIT_MAX \
        else np.arange(len(reference))
    topics = TopicModel.fit(ref_z["input"][fit], [reference.terms["input"][i] for i in fit],
                            [reference.trace_ids[i] for i in fit], seed=seed) if len(fit) >= MIN_TRACES else None
    out: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    for w in windows:
        entry: dict[str, Any] = {"start": w.start, "end": w.end, "n": len(w.rows)}
        before = len(alerts)
        if len(w.rows) == 0:
            entry.update(empty=True, drifted=False, input_drift=None, output_drift=None, psi={}, new_clusters=[],
                         vanished_clusters=[])
            out.append(entry)
            continue
        tests = len(w.rows) >= MIN_TRACES and bool(kernels)
        # untested windows are never projected: the projection is sized from the reference's columns, and an
        # empty reference has no embedding columns (a window with vectors then has more)
        zs = {s: project(w.rows, s) for s in sides} if tests else {}
        for side in ("input", "output"):
            if side not in sides or not tests:
                entry[f"{side}_drift"] = None
                continue
            kt: dict[str, Any] = dict(kernel_tests(kernels[side], zs[side], rng, permutations))
            kt["drifted"] = bool(kt["p_value"] < threshold)
            entry[f"{side}_drift"] = kt
            if kt["drifted"]:
                alerts.append(_alert(w, f"{side}_drift", f"{side} embeddings drifted (MMD p={kt['p_value']:.2g}, "
                                                         f"AUC {kt['auc']:.2f})", kt["p_value"]))
        psi: dict[str, Any] = {}
        if tests:
            for name in fields:
                res: dict[str, Any] = psi_test(ref_counts[name], field_values(w.rows, name, edges), rng=rng,
                                               threshold=threshold)
                res["drifted"] = bool(res["p_value"] < threshold and res["psi"] >= PSI_MIN)
                psi[name] = res
                if res["drifted"]:
                    moved = ", ".join(f"{k} {a:.0%}→{b:.0%}" for k, (a, b) in res["shift"].items() if a != b)
                    alerts.append(_alert(w, f"psi:{name}", f"{name} shifted (PSI {res['psi']:.2f}; {moved})",
                                         res["p_value"]))
        entry["psi"] = psi
        new, gone = topics.compare(zs["input"], w.rows.terms["input"], w.rows.trace_ids) if topics and tests \
            else ([], [])
        entry["new_clusters"] = [c.to_json() for c in new]
        entry["vanished_clusters"] = [c.to_json() for c in gone]
        entry["drifted"] = len(alerts) > before
        out.append(entry)
    summary = {"n": len(reference), "threshold": threshold, "alpha": alpha,
               "clusters": [c.to_json() for c in topics.clusters] if topics else []}
    return out, alerts, summary


def _alert(w: Window, kind: str, message: str, p: float) -> dict[str, Any]:
    return {"start": w.start, "end": w.end, "kind": kind, "message": message, "p_value": p}


# ---------------------------------------------------------------------------- references and windows from the store

_COUNT = re.compile(r"^\s*(\d+)\s*(?:traces?)?\s*$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
INPUT_VARS = ("question", "input", "query", "prompt", "message", "text")


def parse_window(spec: str) -> tuple[str, float]:
    """`1h` / `1d` → ("time", seconds); `500` / `500 traces` → ("count", 500)."""
    m = _COUNT.match(str(spec))
    if m:
        if int(m.group(1)) < 1:
            raise UserError(f"cannot read --window {spec!r}", hint="a duration (1h, 1d) or a number of traces (500)")
        return "count", float(m.group(1))
    try:
        return "time", parse_duration(spec, "--window")
    except UserError:
        raise UserError(f"cannot read --window {spec!r}",
                        hint="a duration (30m, 1h, 1d) or a number of traces (500, `500 traces`)") from None


def _range_end(text: str) -> float:
    end = parse_time(text, what="reference range end")
    assert end is not None
    return end + 86400 if _DATE_ONLY.match(text.strip()) else end  # a date on the right includes that day


def parse_reference(spec: str, since: float) -> dict[str, Any]:
    """`eval:SUITE`, `window:30d` (the 30 days before `since`) or `window:START..END` (an end date is inclusive)."""
    kind, _, value = str(spec).partition(":")
    value = value.strip()
    hint = "write eval:SUITE, window:30d or window:2026-10-01..2026-10-06"
    if kind == "eval" and value:
        return {"kind": "eval", "suite": value}
    if kind != "window" or not value:
        raise UserError(f"cannot read --reference {spec!r}", hint=hint)
    if ".." in value:
        left, _, right = value.partition("..")
        if not left.strip() or not right.strip():
            raise UserError(f"--reference {spec!r}: a range needs a start and an end", hint=hint)
        start = parse_time(left.strip(), what="reference range start")
        end = _range_end(right)
        assert start is not None
        if end <= start:
            raise UserError(f"--reference {spec!r}: the range ends before it starts", hint=hint)
        return {"kind": "window", "start": start, "end": end}
    width = parse_duration(value, "--reference window")
    return {"kind": "window", "start": since - width, "end": since}


def find_suite(project: Project, name: str) -> Path:
    """A suite by path, by file stem in evals/, or by its `name:`; UserError naming the suites there."""
    path = Path(name)
    for candidate in (path, project.root / path, project.root / "evals" / f"{name}.yaml",
                      project.root / "evals" / f"{name}.yml"):
        if candidate.is_file():
            return candidate
    folder = project.root / "evals"
    found = sorted(f for f in folder.iterdir() if f.suffix in (".yaml", ".yml")) if folder.is_dir() else []
    for f in found:
        try:
            head = yaml.safe_load(f.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(head, dict) and head.get("name") == name:
            return f
    raise UserError(f"no eval suite {name!r}", where=str(folder),
                    hint=f"suites there: {', '.join(f.stem for f in found) or 'none'}; or pass a suite file path")


def case_input(case: EvalCase) -> str:
    for key in INPUT_VARS:
        if isinstance(case.vars.get(key), str):
            return str(case.vars[key])
    strings = [str(v) for v in case.vars.values() if isinstance(v, str)]
    return "\n".join(strings)


def suite_rows(project: Project, name: str, embedder: Embedder | None) -> tuple[TraceRows, dict[str, Any]]:
    """The suite's cases as rows (input: the question var; output: the reference answer, when cases have one)."""
    from flywheel.evals.suite import load_suite

    path = find_suite(project, name)
    suite = load_suite(path, project)  # a suite without cases is a ConfigError with file:line
    questions = [case_input(c) for c in suite.cases]
    if not any(q.strip() for q in questions):
        raise UserError(f"suite {suite.name!r} has no text inputs to compare", where=str(path),
                        hint=f"give cases a string var such as {', '.join(INPUT_VARS[:3])}")
    answers = [c.reference or "" for c in suite.cases]
    rows = rows_from_texts([f"case:{c.id}" for c in suite.cases], questions, answers, embedder)
    return rows, {"kind": "eval", "suite": suite.name, "path": str(path)}


def split_windows(rows: TraceRows, kind: str, size: float, since: float, until: float) -> list[Window]:
    if kind == "count":
        n = int(size)
        out = []
        for i in range(0, len(rows), n):
            part = rows.take(range(i, min(i + n, len(rows))))
            out.append(Window(float(part.started_at[0]), float(part.started_at[-1]), part))
        return out
    out = []
    edges = np.arange(since, until, size)
    for start in edges:
        end = min(float(start) + size, until)
        idx = np.flatnonzero((rows.started_at >= start) & (rows.started_at < end))
        out.append(Window(float(start), end, rows.take(idx)))
    return out


def drift_report(store: Store, embedder: Embedder | None, *, project: Project | None = None,
                 reference: str | None = None, since: float | None = None, until: float | None = None,
                 window: str = "1d", app: str | None = None, alpha: float = ALPHA, seed: int = 0,
                 permutations: int = PERMUTATIONS, now: float | None = None) -> dict[str, Any]:
    """The `flywheel drift --json` document; computes and stores missing trace vectors first."""
    kind, size = parse_window(window)
    until = (time.time() if now is None else now) if until is None else until
    if since is None:
        since = until - 7 * (size if kind == "time" else 86400)
    if since >= until:
        raise UserError("--since is not before --until", hint="give a --since earlier than --until")
    ref = parse_reference(reference or "window:30d", since)
    name = embedder_name(embedder)
    if ref["kind"] == "eval":
        if project is None:
            raise UserError("an eval: reference needs a project", hint="run from the project folder")
        ref_rows, info = suite_rows(project, ref["suite"], embedder)
    else:
        store_vectors(store, embedder, since=ref["start"], until=ref["end"], app=app)
        ref_rows = load_rows(store, name, since=ref["start"], until=ref["end"], app=app)
        info = {"kind": "window", "start": ref["start"], "end": ref["end"]}
    info.update(spec=reference or "window:30d", embedder=name)
    store_vectors(store, embedder, since=since, until=until, app=app)
    cur = load_rows(store, name, since=since, until=until, app=app)
    windows = split_windows(cur, kind, size, since, until)
    if len(ref_rows) == 0:
        info["warning"] = ("the reference is empty: no traces to compare against"
                           + (f" in {ref.get('suite')}" if ref["kind"] == "eval" else " in that window")
                           + "; choose another --reference")
    elif len(ref_rows) < MIN_TRACES:
        info["warning"] = (f"the reference holds {len(ref_rows)} traces; at least {MIN_TRACES} are needed to "
                           "test drift")
    out, alerts, summary = compare(ref_rows, windows, alpha=alpha, seed=seed, permutations=permutations)
    info.update(summary)
    return {"reference": info, "since": since, "until": until, "window": window, "app": app,
            "windows": out, "alerts": alerts}

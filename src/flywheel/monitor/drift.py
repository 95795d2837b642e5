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
from flywheel.monitor.drift_stats import (
    PERMUTATIONS,
    PSI_MIN,
    KernelReference,
    kernel_tests,
    psi_test,
)
from flywheel.monitor.vectors import (
    Lexicon,
    TraceRows,
    embedder_name,
    load_rows,
    representation,
    rows_from_texts,
    store_vectors,
)
from flywheel.monitor.windows import check_period, parse_duration, parse_time
from flywheel.protocols import Embedder
from flywheel.store import Store

if TYPE_CHECKING:
    from flywheel.evals.suite import EvalCase

ALPHA = 0.05
MIN_TRACES = 5  # fewer traces in a window (or reference): no test, reported as such
PSI_FIELDS = ("model", "app", "input_language", "output_language", "input_length", "output_length",
              "output_format", "refused")
TOPIC_FIT_MAX = 3000
PROJECTED = 128  # dimensions the representation is randomly projected to for the kernel tests and clusters
SLIVER = 0.01  # a trailing remainder under this share of a window joins the last window


# ---------------------------------------------------------------------------- statistics


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
                alerts.append(_alert(w, f"{side}_drift", embedding_drift_message(side, kt["p_value"], kt["auc"]),
                                     kt["p_value"]))
        psi: dict[str, Any] = {}
        if tests:
            for name in fields:
                res: dict[str, Any] = psi_test(ref_counts[name], field_values(w.rows, name, edges), rng=rng,
                                               threshold=threshold)
                res["drifted"] = bool(res["p_value"] < threshold and res["psi"] >= PSI_MIN)
                psi[name] = res
                if res["drifted"]:
                    alerts.append(_alert(w, f"psi:{name}", field_shift_message(name, res["psi"], res["shift"]),
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


# The report's texts, built here only: the dashboard shows them in Chinese by these templates
# (flywheel.web.stored_i18n), and its tests build them with these functions.
def embedding_drift_message(side: str, p_value: float, auc: float) -> str:
    return f"{side} embeddings drifted (MMD p={p_value:.2g}, AUC {auc:.2f})"


def field_shift_message(name: str, psi: float, shift: dict[str, tuple[float, float]]) -> str:
    moved = ", ".join(f"{k} {a:.0%}→{b:.0%}" for k, (a, b) in shift.items() if a != b)
    return f"{name} shifted (PSI {psi:.2f}; {moved})"


def reference_warning(n: int, kind: str, suite: str | None = None) -> str | None:
    """What is wrong with a reference of `n` rows (kind `eval` or `window`), or None."""
    if n == 0:
        return ("the reference is empty: no traces to compare against"
                + (f" in {suite}" if kind == "eval" else " in that window") + "; choose another --reference")
    if n < MIN_TRACES:
        unit = "cases" if kind == "eval" else "traces"
        return f"the reference holds {n} {unit}; at least {MIN_TRACES} are needed to test drift"
    return None


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
    # `--since 1d` is read a moment before `until` defaults to now: a remainder under 1 % of a window joins the
    # last window instead of becoming a window of a few milliseconds at the end
    count = max(1, math.ceil((until - since) / size - SLIVER))
    edges = [since + i * size for i in range(count)]
    for i, start in enumerate(edges):
        end = until if i == count - 1 else min(float(start) + size, until)
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
    check_period(since, until)
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
    warning = reference_warning(len(ref_rows), ref["kind"], ref.get("suite"))
    if warning is not None:
        info["warning"] = warning
    out, alerts, summary = compare(ref_rows, windows, alpha=alpha, seed=seed, permutations=permutations)
    info.update(summary)
    return {"reference": info, "since": since, "until": until, "window": window, "app": app,
            "windows": out, "alerts": alerts}

"""Dev–prod skew (`flywheel skew --suite S`): how an eval suite's inputs differ from production traffic, and
which production traces would close each gap.

    report = skew_report(store, embedder, project, "docs_qa", since=time.time() - 30 * 86400)
    for gap in report["gaps"]: print(gap["kind"], gap["what"], gap["traces"], gap["command"])

Compared: input length (quintiles fixed by production), language (flywheel.text.language), input format
(question, plain, multi-line, code/JSON) — each with PSI — and topics: production inputs are clustered
(flywheel.monitor.clusters, over the same embedding ⊕ keyword vectors drift uses) and a cluster no suite case
falls into is a missing topic. A category is a gap when it holds at least MIN_SHARE of production and the
suite holds less than a third of that share. Each gap lists up to `per_gap` production trace ids (for topics
the ones nearest the cluster's centre) and the `flywheel promote` command that adds them to the suite.
"""

from __future__ import annotations

import shlex
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from flywheel.config import Project
from flywheel.errors import UserError
from flywheel.monitor.clusters import TopicModel, distances
from flywheel.monitor.drift import length_buckets, length_edges, suite_rows
from flywheel.monitor.drift_stats import psi_test
from flywheel.monitor.vectors import (
    Lexicon,
    TraceRows,
    embedder_name,
    load_rows,
    representation,
    store_vectors,
)
from flywheel.monitor.windows import check_period
from flywheel.protocols import Embedder
from flywheel.store import Store

MIN_SHARE = 0.05  # of production, for a category to count as a gap
MIN_TOPIC_SHARE = 0.02
MIN_TOPIC_TRACES = 3
DEFAULT_DAYS = 30


def _quantiles(values: np.ndarray) -> dict[str, int] | None:
    if not len(values):
        return None
    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    return {"p10": int(p10), "p50": int(p50), "p90": int(p90)}


def _shares(values: Sequence[Any]) -> dict[str, float]:
    counts = Counter(map(str, values))
    return {k: round(v / max(1, len(values)), 4) for k, v in counts.most_common()}


def _promote(ids: list[str], suite_path: str) -> str:
    return f"flywheel promote --traces {','.join(ids)} --to {shlex.quote(suite_path)}"


def category_gaps(kind: str, prod: Sequence[Any], suite: Sequence[Any], ids: Sequence[str], suite_path: str,
                  per_gap: int, describe: dict[str, str] | None = None) -> list[dict[str, Any]]:
    ps, ss = _shares(prod), _shares(suite)
    gaps = []
    for cat, share in ps.items():
        if share >= MIN_SHARE and ss.get(cat, 0.0) < share / 3:
            members = [ids[i] for i, v in enumerate(prod) if str(v) == cat][:per_gap]
            gaps.append({"kind": kind, "what": (describe or {}).get(cat, cat), "production_share": share,
                         "suite_share": ss.get(cat, 0.0), "traces": members,
                         "command": _promote(members, suite_path)})
    return gaps


def skew_report(store: Store, embedder: Embedder | None, project: Project, suite: str, *,
                since: float | None = None, until: float | None = None, app: str | None = None, per_gap: int = 5,
                seed: int = 0) -> dict[str, Any]:
    """The `flywheel skew --json` document; computes and stores missing trace vectors first."""
    until = time.time() if until is None else until
    since = until - DEFAULT_DAYS * 86400 if since is None else since
    check_period(since, until)
    cases, info = suite_rows(project, suite, embedder)
    store_vectors(store, embedder, since=since, until=until, app=app)
    prod = load_rows(store, embedder_name(embedder), since=since, until=until, app=app)
    # traces that recorded no question (a received span without content) say nothing about what people ask, and
    # promoting them would write cases with an empty input
    asked = np.nonzero(prod.input_chars > 0)[0]
    unasked = len(prod) - len(asked)
    prod = prod.take(asked)
    out: dict[str, Any] = {"suite": {**info, "n": len(cases)},
                           "production": {"n": len(prod), "since": since, "until": until, "app": app,
                                          "without_question": unasked},
                           "gaps": []}
    if len(prod) == 0:
        out["warning"] = "no production traces in the period: nothing to compare the suite with"
        return out
    path = info["path"]
    ids = prod.trace_ids
    edges = length_edges(prod.input_chars)
    p_len, s_len = length_buckets(edges, prod.input_chars), length_buckets(edges, cases.input_chars)
    bounds = [0, *[int(e) for e in edges]]
    names = {f"q{i + 1}": (f"≥ {bounds[i]} chars" if i == len(bounds) - 1 else f"{bounds[i]}–{bounds[i + 1]} chars")
             for i in range(len(bounds))}
    out["length"] = {"suite": _quantiles(cases.input_chars), "production": _quantiles(prod.input_chars),
                     "psi": psi_test(s_len, p_len)["psi"]}
    p_lang, s_lang = prod.fields["input_language"], cases.fields["input_language"]
    out["language"] = {"suite": _shares(s_lang), "production": _shares(p_lang), "psi": psi_test(s_lang, p_lang)["psi"]}
    p_fmt, s_fmt = prod.fields["input_format"], cases.fields["input_format"]
    out["format"] = {"suite": _shares(s_fmt), "production": _shares(p_fmt), "psi": psi_test(s_fmt, p_fmt)["psi"]}
    out["gaps"] += category_gaps("length", p_len, s_len, ids, path, per_gap, {k: f"inputs of {v}"
                                                                              for k, v in names.items()})
    out["gaps"] += category_gaps("language", p_lang, s_lang, ids, path, per_gap)
    out["gaps"] += category_gaps("format", p_fmt, s_fmt, ids, path, per_gap)
    out["gaps"] += topic_gaps(prod, cases, path, per_gap, seed)
    out["commands"] = [g["command"] for g in out["gaps"]]
    return out


def topic_gaps(prod: TraceRows, cases: TraceRows, suite_path: str, per_gap: int, seed: int
               ) -> list[dict[str, Any]]:
    lexicon = Lexicon().fit(prod.terms["input"] + cases.terms["input"])
    zp = representation(prod, "input", lexicon)
    zc = representation(cases, "input", lexicon)
    if zp.shape[1] != zc.shape[1]:  # suite without vectors (no embedder at suite time): keywords only
        raise UserError("the suite and the production traces were embedded differently",
                        hint="run again; if it persists report it")
    topics = TopicModel.fit(zp, prod.terms["input"], prod.trace_ids, seed=seed)
    # covered: some case lies within the novelty radius of the cluster's centre (nearest or not: a case between
    # two neighbouring sub-topics covers both)
    near = distances(zc, topics.centroids) <= topics.radius if len(zc) else np.zeros((0, len(topics.centroids)))
    covered = set(np.flatnonzero(near.any(axis=0)).tolist())
    gaps: list[dict[str, Any]] = []
    for j, c in enumerate(topics.clusters):
        if j in covered or c.share < MIN_TOPIC_SHARE or c.n < MIN_TOPIC_TRACES:
            continue
        members = c.examples[:per_gap]
        gaps.append({"kind": "topic", "what": c.label, "keywords": c.keywords, "production_share": round(c.share, 4),
                     "suite_share": 0.0, "n": c.n, "traces": members, "command": _promote(members, suite_path)})
    gaps.sort(key=lambda g: -float(g["production_share"]))
    return gaps

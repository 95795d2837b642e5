#!/usr/bin/env python3
"""Fit the coefficients of the hybrid re-scoring (src/flywheel/retrieval/rescore.py: DENSE_MODEL, WORDS_MODEL) on
the development sets only, reproducibly.

    nice -n 10 python scripts/fit_fusion.py                    # dump the six dev sets (cached), fit, print
    nice -n 10 python scripts/fit_fusion.py --limit 400 --cross

1. Dump: each dev set is ingested with the product defaults (as `flywheel bench retrieval --sets` does) and every
   query searched in hybrid mode; what the re-scorer receives (the pool's keyword tokens, the query terms and
   document frequencies, both sides' rankings, the dense side's language weight) is cached as JSON under
   --cache, so refitting does not ingest again.
2. Fit: coordinate ascent (Metzler & Croft 2007) on the mean over the six sets of nDCG@10 at document level
   (chunks collapsed to documents, as the bench does), minus `--l2` × the squared distance of the coefficients
   from the baseline (words 1.0 + dense 1.0). One model for a pool the dense side ran on, one for a
   keyword-only pool; `words` stays 1.0 (the scale). Each feature is tried with steps of ±0.4 / 0.2 / 0.1 /
   0.05 until no step gains more than 1e-4.
3. `--cross`: for each language, fit on two of its three dev sets and score the third (a check of how well a fit
   transfers to a set it did not see, still inside the dev halves).

The held-out halves are never read here.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.retrieval import rescore

DEV_SETS = {"en": ("debian-desc-en-dev", "manpages-en-dev", "mrpc-train"),
            "zh": ("cmrc2018-sentence-dev", "debian-desc-zh-dev", "manpages-zh-dev")}
FREE_DENSE = [f for f in rescore.FEATURES if f != "words"]
FREE_WORDS = [f for f in rescore.FEATURES if f != "words" and f not in rescore.DENSE_FEATURES]
STEPS = (0.4, 0.2, 0.1, 0.05)


# ---------------------------------------------------------------------------- dump


def dump(name: str, limit: int | None, cache: Path) -> Path:
    from flywheel.bench import data_root
    from flywheel.bench.retrieval_sets import build
    from flywheel.config import RetrievalConfig
    from flywheel.retrieval.beir import load_beir
    from flywheel.retrieval.embedders import build_embedder
    from flywheel.retrieval.ingest import ingest
    from flywheel.retrieval.retriever import Retriever, open_index
    from flywheel.store import Store

    out = cache / f"{name}-{limit or 'all'}.json.gz"
    if out.is_file():
        return out
    captured: list[dict[str, Any]] = []

    class Recording(Retriever):
        def _rescore(self, terms, doc_freqs, keyword, dense, pool, w_dense):  # type: ignore[no-untyped-def]
            captured.append({"terms": terms, "n_docs": doc_freqs[0], "df": doc_freqs[1],
                             "keyword": [p for p, _ in keyword], "dense": [[p, s] for p, s in dense],
                             "pool": list(pool), "w_dense": w_dense if dense else 0.0})
            return super()._rescore(terms, doc_freqs, keyword, dense, pool, w_dense)

    config = RetrievalConfig()
    embedder = build_embedder(config, {})
    with tempfile.TemporaryDirectory(prefix="fit-fusion-") as tmp:
        data = load_beir(build(name, data_root(None), Path(tmp) / name))
        store = Store.open(f"sqlite:///{Path(tmp) / 'fit.db'}")
        try:
            print(f"  ingesting {data.corpus} …", file=sys.stderr)
            ingest([data.corpus], store, config, embedder=embedder)
            print(f"  searching {min(limit or len(data.queries), len(data.queries))} queries …", file=sys.stderr)
            retriever = Recording(open_index(store), embedder, config.model_copy(update={"min_relevance": None}))
            queries = list(data.queries.items())[: limit or None]
            records = []
            for qid, text in queries:
                captured.clear()
                retriever.search(text, k=30, mode="hybrid")
                if captured:
                    records.append({"qid": qid, "qrels": data.qrels[qid], **captured[0]})
            pks = {p for r in records for p in r["pool"]}
            rows = retriever.index.fetch(sorted(pks), "default")
            chunks = {str(p): {"tokens": tokens, "ref": str(chunk.metadata.get("ref"))}
                      for p, (chunk, tokens) in rows.items()}
        finally:
            store.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", encoding="utf-8") as f:
        json.dump({"set": name, "queries": len(queries), "records": records, "chunks": chunks}, f,
                  ensure_ascii=False)
    return out


# ---------------------------------------------------------------------------- features and nDCG


class Query:
    """One query's feature matrix (candidates × FEATURES), its candidates' document index, gains, ideal DCG."""

    def __init__(self, record: dict[str, Any], chunks: dict[str, dict[str, str]]):
        dense = {p: s for p, s in record["dense"]}
        kw_rank = {p: i for i, p in enumerate(record["keyword"], start=1)}
        dn_rank = {p: i for i, (p, _) in enumerate(record["dense"], start=1)}
        cands = [rescore.Candidate(p, chunks[str(p)]["tokens"].split(), dense.get(p), kw_rank.get(p), dn_rank.get(p))
                 for p in record["pool"]]
        self.w_dense = float(record["w_dense"])
        feats = rescore.features(cands, record["terms"], record["df"], record["n_docs"], self.w_dense > 0)
        self.x = np.array([feats.get(f, [0.0] * len(cands)) for f in rescore.FEATURES], dtype=np.float64).T
        self.scale = np.array([self.w_dense if f in rescore.DENSE_FEATURES else 1.0 for f in rescore.FEATURES])
        refs = [chunks[str(p)]["ref"] for p in record["pool"]]
        order = list(dict.fromkeys(refs))
        self.doc = np.array([order.index(r) for r in refs]) if refs else np.zeros(0, dtype=int)
        qrels = record["qrels"]
        self.gain = np.array([float(qrels.get(d, 0)) if d != record["qid"] else 0.0 for d in order])
        ideal = sorted((g for g in qrels.values() if g > 0), reverse=True)[:10]
        self.idcg = sum(g / np.log2(i + 2) for i, g in enumerate(ideal))
        self.uses_dense = self.w_dense > 0

    def ndcg(self, coef: np.ndarray) -> float:
        if not len(self.doc) or self.idcg <= 0:
            return 0.0
        scores = self.x @ (coef * self.scale)
        best = np.full(len(self.gain), -np.inf)
        np.maximum.at(best, self.doc, scores)
        top = np.argsort(-best, kind="stable")[:10]
        return float((self.gain[top] / np.log2(np.arange(2, len(top) + 2))).sum() / self.idcg)


def read(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)  # type: ignore[no-any-return]


def load(path: Path) -> list[Query]:
    data = read(path)
    return [Query(r, data["chunks"]) for r in data["records"]]


def fuse_ms(path: Path, dense_model: dict[str, float], words_model: dict[str, float]) -> float:
    """Median milliseconds of one rescore.fuse call over the dumped pools with these models."""
    data = read(path)
    saved = rescore.DENSE_MODEL, rescore.WORDS_MODEL
    rescore.DENSE_MODEL, rescore.WORDS_MODEL = dense_model, words_model
    times = []
    try:
        for r in data["records"]:
            dense = {p: s for p, s in r["dense"]}
            cands = [rescore.Candidate(p, data["chunks"][str(p)]["tokens"].split(), dense.get(p)) for p in r["pool"]]
            t0 = time.perf_counter()
            rescore.fuse(cands, r["terms"], r["df"], r["n_docs"], r["w_dense"])
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        rescore.DENSE_MODEL, rescore.WORDS_MODEL = saved
    return float(np.median(times)) if times else 0.0


def vector(model: dict[str, float]) -> np.ndarray:
    return np.array([model.get(f, 0.0) for f in rescore.FEATURES])


def score(sets: dict[str, list[Query]], dense: np.ndarray, words: np.ndarray) -> dict[str, float]:
    return {name: float(np.mean([q.ndcg(dense if q.uses_dense else words) for q in qs]))
            for name, qs in sets.items()}


def fit(sets: dict[str, list[Query]], l2: float, log: Any = print) -> tuple[np.ndarray, np.ndarray]:
    base = vector(rescore.BASELINE)
    params = {"dense": base.copy(), "words": vector({"words": 1.0})}
    origin = {"dense": base.copy(), "words": params["words"].copy()}
    free = {"dense": FREE_DENSE, "words": FREE_WORDS}

    def objective() -> float:
        mean = float(np.mean(list(score(sets, params["dense"], params["words"]).values())))
        return mean - l2 * sum(float(((params[k] - origin[k]) ** 2).sum()) for k in params)

    current = objective()
    improved = True
    while improved:
        improved = False
        for which in ("dense", "words"):
            if not any(q.uses_dense == (which == "dense") for qs in sets.values() for q in qs):
                continue
            for name in free[which]:
                j = rescore.FEATURES.index(name)
                for step in STEPS:
                    for sign in (1, -1):
                        old = params[which][j]
                        params[which][j] = old + sign * step
                        value = objective()
                        if value > current + 1e-4:
                            current, improved = value, True
                            log(f"  {which}.{name} = {params[which][j]:+.2f}  objective {current:.4f}")
                        else:
                            params[which][j] = old
    return params["dense"], params["words"]


def constants(coef: np.ndarray) -> dict[str, float]:
    return {f: round(float(c), 2) for f, c in zip(rescore.FEATURES, coef, strict=True) if abs(c) > 1e-9}


def evaluate(names: list[str], limit: int | None, cache: Path) -> int:
    report = {}
    for name in names:
        print(f"dumping {name} …", file=sys.stderr)
        path = dump(name, limit, cache)
        queries = {name: load(path)}
        before = score(queries, vector(rescore.BASELINE), vector({"words": 1.0}))[name]
        after = score(queries, vector(rescore.DENSE_MODEL), vector(rescore.WORDS_MODEL))[name]
        report[name] = {"queries": len(queries[name]), "before": round(before, 4), "after": round(after, 4),
                        "change": round(after - before, 4),
                        "fuse_ms_before": round(fuse_ms(path, rescore.BASELINE, {"words": 1.0}), 3),
                        "fuse_ms_after": round(fuse_ms(path, rescore.DENSE_MODEL, rescore.WORDS_MODEL), 3)}
    print(json.dumps({"DENSE_MODEL": rescore.DENSE_MODEL, "WORDS_MODEL": rescore.WORDS_MODEL, "sets": report},
                     indent=2))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N queries of each dev set")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "flywheel-fit-fusion")
    parser.add_argument("--l2", type=float, default=0.002, help="penalty on the distance from the baseline")
    parser.add_argument("--cross", action="store_true", help="also fit on two dev sets per language, score the third")
    parser.add_argument("--sets", default=",".join(DEV_SETS["en"] + DEV_SETS["zh"]), help="comma-separated dev sets")
    parser.add_argument("--evaluate", action="store_true",
                        help="no fit: score the shipped DENSE_MODEL / WORDS_MODEL against the baseline on --sets "
                             "(held-out sets allowed; run them once, at the end) and time rescore.fuse")
    args = parser.parse_args()
    names = [n for n in args.sets.split(",") if n]
    if args.evaluate:
        return evaluate(names, args.limit, args.cache)
    if any(not n.endswith("-dev") and n != "mrpc-train" for n in names):
        print("only dev sets may be fitted on", file=sys.stderr)
        return 2
    sets = {}
    for name in names:
        print(f"dumping {name} …", file=sys.stderr)
        sets[name] = load(dump(name, args.limit, args.cache))
    base = vector(rescore.BASELINE)
    words0 = vector({"words": 1.0})
    before = score(sets, base, words0)
    dense, words = fit(sets, args.l2, log=lambda m: print(m, file=sys.stderr))
    after = score(sets, dense, words)
    report: dict[str, Any] = {
        "DENSE_MODEL": constants(dense), "WORDS_MODEL": constants(words),
        "ndcg@10": {n: {"before": round(before[n], 4), "after": round(after[n], 4),
                        "change": round(after[n] - before[n], 4), "queries": len(sets[n])} for n in names},
    }
    if args.cross:
        report["cross"] = {}
        for group in DEV_SETS.values():
            for left_out in group:
                train = {n: sets[n] for n in group if n != left_out and n in sets}
                if left_out not in sets or not train:
                    continue
                d, w = fit(train, args.l2, log=lambda _m: None)
                one = {left_out: sets[left_out]}
                report["cross"][left_out] = round(score(one, d, w)[left_out] - before[left_out], 4)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

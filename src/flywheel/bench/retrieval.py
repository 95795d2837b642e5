"""`flywheel bench retrieval`: quality on a BEIR folder (bm25, dense, plain RRF, hybrid, and the bm25s package on
the same tokens as a check of our BM25), ingest throughput and search latency; `--sets` for the dev and held-out
sets with hard negatives (retrieval_sets.py) side by side; `--synthetic N` for latency at scale.

Quality protocol: the corpus is ingested into a temporary SQLite store with the product defaults (local
embedder when installed, ~256-token chunks); every test query is run in each mode for the top 30 chunks, which
are collapsed to documents (first chunk of a document wins) and scored at document level with BEIR's rules.
Ranking is measured with the relevance floor off; `hybrid_floor` reports what the default floor does.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

CANDIDATES = 30  # chunks per query, collapsed to documents before scoring @10
WANTED = ("ndcg@10", "mrr@10", "recall@5", "recall@10")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return float(np.percentile(np.array(values), q))


def _open_store(folder: Path) -> Any:
    from flywheel.store import Store

    return Store.open(f"sqlite:///{folder / 'bench.db'}")


# ---------------------------------------------------------------------------- BEIR quality


def load_bench_config(path: Path | None) -> tuple[Any, dict[str, Any], str | None]:
    """(retrieval config, model aliases, file:line of `retrieval.embedder`) from a flywheel.yaml given with
    `--config`, so the bench ranks with the embedder, chunking and fusion a user configured; the product
    defaults without one."""
    from flywheel.config import RetrievalConfig, load_config_file, where

    if path is None:
        return RetrievalConfig(), {}, None
    config, lines = load_config_file(path)
    return config.retrieval, dict(config.models), where(path, lines, ("retrieval", "embedder"))


def run_dataset(dataset: Path, limit: int | None = None, log: Any = None, config_file: Path | None = None,
                dense_weights: tuple[float, ...] = ()) -> dict[str, Any]:
    """Quality and latency on one BEIR folder. `config_file`: a flywheel.yaml whose `retrieval:` and `models:`
    are used (else the defaults); `dense_weights`: hybrid runs again with each of these weights on the dense
    side of the re-scoring (rescore.Weights.dense), reported as `hybrid_dense` — the ingest is shared."""
    from flywheel.retrieval.beir import evaluate_run, load_beir
    from flywheel.retrieval.embedders import build_embedder
    from flywheel.retrieval.ingest import ingest
    from flywheel.retrieval.rescore import Weights
    from flywheel.retrieval.retriever import Retriever, open_index

    log = log or (lambda *_: None)
    data = load_beir(dataset)
    queries = list(data.queries.items())[: limit or None]
    qrels = {q: data.qrels[q] for q, _ in queries}
    config, models, where = load_bench_config(config_file)
    embedder = build_embedder(config, models, where)
    if embedder is not None and hasattr(embedder, "prepare"):
        embedder.prepare()  # a one-time ONNX export is an install step, not ingest time
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-") as tmp:
        store = _open_store(Path(tmp))
        try:
            log(f"ingesting {data.corpus} …")
            summary = ingest([data.corpus], store, config, embedder=embedder)
            log(f"{summary.chunks_added} chunks in {summary.seconds:.1f} s")
            retriever = Retriever(open_index(store), embedder, config.model_copy(update={"min_relevance": None}))
            modes = ["bm25", "dense", "rrf", "hybrid"] if embedder is not None else ["bm25", "hybrid"]
            rrf = Retriever(open_index(store), embedder, config.model_copy(update={"min_relevance": None,
                                                                                    "fusion": "rrf"}))
            result: dict[str, Any] = {"dataset": str(dataset), "queries": len(queries),
                                      "corpus_chunks": summary.chunks_added,
                                      "embedder": embedder.name if embedder else None}
            latencies: list[float] = []
            rrf_latencies: list[float] = []  # plain RRF: the hybrid before re-scoring, for the latency cost
            for mode in modes:
                log(f"searching {len(queries)} queries ({mode}) …")
                run: dict[str, list[str]] = {}
                for qid, text in queries:
                    t0 = time.perf_counter()
                    if mode == "rrf":  # plain reciprocal-rank fusion of the same two sides, for comparison
                        hits = rrf.search(text, k=CANDIDATES, mode="hybrid")
                    else:
                        hits = retriever.search(text, k=CANDIDATES, mode=mode)  # type: ignore[arg-type]
                    if mode in ("hybrid", "rrf"):
                        (latencies if mode == "hybrid" else rrf_latencies).append((time.perf_counter() - t0) * 1000)
                    run[qid] = [str(h.chunk.metadata.get("ref")) for h in hits]
                result[mode] = evaluate_run(run, qrels, WANTED)
            if dense_weights and embedder is not None:
                result["hybrid_dense"] = {}
                for weight in dense_weights:
                    log(f"searching {len(queries)} queries (hybrid, dense weight {weight}) …")
                    retriever.weights = Weights(dense=weight)
                    run = {qid: [str(h.chunk.metadata.get("ref")) for h in retriever.search(text, k=CANDIDATES)]
                           for qid, text in queries}
                    result["hybrid_dense"][f"{weight:g}"] = evaluate_run(run, qrels, WANTED)
                retriever.weights = Weights(dense=config.dense_weight)
            try:
                result["peer_bm25s"] = _bm25s_peer(store, queries, qrels)
            except ImportError:
                from flywheel.bench import missing_peer

                result["peer_bm25s"] = missing_peer("bm25s", "pip install bm25s")
            result["hybrid_floor"] = _floor_effect(store, embedder, config, queries, qrels)
            result["ingest_chunks_per_s"] = round(summary.chunks_added / max(summary.seconds, 1e-9), 1)
            result["ingest_seconds"] = summary.seconds
            result["search_p50_ms"] = round(_percentile(latencies, 50), 2)
            result["search_p99_ms"] = round(_percentile(latencies, 99), 2)
            if rrf_latencies:
                result["rrf_search_p50_ms"] = round(_percentile(rrf_latencies, 50), 2)
            result["fusion"] = config.fusion
            if embedder is not None and hasattr(embedder, "describe"):
                result["embedder_backend"] = embedder.describe()
            return result
        finally:
            store.close()


def _bm25s_peer(store: Any, queries: list[tuple[str, str]], qrels: dict) -> dict[str, float]:
    """bm25s on exactly our chunks' keyword tokens (jieba-segmented), collapsed to documents the same way."""
    import bm25s
    from sqlalchemy import select

    from flywheel.retrieval.beir import evaluate_run
    from flywheel.retrieval.tokenize import keyword_tokens
    from flywheel.store.schema_retrieval import chunks

    with store.engine.connect() as conn:
        rows = conn.execute(select(chunks.c.tokens, chunks.c.metadata).order_by(chunks.c.pk)).all()
    refs = [str((meta or {}).get("ref")) for _, meta in rows]
    model = bm25s.BM25()
    model.index([tokens.split() for tokens, _ in rows], show_progress=False)
    run: dict[str, list[str]] = {}
    k = min(CANDIDATES, len(rows))
    for qid, text in queries:
        toks = [t for t in keyword_tokens(text) if t in model.vocab_dict] or ["\x00"]
        if toks == ["\x00"]:
            run[qid] = []
            continue
        docs, _ = model.retrieve([toks], k=k, show_progress=False)
        run[qid] = [refs[i] for i in docs[0]]
    return evaluate_run(run, qrels, WANTED)


def _floor_effect(store: Any, embedder: Any, config: Any, queries: list, qrels: dict) -> dict[str, Any]:
    from flywheel.retrieval.beir import evaluate_run
    from flywheel.retrieval.retriever import Retriever, open_index

    retriever = Retriever(open_index(store), embedder, config)
    run, empty = {}, 0
    for qid, text in queries:
        hits = retriever.search(text, k=CANDIDATES)
        empty += not hits
        run[qid] = [str(h.chunk.metadata.get("ref")) for h in hits]
    return {"min_relevance": retriever.config.min_relevance, "empty_rate": round(empty / max(len(queries), 1), 4),
            **evaluate_run(run, qrels, ("ndcg@10", "recall@5"))}


def run_sets(root: Path | None, names: list[str] | None = None, limit: int | None = None, log: Any = None,
             config_file: Path | None = None, dense_weights: tuple[float, ...] = ()) -> dict[str, Any]:
    """Every set of retrieval_sets.SETS (or `names`), built from `root`, run side by side: nDCG@10 of keyword
    (ours), dense, plain RRF, our hybrid and jieba + bm25s, with the set's language and role (dev: the hybrid's
    weights were chosen on it; heldout: never tuned on). `config_file` and `dense_weights`: see run_dataset."""
    from flywheel.bench.retrieval_sets import SETS, build

    log = log or (lambda *_: None)
    out: dict[str, Any] = {"sets": {}, "target": "hybrid >= best single retriever + 0.02 nDCG@10"}
    if config_file is not None:
        out["config"] = str(config_file)
    with tempfile.TemporaryDirectory(prefix="flywheel-sets-") as tmp:
        for name in names or list(SETS):
            language, role = SETS[name][0], SETS[name][1]
            log(f"== {name} ({language}, {role})")
            full = run_dataset(build(name, root, Path(tmp) / name), limit, log=log, config_file=config_file,
                               dense_weights=dense_weights)
            out["embedder"] = full["embedder"]
            ndcg = {"keyword": full["bm25"]["ndcg@10"], "dense": full.get("dense", {}).get("ndcg@10"),
                    "rrf": full.get("rrf", {}).get("ndcg@10"), "hybrid": full["hybrid"]["ndcg@10"],
                    "jieba_bm25s": full["peer_bm25s"].get("ndcg@10")}
            if "hybrid_dense" in full:
                ndcg["hybrid_dense"] = {w: m["ndcg@10"] for w, m in full["hybrid_dense"].items()}
            singles = [v for key, v in ndcg.items() if key in ("keyword", "dense", "jieba_bm25s") and v is not None]
            best = max(singles)
            out["sets"][name] = {"language": language, "role": role, "queries": full["queries"],
                                 "corpus_chunks": full["corpus_chunks"], "ndcg@10": ndcg,
                                 "hybrid_minus_best_single": round(ndcg["hybrid"] - best, 4),
                                 "target_met": ndcg["hybrid"] >= best + 0.02,
                                 "search_p50_ms": full["search_p50_ms"],
                                 "rrf_search_p50_ms": full.get("rrf_search_p50_ms")}
    return out


# ---------------------------------------------------------------------------- synthetic scale


class _RandomVectors:
    """Benchmark fixture only: random unit vectors stand in for document embeddings, because embedding 100k
    chunks with MiniLM on a 2-core CPU takes hours (its real throughput is measured separately). Token counting
    and query embedding use the real local model, so chunking and query latency are the product's own."""

    languages = frozenset({"en"})
    glossed: frozenset[str] = frozenset()

    def languages_named(self) -> str:
        return "en"

    def __init__(self, real: Any, dim: int = 384):
        self.real, self.dim = real, dim
        self.name = f"synthetic-random-{dim}"
        self.max_tokens = real.max_tokens if real else 256

    def covers(self, language: str) -> bool:
        return not language or language in self.languages

    def count_tokens(self, texts: Any) -> list[int]:
        return self.real.count_tokens(texts) if self.real else [len(t.split()) for t in texts]

    def hard_split(self, text: str, n: int) -> list[str]:
        return self.real.hard_split(text, n) if self.real else [text]

    def embed(self, texts: Any) -> np.ndarray:
        rng = np.random.default_rng(len(texts))
        v = rng.standard_normal((len(texts), self.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def embed_query(self, text: str) -> np.ndarray:
        if self.real is not None:
            return self.real.embed_query(text)
        return self.embed([text])[0]


def _vocabulary(n: int, rng: random.Random) -> list[str]:
    """English-like word list in frequency order: the English stopwords first (as in real text, where they are
    the head of the Zipf curve), then pseudo-words."""
    from flywheel.text import STOPWORDS_EN

    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou", "an", "er")]
    head = sorted(STOPWORDS_EN)
    rng.shuffle(head)
    words: set[str] = set(head)
    tail: list[str] = []
    while len(head) + len(tail) < n:
        w = "".join(rng.choice(syllables) for _ in range(rng.choice((1, 2, 2, 3, 3, 4))))
        if w not in words:
            words.add(w)
            tail.append(w)
    return head + tail


def run_synthetic(n_chunks: int, queries: int = 200, log: Any = None) -> dict[str, Any]:
    from flywheel.config import RetrievalConfig
    from flywheel.retrieval.embedders import local_available, local_embedder
    from flywheel.retrieval.ingest import Ingestor
    from flywheel.retrieval.retriever import Retriever, open_index

    log = log or (lambda *_: None)
    rng = random.Random(7)
    vocab = _vocabulary(20000, rng)
    weights = [1.0 / (i + 1) ** 1.07 for i in range(len(vocab))]  # Zipf-like word frequencies
    real = local_embedder() if local_available() else None
    fixture = _RandomVectors(real)
    result: dict[str, Any] = {"synthetic_chunks": n_chunks, "vocabulary": len(vocab)}
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-") as tmp:
        folder = Path(tmp)
        corpus = folder / "corpus"
        corpus.mkdir()
        per_file = 10000
        texts_sample: list[str] = []
        for f in range(0, n_chunks, per_file):
            with (corpus / f"part{f // per_file:04d}.jsonl").open("w", encoding="utf-8") as out:
                for i in range(f, min(f + per_file, n_chunks)):
                    words = rng.choices(vocab, weights=weights, k=rng.randint(30, 70))
                    text = " ".join(words).capitalize() + "."
                    if len(texts_sample) < 256:
                        texts_sample.append(text)
                    out.write(json.dumps({"_id": f"d{i}", "title": f"doc {i}", "text": text}) + "\n")
        store = _open_store(folder)
        try:
            config = RetrievalConfig()
            ingestor = Ingestor(open_index(store), fixture, config)  # type: ignore[arg-type]
            log(f"ingesting {n_chunks} synthetic chunks (random vectors) …")
            summary = ingestor.run([corpus], "default", False, None)
            result["chunks_indexed"] = summary.chunks_added
            pipeline = summary.chunks_added / max(summary.seconds, 1e-9)
            result["index_chunks_per_s"] = round(pipeline, 1)
            if real is not None:
                log("measuring the local embedder on a sample …")
                real.prepare()  # load weights (and export the ONNX model once) before timing
                t0 = time.perf_counter()
                real.embed(texts_sample)
                embed_rate = len(texts_sample) / (time.perf_counter() - t0)
                result["embedder_chunks_per_s"] = round(embed_rate, 1)
                result["ingest_chunks_per_s"] = round(1.0 / (1.0 / pipeline + 1.0 / embed_rate), 1)
                result["note"] = (f"document vectors are random ({fixture.name}): embedding {n_chunks} chunks with "
                                  f"{real.name} at {embed_rate:.0f}/s would take {n_chunks / embed_rate / 60:.1f} min "
                                  "here. index_chunks_per_s is the whole pipeline minus the embedder (load, chunk, "
                                  "tokenise, write FTS + vectors); embedder_chunks_per_s is MiniLM on a sample of "
                                  f"{len(texts_sample)} chunks; ingest_chunks_per_s combines both. Queries are "
                                  "embedded by the real model inside the timed search.")
            qs = [" ".join(rng.choices(vocab, weights=weights, k=rng.randint(2, 6))) for _ in range(queries + 10)]
            no_floor = config.model_copy(update={"min_relevance": None})
            for mode in ("hybrid", "bm25", "dense"):
                retriever = Retriever(open_index(store), fixture, no_floor)  # type: ignore[arg-type]  # fresh
                times = []
                for i, q in enumerate(qs):
                    t0 = time.perf_counter()
                    retriever.search(q, k=10, mode=mode)
                    if i >= 10:  # the first searches load the vector matrix and warm caches
                        times.append((time.perf_counter() - t0) * 1000)
                prefix = "search" if mode == "hybrid" else f"{mode}_search"
                result[f"{prefix}_p50_ms"] = round(statistics.median(times), 2)
                result[f"{prefix}_p99_ms"] = round(_percentile(times, 99), 2)
            if real is not None:
                times = []
                for q in qs[10:]:
                    t0 = time.perf_counter()
                    real.embed_query(q + " ")
                    times.append((time.perf_counter() - t0) * 1000)
                result["query_embed_p50_ms"] = round(statistics.median(times), 2)
                result["embedder_backend"] = real.describe()
        finally:
            store.close()
    return result


# ---------------------------------------------------------------------------- relevance floor calibration

FLOOR_GRID = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)


def _floor_table(pos: list[float], neg: list[float]) -> dict[str, dict[str, float]]:
    """At each floor: share of answerable queries still answered, share of unanswerable ones refused."""
    return {f"{t:.2f}": {"answered": round(sum(p >= t for p in pos) / max(len(pos), 1), 3),
                         "refused": round(sum(n < t for n in neg) / max(len(neg), 1), 3)} for t in FLOOR_GRID}


def calibrate_floor(data_dir: Path, log: Any = None) -> dict[str, Any]:
    """How `min_relevance: auto` was chosen. Keyword coverage (the signal for Chinese with an English-only
    embedder): half of the cmrc2018 passages are indexed; questions about them should be answered, questions
    about the other half refused. Dense cosine (all-MiniLM-L6-v2): MRPC sentence-1s are indexed; the
    paraphrases (sentence 2 of positive pairs) should be answered, askfsdl questions (off-topic for news) refused."""
    import csv

    from flywheel.config import RetrievalConfig
    from flywheel.retrieval.beir import load_beir
    from flywheel.retrieval.embedders import build_embedder
    from flywheel.retrieval.ingest import ingest
    from flywheel.retrieval.retriever import AUTO_FLOOR, Retriever, open_index

    log = log or (lambda *_: None)
    config = RetrievalConfig(min_relevance=None)
    out: dict[str, Any] = {"auto": AUTO_FLOOR}
    with tempfile.TemporaryDirectory(prefix="flywheel-calibrate-") as tmp:
        folder = Path(tmp)
        cmrc = load_beir(data_dir / "cmrc2018-dev")
        docs = [json.loads(line) for line in cmrc.corpus.open(encoding="utf-8")]
        half = {d["_id"] for d in docs[: len(docs) // 2]}
        (folder / "zh.jsonl").write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs
                                                 if d["_id"] in half), encoding="utf-8")
        store = _open_store(folder)
        try:
            log("calibrating keyword coverage on cmrc2018 …")
            ingest([folder / "zh.jsonl"], store, RetrievalConfig(embedder="none"), embedder=None)
            r = Retriever(open_index(store), None, config)
            pos: list[float] = []
            neg: list[float] = []
            for i, (qid, text) in enumerate(cmrc.queries.items()):
                if i % 4:
                    continue  # every 4th question is plenty
                best = max((h.scores["relevance"] for h in r.search(text, k=5)), default=0.0)
                (pos if set(cmrc.qrels[qid]) & half else neg).append(best)
            out["coverage_cmrc2018"] = {"answerable": len(pos), "unanswerable": len(neg),
                                        **_floor_table(pos, neg)}
        finally:
            store.close()
        embedder = build_embedder(RetrievalConfig(), {})
        if embedder is None:
            return out
        rows = list(csv.reader((data_dir / "mrpc" / "msr_paraphrase_test.txt").open(encoding="utf-8-sig"),
                               delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
        (folder / "en.jsonl").write_text("".join(json.dumps({"_id": r[1], "text": r[3]}) + "\n" for r in rows),
                                         encoding="utf-8")
        store = _open_store(folder / "en")
        try:
            log("calibrating dense cosine on MRPC + askfsdl …")
            ingest([folder / "en.jsonl"], store, RetrievalConfig(), embedder=embedder)
            r = Retriever(open_index(store), embedder, config)
            pos = [max((h.scores.get("dense", 0.0) for h in r.search(row[4], k=5)), default=0.0)
                   for row in rows[:800] if row[0] == "1"]
            questions = [json.loads(line)["query"] for line in
                         (data_dir / "askfsdl-scope" / "queries.jsonl").open(encoding="utf-8")]
            neg = [max((h.scores.get("dense", 0.0) for h in r.search(q, k=5)), default=0.0) for q in questions]
            out["dense_mrpc_askfsdl"] = {"answerable": len(pos), "unanswerable": len(neg), **_floor_table(pos, neg)}
        finally:
            store.close()
    return out


# ---------------------------------------------------------------------------- command


@click.command()
@click.option("--data", "data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The benchmark data folder holding cmrc2018-dev/ (and for --calibrate mrpc/, askfsdl-scope/) "
                   "[$FLYWHEEL_BENCH_DATA, else ../shared/data].")
@click.option("--dataset", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Any BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) instead of DATA/cmrc2018-dev.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N test queries.")
@click.option("--synthetic", type=click.IntRange(100), default=None,
              help="Instead: N generated chunks, for ingest throughput and search latency at scale.")
@click.option("--calibrate", is_flag=True,
              help="Instead: measure the relevance floor on cmrc2018, MRPC and askfsdl (../shared/data).")
@click.option("--sets", "sets", is_flag=True,
              help="Instead: the dev and held-out sets (built from cmrc2018-dev/ and mrpc/ when the data folder "
                   "has them, plus the Debian description and man page sets committed under "
                   "benchmarks/retrieval-sets/), keyword / dense / RRF / hybrid / jieba+bm25s side by side.")
@click.option("--set", "only", multiple=True, help="With --sets: only this set (repeatable).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A flywheel.yaml whose `retrieval:` and `models:` the quality runs use (e.g. an openai_compat "
                   "embedder alias) instead of the defaults.")
@click.option("--dense-weights", "dense_weights", default=None, metavar="W,W,…",
              help="With --sets or --dataset: also run the hybrid with these dense-side weights of the "
                   "re-scoring (default 1.0), e.g. 0.5,1.5,2 (for choosing a weight on dev sets).")
@click.option("--json", "as_json", is_flag=True, help="Only the JSON (no progress lines).")
def command(data: Path | None, dataset: Path | None, limit: int | None, synthetic: int | None, calibrate: bool,
            sets: bool, only: tuple[str, ...], config_file: Path | None, dense_weights: str | None,
            as_json: bool) -> None:
    """Retrieval quality (nDCG, MRR, recall; bm25 / dense / hybrid / bm25s) and latency, as JSON."""
    from flywheel.bench import data_root, dataset_dir
    from flywheel.errors import UserError

    def log(msg: str) -> None:
        if not as_json:
            click.secho(msg, dim=True, err=True)

    from flywheel.bench.retrieval_options import check_options, parse_weights

    check_options(dataset=dataset, synthetic=synthetic, calibrate=calibrate, sets=sets, only=only,
                   config_file=config_file, dense_weights=dense_weights)
    root = data_root(data)
    weights = parse_weights(dense_weights)
    if calibrate:
        for name in ("cmrc2018-dev", "mrpc", "askfsdl-scope"):
            dataset_dir(root, name, "retrieval --calibrate")
        assert root is not None  # dataset_dir raised otherwise
        result = calibrate_floor(root, log=log)
    elif sets:
        from flywheel.bench.retrieval_sets import NEEDS, SETS
        from flywheel.bench.retrieval_sets_debian import PACKAGED

        unknown = [n for n in only if n not in SETS]
        if unknown:
            raise UserError(f"unknown retrieval set {unknown[0]!r}", hint=f"use one of {', '.join(SETS)}")
        if not PACKAGED.is_dir():
            raise UserError(f"the committed retrieval sets are not here ({PACKAGED})",
                            hint="run --sets from a clone of the flywheel repository (benchmarks/retrieval-sets/)")
        skipped = {}
        if only:  # asked for by name: its data must be there
            for name in dict.fromkeys(NEEDS[SETS[n][2]] for n in only if NEEDS[SETS[n][2]]):
                dataset_dir(root, name, "retrieval --sets")
            wanted = list(only)
        else:  # all sets: the committed ones always, the others when the data folder has their source
            def available(name: str) -> bool:
                need = NEEDS[SETS[name][2]]
                return not need or (root is not None and (root / need).is_dir())

            wanted = [n for n in SETS if available(n)]
            skipped = {n: f"needs {NEEDS[SETS[n][2]]}/ in the data folder (--data)" for n in SETS if n not in wanted}
        result = run_sets(root, wanted, limit, log=log, config_file=config_file, dense_weights=weights)
        if skipped:
            result["skipped"] = skipped
    elif synthetic:
        result = run_synthetic(synthetic, log=log)
    else:
        result = run_dataset(dataset or dataset_dir(root, "cmrc2018-dev", "retrieval"), limit, log=log,
                             config_file=config_file, dense_weights=weights)
    click.echo(json.dumps(result, ensure_ascii=False, indent=2))

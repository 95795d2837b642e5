"""`flywheel bench cache`: exact-hit and semantic-lookup latency, and semantic hit precision on MRPC side by
side with GPTCache using the same embedder and the same vectors.

MRPC protocol (msr_paraphrase_test.txt): sentence 1 of every pair is stored, sentence 2 is the query; a hit
is right only when it returns the query's own pair AND that pair is labelled a paraphrase. Both systems see
identical embeddings (computed once). GPTCache's threshold t means cosine ≥ 2t − 1, so it is compared at
t = (1 + our cosine threshold) / 2; a sweep of other thresholds is reported for context.
Latency: the store backend on a temp SQLite file, `--entries` synthetic unit vectors in one scope (query
embedding time is reported apart, as embed_p50_ms: it is the model's cost, not the cache's).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np

TARGETS = {"exact_hit_p50_ms": 0.5, "semantic_lookup_p50_ms": 5.0, "hit_precision": 0.85, "hit_rate": 0.20}
GPTCACHE_SWEEP = (0.85, 0.90, 0.95)


class _Precomputed:
    """Embedder answering from vectors computed once (so both systems and every run share them)."""

    name = "all-MiniLM-L6-v2"

    def __init__(self, table: dict[str, np.ndarray], fallback: Any = None):
        self.table, self.fallback = table, fallback

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        from flywheel.cache.keys import normalise_text

        texts = [normalise_text(t) for t in texts]
        missing = [t for t in texts if t not in self.table]
        if missing:
            if self.fallback is None:
                raise KeyError(f"no precomputed vector for {missing[0][:60]!r}")
            for t, v in zip(missing, self.fallback.embed(missing), strict=True):
                self.table[t] = v
        return np.stack([self.table[t] for t in texts])


def _p50_ms(fn: Callable[[], Any], n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1000, 4)


# ------------------------------------------------------------------------------------------ MRPC


def _mrpc_vectors(rows: list[tuple[int, str, str]], cache_file: Path | None) -> dict[str, np.ndarray]:
    from flywheel.cache.keys import normalise_text
    from flywheel.retrieval.embedders import local_embedder as default_embedder

    texts = sorted({normalise_text(t) for r in rows for t in (r[1], r[2])})
    embedder = default_embedder()
    cached = _read_vectors(cache_file)
    # vectors of another precision (FLYWHEEL_EMBED_INT8) or of an older file without a name are computed again
    if cached is not None and list(cached[0]) == texts and cached[2] == embedder.name:
        return dict(zip(texts, cached[1], strict=True))
    t = time.time()
    vectors = embedder.embed(texts)
    click.echo(f"embedded {len(texts)} MRPC sentences with {embedder.name} in {time.time() - t:.0f} s", err=True)
    if cache_file is not None:
        np.savez(cache_file, texts=np.array(texts), vectors=vectors, model=np.array(embedder.name))
    return dict(zip(texts, vectors, strict=True))


def _read_vectors(cache_file: Path | None) -> tuple[np.ndarray, np.ndarray, str | None] | None:
    """(texts, vectors, embedder name) from a --vectors file written by an earlier run; None when there is none
    yet."""
    from flywheel.errors import UserError

    if cache_file is None or not cache_file.exists():
        return None
    try:
        with np.load(cache_file, allow_pickle=False) as data:
            return data["texts"], data["vectors"], str(data["model"]) if "model" in data.files else None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise UserError(f"--vectors {cache_file}: not an npz file of MRPC embeddings ({exc})",
                        hint="give a new file name (the bench writes it), or delete this one") from None


def _score(answers: list[str | None], rows: list[tuple[int, str, str]]) -> tuple[float, float]:
    hits = [(i, a) for i, a in enumerate(answers) if a is not None]
    right = sum(1 for i, a in hits if a == str(i) and rows[i][0] == 1)
    return round(len(hits) / len(rows), 4), round(right / len(hits), 4) if hits else 0.0


def _ours(rows: list[tuple[int, str, str]], embedder: _Precomputed, store: Any, verify: bool) -> list[str | None]:
    from flywheel.cache import Cache
    from flywheel.config import CacheConfig, SemanticCacheConfig
    from flywheel.types import ChatRequest

    cache = Cache.from_config(CacheConfig(exact=False, semantic=SemanticCacheConfig(verify=verify)), store, embedder)
    if verify:  # the unverified run reuses the entries (same scope)
        for i, (_label, s1, _s2) in enumerate(rows):
            cache.save(ChatRequest.of(s1), str(i), model_version="bench")
    answers = []
    for _label, _s1, s2 in rows:
        hit = cache.lookup(ChatRequest.of(s2), model_version="bench")
        answers.append(None if hit is None else hit.text)
    return answers


def _gptcache(rows: list[tuple[int, str, str]], embedder: _Precomputed, folder: Path, thresholds: Sequence[float]
              ) -> dict[float, list[str | None]]:
    import importlib.util

    from gptcache import Cache as GPTCache
    from gptcache import Config as GPTConfig
    from gptcache.adapter.api import get, put
    from gptcache.manager import CacheBase, VectorBase, get_data_manager
    from gptcache.processor.pre import get_prompt
    from gptcache.similarity_evaluation.distance import SearchDistanceEvaluation

    dim = next(iter(embedder.table.values())).shape[0]
    if importlib.util.find_spec("faiss") is not None:
        vector_base = VectorBase("faiss", dimension=dim, index_path=str(folder / "faiss.index"))
    else:  # faiss absent: the same exact L2 search in NumPy (GPTCache would try to pip-install faiss)
        vector_base = _flat_l2_vector_base(dim)
    manager = get_data_manager(CacheBase("sqlite", sql_url=f"sqlite:///{folder / 'gptcache.db'}"), vector_base,
                               max_size=len(rows) + 1000)
    gc = GPTCache()
    gc.init(pre_embedding_func=get_prompt, embedding_func=lambda text, **_: embedder.embed([text])[0],
            data_manager=manager, similarity_evaluation=SearchDistanceEvaluation(), config=GPTConfig())
    for i, (_label, s1, _s2) in enumerate(rows):
        put(s1, str(i), cache_obj=gc)
    out = {}
    for t in thresholds:
        gc.config.similarity_threshold = t
        out[t] = [get(s2, cache_obj=gc) for _label, _s1, s2 in rows]
    return out


def _flat_l2_vector_base(dim: int) -> Any:
    from gptcache.manager.vector_data.base import VectorBase as Base

    class FlatL2(Base):
        """Exact squared-L2 search, as faiss' "IDMap,Flat" index that GPTCache uses by default."""

        def __init__(self) -> None:
            self.ids: list[int] = []
            self.rows: list[np.ndarray] = []
            self.matrix = np.zeros((0, dim), np.float32)

        def mul_add(self, datas: list) -> None:
            self.ids += [int(d.id) for d in datas]
            self.rows += [np.asarray(d.data, np.float32) for d in datas]
            self.matrix = np.stack(self.rows)

        def search(self, data: np.ndarray, top_k: int = 1) -> list | None:
            if not self.ids:
                return None
            q = np.asarray(data, np.float32).reshape(-1)
            dist = ((self.matrix - q) ** 2).sum(axis=1)
            top = np.argsort(dist)[: max(top_k, 1)]
            return [(float(dist[i]), self.ids[i]) for i in top]

        def rebuild(self, ids: Any = None) -> bool:
            return True

        def delete(self, ids: Any) -> bool:
            gone = {int(i) for i in ids}
            keep = [k for k, i in enumerate(self.ids) if i not in gone]
            self.ids = [self.ids[k] for k in keep]
            self.rows = [self.rows[k] for k in keep]
            self.matrix = np.stack(self.rows) if self.rows else np.zeros((0, dim), np.float32)
            return True

        def count(self) -> int:
            return len(self.ids)

    return FlatL2()


def run_mrpc(data: Path, vectors_file: Path | None) -> dict[str, Any]:
    from flywheel.config import SemanticCacheConfig
    from flywheel.store import Store

    rows = read_mrpc(data / "msr_paraphrase_test.txt")
    embedder = _Precomputed(_mrpc_vectors(rows, vectors_file))
    threshold = SemanticCacheConfig().threshold
    matching = round((1 + threshold) / 2, 4)
    with tempfile.TemporaryDirectory(prefix="fw-bench-cache-") as tmp:
        store = Store.open(f"sqlite:///{tmp}/store.db")
        try:
            verified = _score(_ours(rows, embedder, store, verify=True), rows)
            unverified = _score(_ours(rows, embedder, store, verify=False), rows)
        finally:
            store.close()
        try:
            theirs = _gptcache(rows, embedder, Path(tmp), sorted({matching, *GPTCACHE_SWEEP}))
        except ImportError:
            theirs = None
    ours = {"threshold": threshold, "hit_rate": verified[0], "hit_precision": verified[1],
            "unverified_hit_rate": unverified[0], "unverified_hit_precision": unverified[1], "queries": len(rows)}
    if theirs is None:
        from flywheel.bench import missing_peer

        return {**ours, "gptcache": missing_peer("gptcache", "pip install gptcache")}
    return {
        **ours,
        "gptcache_threshold": matching,
        "gptcache_hit_rate": _score(theirs[matching], rows)[0],
        "gptcache_hit_precision": _score(theirs[matching], rows)[1],
        "gptcache_sweep": [{"threshold": t, "cosine": round(2 * t - 1, 4), "hit_rate": _score(a, rows)[0],
                            "hit_precision": _score(a, rows)[1]} for t, a in sorted(theirs.items())],
    }


def read_mrpc(path: Path) -> list[tuple[int, str, str]]:
    """(label, sentence 1, sentence 2) rows of an MRPC TSV file (header line, UTF-8 BOM, no quoting).
    Also used by scripts/train_cache_verifier.py."""
    rows = []
    with path.open(encoding="utf-8-sig") as f:
        next(f)
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 5:
                rows.append((int(parts[0]), parts[3], parts[4]))
    return rows


# ------------------------------------------------------------------------------------------ latency


def run_latency(entries: int, queries: int = 300) -> dict[str, Any]:
    from flywheel.cache import Cache
    from flywheel.cache.keys import Versions
    from flywheel.config import CacheConfig, SemanticCacheConfig
    from flywheel.store import Store
    from flywheel.store.schema_cache import cache_entries, cache_semantic
    from flywheel.types import ChatRequest

    rng = np.random.default_rng(7)
    dim = 384
    with tempfile.TemporaryDirectory(prefix="fw-bench-cache-") as tmp:
        store = Store.open(f"sqlite:///{tmp}/store.db")
        try:
            table: dict[str, np.ndarray] = {}
            cache = Cache.from_config(CacheConfig(semantic=SemanticCacheConfig()), store, _Precomputed(table))
            # exact: `entries` rows, bulk-inserted; hits on random ones of them
            now = time.time()
            requests = [ChatRequest.of(f"question number {i}?", system="bench") for i in range(entries)]
            from flywheel.cache.keys import exact_key

            keys = [exact_key(r, Versions("bench")) for r in requests]
            with store.begin() as conn:
                for start in range(0, entries, 5000):
                    conn.execute(cache_entries.insert(), [
                        {"key": k, "pinned": False, "text": f"answer {i}", "created_at": now, "expires_at": None,
                         "meta": None} for i, k in enumerate(keys[start:start + 5000], start)])
            picks = iter(rng.integers(0, entries, size=10 * queries).tolist())
            exact_p50 = _p50_ms(lambda: cache.lookup(requests[next(picks)], model_version="bench"), 10 * queries)

            # semantic: `entries` random unit vectors in one scope; queries near stored ones (hits) and random
            vectors = rng.standard_normal((entries, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            probe = ChatRequest.of("probe", system="semantic bench")
            scope = cache.semantic.scope(probe, Versions("bench"))  # type: ignore[union-attr]
            with store.begin() as conn:
                for start in range(0, entries, 5000):
                    conn.execute(cache_semantic.insert(), [
                        {"scope": scope, "question": f"stored question {i}", "text": f"answer {i}",
                         "vector": vectors[i].tobytes(), "created_at": now, "expires_at": None, "meta": None}
                        for i in range(start, min(entries, start + 5000))])
            qs = []
            for j in range(queries):
                if j % 2 == 0:
                    i = int(rng.integers(0, entries))
                    v = vectors[i] + rng.standard_normal(dim).astype(np.float32) * 0.02
                    text = f"stored question {i}"
                else:
                    v, text = rng.standard_normal(dim).astype(np.float32), f"unrelated query {j}"
                table[text] = v / np.linalg.norm(v)
                qs.append(ChatRequest.of(text, system="semantic bench"))
            table["warm-up"] = vectors[0]
            t = time.perf_counter()
            cache.lookup(ChatRequest.of("warm-up", system="semantic bench"), model_version="bench")  # loads the index
            load_s = time.perf_counter() - t
            it = iter(qs)
            hits = 0

            def one() -> None:
                nonlocal hits
                hits += cache.lookup(next(it), model_version="bench") is not None

            semantic_p50 = _p50_ms(one, queries)
        finally:
            store.close()
    return {"exact_hit_p50_ms": exact_p50, "semantic_lookup_p50_ms": semantic_p50,
            "semantic_index_load_s": round(load_s, 2), "semantic_hits": hits, "semantic_queries": queries}


def _embed_p50_ms(n: int = 30) -> float | None:
    try:
        from flywheel.retrieval.embedders import local_embedder as default_embedder

        emb = default_embedder()
        emb.embed(["warm up"])
        return _p50_ms(lambda: emb.embed(["How do I pin a model version in flywheel?"]), n)
    except Exception:  # noqa: BLE001 - reported as null when the local model is unavailable
        return None


@click.command()
@click.option("--entries", default=100_000, show_default=True, type=click.IntRange(1000),
              help="Entries in the latency runs (exact and one semantic scope).")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="The benchmark data folder holding mrpc/ (or the mrpc folder itself) "
                   "[$FLYWHEEL_BENCH_DATA, else ../shared/data].")
@click.option("--vectors", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="npz file to keep the MRPC embeddings between runs.")
@click.option("--skip-mrpc", is_flag=True, help="Only the latency runs.")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON result.")
def command(entries: int, data: Path | None, vectors: Path | None, skip_mrpc: bool, as_json: bool) -> None:
    """Cache latency at --entries entries, and semantic hit precision on MRPC against GPTCache."""
    from flywheel.bench import data_root, dataset_dir
    from flywheel.cli import emit_json
    from flywheel.errors import UserError

    mrpc: Path | None = None
    if not skip_mrpc:
        _read_vectors(vectors)  # a bad --vectors file is reported now, not after the latency runs
        try:
            mrpc = dataset_dir(data_root(data), "mrpc", "cache")
        except UserError as exc:
            if data is not None:
                raise  # a folder given explicitly must hold the data
            click.echo(f"{exc.render()}\n(skipping the hit-precision run; --skip-mrpc silences this)", err=True)
    result: dict[str, Any] = {}
    if not as_json:
        click.echo(f"latency runs at {entries} entries …", err=True)
    result.update(run_latency(entries))
    result["entries"] = entries
    result["embed_p50_ms"] = _embed_p50_ms()
    if mrpc is None:
        result["mrpc"] = {"status": "skipped" if skip_mrpc else "missing", "dataset": "mrpc"}
    else:
        if not as_json:
            click.echo("MRPC hit precision: flywheel vs GPTCache …", err=True)
        result["mrpc"] = run_mrpc(mrpc, vectors)
    result["targets"] = TARGETS
    m = result["mrpc"] if "hit_precision" in result["mrpc"] else {}
    result["targets_met"] = bool(
        result["exact_hit_p50_ms"] <= TARGETS["exact_hit_p50_ms"]
        and result["semantic_lookup_p50_ms"] <= TARGETS["semantic_lookup_p50_ms"]
        and (not m or (m["hit_precision"] >= TARGETS["hit_precision"] and m["hit_rate"] >= TARGETS["hit_rate"])))
    emit_json(result)
    if not as_json:
        click.echo(json.dumps({"targets_met": result["targets_met"]}), err=True)
    sys.stdout.flush()

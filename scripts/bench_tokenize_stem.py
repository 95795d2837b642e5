"""Keyword tokenisation throughput with and without English stemming, side by side in one run, on the English
retrieval sets committed under benchmarks/retrieval-sets/ (debian-desc-en-dev, manpages-en-dev documents): the
tokenizer without stemming (flywheel.text.tokenize, what keyword_tokens was before TOKENIZER_VERSION 3) against
flywheel.retrieval.tokenize.keyword_tokens, interleaved. `cold`: the remembered stems emptied first (an ingest
of a new corpus, each distinct word stemmed once); `warm`: remembered. Minimums over the repeats (the least
disturbed by other processes on a shared machine), and how many tokens stemming changed.

    python scripts/bench_tokenize_stem.py [--repeats 3]

Prints JSON.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from collections.abc import Callable
from pathlib import Path

from flywheel.retrieval import tokenize as keyword
from flywheel.text import stem
from flywheel.text import tokenize as plain

ROOT = Path(__file__).resolve().parent.parent
SETS = ("debian-desc-en-dev", "manpages-en-dev")


def texts() -> list[str]:
    out: list[str] = []
    for name in SETS:
        with gzip.open(ROOT / "benchmarks" / "retrieval-sets" / name / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
            out += [json.loads(line)["text"] for line in f]
    return out


def timed(fn: Callable[[str], list[str]], corpus: list[str], before: Callable[[], object] = lambda: None) -> float:
    before()
    t0 = time.perf_counter()
    for text in corpus:
        fn(text)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    corpus = texts()
    plain(corpus[0])  # imports, compiled patterns
    runs: dict[str, list[float]] = {"unstemmed": [], "stemmed_cold": [], "stemmed_warm": []}
    for _ in range(args.repeats):
        runs["unstemmed"].append(timed(plain, corpus))
        runs["stemmed_cold"].append(timed(keyword.keyword_tokens, corpus, stem.cache_clear))
        runs["stemmed_warm"].append(timed(keyword.keyword_tokens, corpus))
    chars = sum(map(len, corpus))
    changed = sum(a != b for text in corpus for a, b in zip(plain(text), keyword.keyword_tokens(text), strict=True))
    best = {k: min(v) for k, v in runs.items()}
    print(json.dumps({
        "texts": len(corpus), "chars": chars, "tokens": sum(len(plain(t)) for t in corpus), "tokens_stemmed": changed,
        "distinct_words": stem.cache_info().currsize, "seconds_min": {k: round(v, 3) for k, v in best.items()},
        "chars_per_s": {k: round(chars / v) for k, v in best.items()},
        "warm_over_unstemmed": round(best["stemmed_warm"] / best["unstemmed"], 2),
        "cold_over_unstemmed": round(best["stemmed_cold"] / best["unstemmed"], 2),
    }, indent=2))


if __name__ == "__main__":
    main()

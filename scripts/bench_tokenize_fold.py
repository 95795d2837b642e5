"""Keyword tokenisation throughput with and without the traditional → simplified fold, side by side in one
run, on the cmrc2018 passages and questions (../shared/data/cmrc2018-dev): the tokenizer of commit --before
(no fold) against the working tree's, runs interleaved (alternating which goes first), the LRU cache of CJK
runs cleared before each pass (every text tokenized as an ingest sees it, once). Also the fold alone
(str.translate) and how many texts' tokens changed. Medians and minimums: the minimum is the least disturbed
by other processes on a shared machine.

    python scripts/bench_tokenize_fold.py [--before 0f92e76] [--repeats 5]

Prints JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "cmrc2018-dev"
PATH = "src/flywheel/text/tokenize.py"


def module_at(rev: str) -> ModuleType:
    source = subprocess.run(["git", "show", f"{rev}:{PATH}"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tokenize_before.py"
        path.write_text(source, encoding="utf-8")
        spec = importlib.util.spec_from_file_location("tokenize_before", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def texts() -> list[str]:
    out = []
    for name, fields in (("corpus.jsonl", ("title", "text")), ("queries.jsonl", ("text",))):
        with (DATA / name).open(encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                out.append("\n".join(row[k] for k in fields))
    return out


def one_pass(module: ModuleType, corpus: list[str]) -> float:
    module._segment_run.cache_clear()
    tokenize: Callable[[str], list[str]] = module.tokenize
    start = time.perf_counter()
    for t in corpus:
        tokenize(t)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="0f92e76", help="commit whose tokenizer does not fold")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if not DATA.exists():
        print(f"no {DATA}: the cmrc2018 data is not here", file=sys.stderr)
        return 1
    after = importlib.import_module("flywheel.text.tokenize")  # the module, not flywheel.text's function
    fold_traditional = after.fold_traditional
    before = module_at(args.before)
    corpus = texts()
    chars = sum(len(t) for t in corpus)
    for module in (before, after):  # jieba loaded, the first pass's costs paid
        one_pass(module, corpus[:50])
    seconds: dict[str, list[float]] = {"before": [], "after": []}
    for i in range(args.repeats):  # alternating which goes first
        for name in (("before", "after") if i % 2 == 0 else ("after", "before")):
            seconds[name].append(one_pass(before if name == "before" else after, corpus))
    joined = "\n".join(corpus)
    fold_runs = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        fold_traditional(joined)
        fold_runs.append(time.perf_counter() - start)
    changed = sum(before.tokenize(t) != after.tokenize(t) for t in corpus)
    median = {k: statistics.median(v) for k, v in seconds.items()}

    def side(name: str) -> dict:
        return {"median_s": round(median[name], 3), "min_s": round(min(seconds[name]), 3),
                "chars_per_s_median": round(chars / median[name]),
                "chars_per_s_best": round(chars / min(seconds[name])),
                "runs_s": [round(x, 3) for x in seconds[name]]}

    print(json.dumps({
        "data": "cmrc2018-dev corpus + queries", "texts": len(corpus), "chars": chars,
        "repeats": args.repeats, "before": {"rev": args.before, **side("before")}, "after": side("after"),
        "after_over_before_median": round(median["after"] / median["before"], 4),
        "after_over_before_min": round(min(seconds["after"]) / min(seconds["before"]), 4),
        "fold_alone_chars_per_s": round(len(joined) / statistics.median(fold_runs)),
        "texts_whose_tokens_changed": changed,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""BEIR datasets: `corpus.jsonl` (`_id`, `title`, `text`), `queries.jsonl` (`_id`, `text`), `qrels/<split>.tsv`
(`query-id corpus-id score`, header line). Test queries are those that have qrels in the split."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from flywheel.errors import UserError
from flywheel.retrieval import metrics


@dataclass
class BeirDataset:
    folder: Path
    corpus: Path
    queries: dict[str, str]  # query id → text, only the split's queries, in file order
    qrels: dict[str, dict[str, int]]  # query id → {corpus id: grade}


def load_beir(folder: str | Path, split: str = "test") -> BeirDataset:
    folder = Path(folder)
    corpus, queries_path, qrels_path = folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv"
    for p in (corpus, queries_path, qrels_path):
        if not p.is_file():
            raise UserError(f"{folder} is not a BEIR dataset: {p.name} is missing",
                            hint="a BEIR folder has corpus.jsonl, queries.jsonl and qrels/test.tsv")
    qrels: dict[str, dict[str, int]] = {}
    with qrels_path.open(encoding="utf-8") as f:
        for i, row in enumerate(csv.reader(f, delimiter="\t")):
            if i == 0 and row and not row[-1].strip().lstrip("-").isdigit():
                continue  # header line
            if len(row) < 3:
                continue
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    queries: dict[str, str] = {}
    with queries_path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                q = json.loads(line)
                qid = str(q["_id"])
                if qid in qrels:
                    queries[qid] = q["text"]
    return BeirDataset(folder, corpus, queries, {q: r for q, r in qrels.items() if q in queries})


def evaluate_run(run: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]],
                 wanted: Sequence[str] = ("ndcg@10", "mrr@10", "recall@5", "recall@10")) -> dict[str, float]:
    """BEIR-style evaluation: a retrieved id equal to the query's own id is not counted (BEIR's rule for
    datasets where queries are also documents)."""
    cleaned = {q: [d for d in metrics.dedupe(ranked) if d != q] for q, ranked in run.items()}
    return metrics.evaluate(cleaned, qrels, wanted)

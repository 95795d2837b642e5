"""Retrieval sets with hard negatives, built deterministically from the public data in ../shared/data, for
`flywheel bench retrieval --sets`. Each is written as a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv).

- `cmrc2018-sentence-{dev,heldout}` (Chinese): every sentence of a CMRC 2018 passage is a document (titled with
  its article); a question's relevant documents are the sentences of its gold passage that contain an answer.
  The other sentences of the same passage are on the same topic and do not answer: hard negatives.
- `cmrc2018-passage-heldout` (Chinese): the original passage-level task on the held-out articles only.
- `mrpc-{train,test}` (English news): the corpus is sentence 1 of every pair plus sentence 2 of every
  non-paraphrase pair; a query is sentence 2 of a paraphrase pair and its relevant document its sentence 1.
  Non-paraphrase pairs were drawn from the same news clusters (same event, different claim): hard negatives.

Articles are split into dev / held-out by a hash of their title (crc32, even = dev), so the two halves share no
document. Ranking parameters are chosen on the `dev` sets (cmrc2018-sentence-dev, mrpc-train) only; the
held-out ones (cmrc2018-sentence-heldout, cmrc2018-passage-heldout, mrpc-test) are reported, never tuned on.

The `debian-desc-*` and `manpages-*` sets (retrieval_sets_debian.py) are committed under benchmarks/retrieval-sets/,
already split into `dev` and `heldout` halves by a hash of the package / page name; they need no data folder.
"""

from __future__ import annotations

import csv
import json
import zlib
from pathlib import Path
from typing import Any

# name -> (language, role, builder kind, argument)
SETS: dict[str, tuple[str, str, str, str]] = {
    "cmrc2018-sentence-dev": ("zh", "dev", "cmrc-sentence", "dev"),
    "mrpc-train": ("en", "dev", "mrpc", "msr_paraphrase_train.txt"),
    "cmrc2018-sentence-heldout": ("zh", "heldout", "cmrc-sentence", "heldout"),
    "cmrc2018-passage-heldout": ("zh", "heldout", "cmrc-passage", "heldout"),
    "mrpc-test": ("en", "heldout", "mrpc", "msr_paraphrase_test.txt"),
}
for _name, _lang in (("debian-desc-en", "en"), ("debian-desc-zh", "zh"), ("manpages-en", "en"),
                     ("manpages-zh", "zh")):
    for _role in ("dev", "heldout"):
        SETS[f"{_name}-{_role}"] = (_lang, _role, "packaged", f"{_name}-{_role}")
# the data folder a kind is built from ("" = committed under benchmarks/retrieval-sets/)
NEEDS = {"cmrc-sentence": "cmrc2018-dev", "cmrc-passage": "cmrc2018-dev", "mrpc": "mrpc", "packaged": ""}


def _half(title: str) -> str:
    return "dev" if zlib.crc32(title.encode("utf-8")) % 2 == 0 else "heldout"


def _write(folder: Path, corpus: list[dict[str, Any]], queries: list[dict[str, Any]],
           qrels: list[tuple[str, str]]) -> Path:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in corpus)
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(q, ensure_ascii=False) + "\n" for q in queries)
    with (folder / "qrels" / "test.tsv").open("w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        f.writelines(f"{q}\t{d}\t1\n" for q, d in qrels)
    return folder


def _cmrc(source: Path) -> tuple[list[dict], dict[str, dict], dict[str, str]]:
    passages = [json.loads(line) for line in (source / "corpus.jsonl").open(encoding="utf-8") if line.strip()]
    queries = {q["_id"]: q for q in (json.loads(line) for line in (source / "queries.jsonl").open(encoding="utf-8")
                                     if line.strip())}
    gold: dict[str, str] = {}
    with (source / "qrels" / "test.tsv").open(encoding="utf-8") as f:
        for row in list(csv.reader(f, delimiter="\t"))[1:]:
            gold.setdefault(row[0], row[1])
    return passages, queries, gold


def cmrc_passages(source: Path, half: str, out: Path) -> Path:
    passages, queries, gold = _cmrc(source)
    keep = {p["_id"] for p in passages if _half(p.get("title", "")) == half}
    corpus = [p for p in passages if p["_id"] in keep]
    qs = [{"_id": q, "text": queries[q]["text"]} for q, d in gold.items() if d in keep and q in queries]
    return _write(out, corpus, qs, [(q["_id"], gold[q["_id"]]) for q in qs])


def cmrc_sentences(source: Path, half: str, out: Path) -> Path:
    from flywheel.text import split_sentences

    passages, queries, gold = _cmrc(source)
    corpus: list[dict[str, Any]] = []
    by_passage: dict[str, list[tuple[str, str]]] = {}
    for p in passages:
        if _half(p.get("title", "")) != half:
            continue
        for i, sentence in enumerate(split_sentences(p["text"])):
            sid = f"{p['_id']}_S{i}"
            corpus.append({"_id": sid, "title": p.get("title", ""), "text": sentence})
            by_passage.setdefault(p["_id"], []).append((sid, sentence))
    qs, qrels = [], []
    for qid, pid in gold.items():
        if pid not in by_passage or qid not in queries:
            continue
        answers = [a for a in queries[qid].get("answers", []) if a]
        relevant = [sid for sid, s in by_passage[pid] if any(a in s for a in answers)]
        if not relevant:  # the answer spans a sentence boundary
            continue
        qs.append({"_id": qid, "text": queries[qid]["text"]})
        qrels += [(qid, sid) for sid in relevant]
    return _write(out, corpus, qs, qrels)


def mrpc(source: Path, filename: str, out: Path) -> Path:
    rows = list(csv.reader((source / filename).open(encoding="utf-8-sig"), delimiter="\t",
                           quoting=csv.QUOTE_NONE))[1:]
    corpus: dict[str, dict[str, str]] = {}
    qs: dict[str, dict[str, str]] = {}
    qrels: list[tuple[str, str]] = []
    for row in rows:
        if len(row) < 5:
            continue
        label, id1, id2, s1, s2 = row[:5]
        corpus.setdefault(f"s{id1}", {"_id": f"s{id1}", "text": s1})
        if label == "0":
            corpus.setdefault(f"s{id2}", {"_id": f"s{id2}", "text": s2})
        else:
            qs.setdefault(f"q{id2}", {"_id": f"q{id2}", "text": s2})
            qrels.append((f"q{id2}", f"s{id1}"))
    return _write(out, list(corpus.values()), list(qs.values()), qrels)


def build(name: str, data_root: Path | None, out: Path) -> Path:
    """Write set `name` (a key of SETS) from `data_root` (holding cmrc2018-dev/ and mrpc/; unused for the
    committed sets) into `out`."""
    _, _, kind, arg = SETS[name]
    if kind == "packaged":
        from flywheel.bench.retrieval_sets_debian import unpack

        return unpack(arg, out)
    assert data_root is not None, f"{name} is built from {NEEDS[kind]}/"
    source = data_root / NEEDS[kind]
    if kind == "cmrc-sentence":
        return cmrc_sentences(source, arg, out)
    if kind == "cmrc-passage":
        return cmrc_passages(source, arg, out)
    return mrpc(source, arg, out)

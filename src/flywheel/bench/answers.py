"""`flywheel bench answers`: does the offline answerer answer? A question set over real articles, asked through
the real docs_qa app with the extractive model, in a temporary project.

The set (`tests/data/qa_set/`, or `--data DIR`):

- `questions.jsonl`: `{id, question, answer_phrases, lang, in_corpus, split, source}`. In-corpus questions are
  about flywheel's own `docs/` (English, and `docs/zh/`), and about three Chinese articles written for this set
  in the style of WeChat technical posts, boilerplate included (`articles/`). Out-of-corpus questions are
  about nothing in the corpus.
- `cmrc.jsonl`: `{id, cmrc_query, split}`: questions of the public CMRC 2018 dev set (Chinese Wikipedia
  passages, CC BY-SA 4.0, github.com/ymcui/cmrc2018) by id; their text and answers are read from the BEIR
  copy given by `--cmrc DIR` (default `../shared/data/cmrc2018-dev`), whose whole corpus is ingested too.
  Without it those questions are reported as missing.

Every question has a `split`: `dev` (looked at while building the answerer) or `test` (held out: only
measured). Reported per split and language:

- `answered_with_phrase`: in-corpus questions answered (not refused, at least one citation) with an answer
  phrase in the text (NFKC, case and whitespace ignored). Target ≥ 0.80.
- `false_refusal`: in-corpus questions refused or declined. Target ≤ 0.10.
- `idk_rate`: out-of-corpus questions refused or declined. Target ≥ 0.90.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Any

import click

TARGETS = {"answered_with_phrase": 0.80, "false_refusal": 0.10, "idk_rate": 0.90}


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def default_data() -> Path:
    for base in (Path.cwd(), _repo_root()):
        if (base / "tests" / "data" / "qa_set" / "questions.jsonl").is_file():
            return base / "tests" / "data" / "qa_set"
    return Path.cwd() / "tests" / "data" / "qa_set"


def default_cmrc() -> Path:
    for base in (Path.cwd(), _repo_root()):
        candidate = base.parent / "shared" / "data" / "cmrc2018-dev"
        if candidate.is_dir():
            return candidate
    return Path.cwd().parent / "shared" / "data" / "cmrc2018-dev"


def _norm(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_questions(data: Path, cmrc: Path | None) -> tuple[list[dict[str, Any]], list[str]]:
    """(questions, notes): the set's own questions plus the CMRC ones resolved from the dataset folder."""
    from flywheel.errors import UserError

    own = _read_jsonl(data / "questions.jsonl")
    if not own:
        raise UserError(f"no questions in {data / 'questions.jsonl'}",
                        hint="pass --data DIR, a folder with questions.jsonl (see tests/data/qa_set/)")
    refs = _read_jsonl(data / "cmrc.jsonl")
    notes: list[str] = []
    if refs and (cmrc is None or not (cmrc / "queries.jsonl").is_file()):
        notes.append(f"{len(refs)} CMRC 2018 questions missing: no dataset at {cmrc} (CMRC 2018 dev, CC BY-SA "
                     "4.0, github.com/ymcui/cmrc2018, as BEIR; pass --cmrc DIR)")
        return own, notes
    if refs:
        assert cmrc is not None  # returned above when refs have no dataset
        queries = {q["_id"]: q for q in _read_jsonl(cmrc / "queries.jsonl")}
        for ref in refs:
            q = queries.get(ref["cmrc_query"])
            if q is None:
                notes.append(f"CMRC query {ref['cmrc_query']} not in {cmrc}")
                continue
            own.append({"id": ref["id"], "question": q["text"], "answer_phrases": q["answers"], "lang": "zh",
                        "in_corpus": True, "split": ref["split"], "source": "cmrc2018"})
    return own, notes


def _score(rows: list[dict[str, Any]]) -> dict[str, Any]:
    inside = [r for r in rows if r["in_corpus"]]
    outside = [r for r in rows if not r["in_corpus"]]
    out: dict[str, Any] = {"in_corpus": len(inside), "out_of_corpus": len(outside)}
    if inside:
        out["answered_with_phrase"] = round(sum(r["has_phrase"] for r in inside) / len(inside), 3)
        out["false_refusal"] = round(sum(r["idk"] for r in inside) / len(inside), 3)
        # of those, how many retrieval refused (nothing above the floor / in the question's language)
        out["false_refusal_no_passage"] = round(sum(r["no_passage"] for r in inside) / len(inside), 3)
    if outside:
        out["idk_rate"] = round(sum(r["idk"] for r in outside) / len(outside), 3)
    return out


def run(data: Path, cmrc: Path | None, embedder: str = "none", show: str = "", log: Any = None) -> dict[str, Any]:
    from flywheel.apps.runtime import Runtime
    from flywheel.config import Project
    from flywheel.retrieval.ingest import ingest

    log = log or (lambda *_: None)
    questions, notes = load_questions(data, cmrc)
    docs = Path(__file__).resolve().parents[1] / "docs"  # the bundled docs: docs/ and docs/zh/
    paths = [docs, data / "articles"]
    if any(q["source"] == "cmrc2018" for q in questions) and cmrc is not None:
        paths.append(cmrc / "corpus.jsonl")
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-answers-") as tmp:
        root = Path(tmp)
        (root / "flywheel.yaml").write_text(f"retrieval: {{embedder: {embedder}}}\n", encoding="utf-8")
        project = Project.load(root)
        with Runtime(project, tracing=False) as rt:
            log(f"ingesting {', '.join(str(p) for p in paths)} …")
            summary = ingest(paths, rt.store, project.config, root=Path(os.path.commonpath(paths)))
            log(f"{summary.chunks_added} chunks in {summary.seconds:.1f} s; boilerplate dropped: {summary.boilerplate}")
            app = rt.app("docs_qa", cache=False)
            rows = []
            started = time.perf_counter()
            for q in questions:
                answer = app.run(q["question"])
                idk = bool(answer.refused or not answer.citations)
                phrases = q.get("answer_phrases") or []
                has = not idk and any(_norm(p) in _norm(answer.text) for p in phrases)
                rows.append({**q, "idk": idk, "has_phrase": has, "answer": answer.text,
                             "no_passage": answer.refusal == "no_passage"})
            seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "questions": len(rows), "notes": notes, "targets": TARGETS,
        "corpus": {"chunks": summary.chunks_added, "boilerplate_dropped": summary.boilerplate,
                   "embedder": embedder},
        "seconds_per_question": round(seconds / max(len(rows), 1), 4),
    }
    for split in ("dev", "test"):
        part = [r for r in rows if r["split"] == split]
        result[split] = {"all": _score(part), **{lang: _score([r for r in part if r["lang"] == lang])
                                                 for lang in sorted({r["lang"] for r in part})}}
    if show:  # only a split you may look at: the held-out one is for measuring
        result["misses"] = [{"id": r["id"], "question": r["question"], "in_corpus": r["in_corpus"],
                             "answer": r["answer"][:400]}
                            for r in rows if r["split"] == show
                            and (r["in_corpus"] and not r["has_phrase"] or not r["in_corpus"] and not r["idk"])]
    return result


@click.command()
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The question set folder (questions.jsonl, cmrc.jsonl, articles/) [tests/data/qa_set].")
@click.option("--cmrc", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="CMRC 2018 dev as BEIR (CC BY-SA 4.0, github.com/ymcui/cmrc2018) [../shared/data/cmrc2018-dev].")
@click.option("--embedder", type=click.Choice(["none", "local"]), default="none",
              help="The retrieval embedder of the temporary project (none: BM25 only, fast).")
@click.option("--show-misses", "show", type=click.Choice(["dev"]), default=None,
              help="List the dev questions answered wrongly (the held-out test split is never listed).")
@click.option("--json", "as_json", is_flag=True, help="Only the JSON (no progress lines).")
def command(data: Path | None, cmrc: Path | None, embedder: str, show: str | None, as_json: bool) -> None:
    """Extractive answers on a question set: answer-phrase rate, false refusals, "I don't know" rate, as JSON."""

    def log(msg: str) -> None:
        if not as_json:
            click.secho(msg, dim=True, err=True)

    result = run(data or default_data(), cmrc or default_cmrc(), embedder, show or "", log=log)
    click.echo(json.dumps(result, ensure_ascii=False, indent=2))

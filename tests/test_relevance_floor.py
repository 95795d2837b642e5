"""The relevance floor: a hit's relevance is the larger of keyword coverage and dense cosine, and a search is
refused only when no hit reaches the floor on either signal (docs/retrieval.md, "The relevance floor")."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from flywheel.config import RetrievalConfig
from flywheel.retrieval import embedders
from flywheel.retrieval.ingest import ingest
from flywheel.retrieval.retriever import AUTO_FLOOR, Retriever, open_index


class Unrelated(embedders.Embedder):
    """English-only, like MiniLM, but its vectors say nothing: every cosine is near 0, far below the 0.40 floor
    (the way a real embedder scores a question worded unlike the passage that answers it)."""

    name = "fake-unrelated"
    languages = frozenset({"en"})

    def embed(self, texts):
        rows = [np.random.default_rng(sum(t.encode())).standard_normal(256) for t in texts]
        return embedders._normalise(np.array(rows, np.float32)) if rows else np.zeros((0, 256), np.float32)


TOPICS = [{"cache", "remember", "replies", "paraphrased"}, {"keys", "budgets", "limits", "spend"}]


class Topical(embedders.Embedder):
    """English-only; one dimension per topic word list, so a paraphrase sharing no word still matches."""

    name = "fake-topical"
    languages = frozenset({"en"})

    def embed(self, texts):
        rows = []
        for t in texts:
            words = re.findall(r"[a-z]+", t.lower())
            rows.append([sum(w in topic for w in words) for topic in TOPICS] + [0.1])
        return embedders._normalise(np.array(rows, np.float32)) if rows else np.zeros((0, 3), np.float32)


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "en.md").write_text("# Cache\nThe semantic cache answers paraphrased questions.\n\n"
                                "# Keys\nVirtual keys carry budgets and rate limits.\n\n"
                                "# Tracing\nEvery call is recorded as a span with its cost.\n", encoding="utf-8")
    (docs / "zh.md").write_text("# 专辑\nKellylicious是陈慧琳自2006年的Happy Girl后睽违已久的专辑。\n", encoding="utf-8")
    return docs


def _retriever(store, tmp_path: Path, embedder: embedders.Embedder | None) -> Retriever:
    ingest([_docs(tmp_path)], store, RetrievalConfig(), embedder=embedder, root=tmp_path)
    return Retriever(open_index(store), embedder, RetrievalConfig())


def test_a_question_bm25_answers_is_not_refused_with_the_embedder_on(store, tmp_path):
    question = "What do virtual keys carry?"
    with_embedder = _retriever(store, tmp_path, Unrelated())
    bm25_only = Retriever(open_index(store), None, RetrievalConfig())
    assert bm25_only.search(question)[0].chunk.text.startswith("Virtual keys")
    hits = with_embedder.search(question)
    assert hits, "the embedder's low cosine must not refuse what keyword coverage passes"
    keys = next(h for h in hits if h.chunk.text.startswith("Virtual keys"))
    # the dense side ran and alone would refuse: its cosine is below its floor, the coverage is above its own
    assert all(h.scores["dense"] < AUTO_FLOOR["dense"] for h in hits if "dense" in h.scores)
    assert "dense" in keys.scores and keys.scores["coverage"] >= AUTO_FLOOR["coverage"]
    for h in hits:
        assert h.scores["relevance"] == round(max(h.scores["coverage"], h.scores.get("dense", 0.0)), 4)
    # the floor only decides refusals: the hits and their order are those of a search without a floor
    no_floor = Retriever(open_index(store), Unrelated(), RetrievalConfig(min_relevance=None))
    assert [h.chunk.id for h in hits] == [h.chunk.id for h in no_floor.search(question)]


def test_out_of_corpus_questions_are_still_refused_with_the_embedder_on(store, tmp_path):
    retriever = _retriever(store, tmp_path, Unrelated())
    assert retriever.search("How do I bake sourdough bread at home?") == []
    # a Chinese passage sharing one Latin word passes on coverage, the English ones come from the dense side
    # below its floor: the passing hit is not in the question's language, so nothing can answer
    assert retriever.search("How can I be happy?") == []
    assert Retriever(open_index(store), None, RetrievalConfig()).search("How can I be happy?") == []


def test_a_paraphrase_passes_on_the_dense_cosine_alone(store, tmp_path):
    retriever = _retriever(store, tmp_path, Topical())
    question = "Does it remember earlier replies?"
    assert Retriever(open_index(store), None, RetrievalConfig()).search(question) == []  # no shared word
    hits = retriever.search(question)
    assert hits and hits[0].chunk.text.startswith("The semantic cache")
    assert hits[0].scores["coverage"] == 0.0 and hits[0].scores["relevance"] == round(hits[0].scores["dense"], 4) >= 0.4


def test_a_number_floor_applies_to_both_signals_and_null_turns_it_off(store, tmp_path):
    ingest([_docs(tmp_path)], store, RetrievalConfig(), embedder=Unrelated(), root=tmp_path)
    question = "What do virtual keys carry?"  # coverage 1.0 on the keys chunk, cosines near 0
    assert Retriever(open_index(store), Unrelated(), RetrievalConfig(min_relevance=0.9)).search(question)
    assert Retriever(open_index(store), Unrelated(), RetrievalConfig(min_relevance=0.3)).search("bread") == []
    assert Retriever(open_index(store), Unrelated(), RetrievalConfig(min_relevance=None)).search("bread")

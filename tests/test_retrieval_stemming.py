"""English word forms in keyword search: keyword_tokens stems English words (Snowball English), the same for the
index and the query, so "the refund rule" finds "Refund rules"; names (min_relevance, settings.yaml, v1.2),
tokens with digits and Chinese keep their exact form; TOKENIZER_VERSION 3 makes a store indexed before warn
and re-index."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from docs_support import bm25_runtime, offline_app

from flywheel.config import RetrievalConfig
from flywheel.retrieval.ingest import ingest
from flywheel.retrieval.retriever import Retriever, open_index
from flywheel.retrieval.tokenize import TOKENIZER_VERSION, keyword_tokens, marked_tokens, unglue_chinese
from flywheel.store import Store
from flywheel.text import tokenize as text_tokenize
from flywheel.text.tokenize import singular_acronyms

REPO = Path(__file__).resolve().parents[1]
KEYWORD_ONLY = RetrievalConfig(embedder="none")
PAGES = {
    "refund.md": """# After-sales

## Refund rules

Within 7 days of delivery, unused items in their original packaging can be refunded without giving a reason.
Custom-made and virtual goods cannot be refunded without a reason. Refunds are paid back to the original
payment method within 3 working days of approval.
""",
    "orders.md": """# Orders

## Finding an order

The "My orders" page lists all your orders. Every order has a unique order number, for example 20240101001.
""",
    "config.md": """# Configuration

## The relevance floor

`min_relevance` in settings.yaml sets the floor; `retrieval.fusion` picks how rankings are combined.
""",
}


# ------------------------------------------------------------------ the tokens
@pytest.mark.parametrize("forms", [("rule", "rules", "Rules"), ("refund", "refunds", "refunded", "refunding"),
                                   ("policy", "policies"), ("API", "APIs"), ("e-mail", "e-mails")])
def test_word_forms_share_their_tokens(forms):
    assert len({tuple(keyword_tokens(f)) for f in forms}) == 1, [keyword_tokens(f) for f in forms]
    assert keyword_tokens("What is the refund rule?") == keyword_tokens("Refund rules") == ["refund", "rule"]


@pytest.mark.parametrize("text,tokens", [
    ("min_relevance", ["min", "relevance"]),  # "relevance" stemmed would be "relev"
    ("max_tokens_used", ["max", "tokens", "used"]),
    ("__init__", ["init"]),
    ("settings.yaml", ["settings", "yaml"]),  # "settings" stemmed would be "set"
    ("os.path.joins", ["os", "path", "joins"]),
    ("docs/rules.md", ["docs", "rules", "md"]),
    ("std::vectors", ["std", "vectors"]),
    ("v1.2 s3 gpt4 sha256 12345", ["v1", "2", "s3", "gpt4", "sha256", "12345"]),
    ("Set min_relevance for the rules in settings.yaml.", ["set", "min", "relevance", "rule", "settings", "yaml"]),
])
def test_names_and_tokens_with_digits_keep_their_exact_form(text, tokens):
    assert keyword_tokens(text) == tokens


@pytest.mark.parametrize("text", ["退款规则是什么？", "發票怎麼開？", "数据飞轮把用户反馈变成评测数据和训练数据。",
                                  "東京タワー", "café naïve Straße", "правила возврата"])
def test_chinese_and_other_scripts_are_untouched(text):
    assert keyword_tokens(text) == text_tokenize(text)


def test_mixed_chinese_and_english_stems_only_the_english_words():
    assert keyword_tokens("退款 rules 配置min_relevance是") == ["退款", "rule", "配置", "min", "relevance"]


def test_marking_names_cuts_the_text_only_where_tokens_end():
    """marked_tokens cuts the text at names and tokenizes the pieces: its tokens are exactly the tokenizer's
    over the whole text, for every page of the docs (English and Chinese, code and paths included)."""
    pages = sorted((REPO / "docs").glob("*.md")) + sorted((REPO / "docs" / "zh").glob("*.md"))
    assert len(pages) > 10
    names = 0
    for page in pages:
        for paragraph in page.read_text(encoding="utf-8").split("\n\n"):
            marked = marked_tokens(paragraph)
            assert [t for t, _ in marked] == unglue_chinese(text_tokenize(singular_acronyms(paragraph))), paragraph[:200]
            names += sum(not word for _, word in marked)
    assert names > 100  # the docs do name things


# ------------------------------------------------------------------ search and the offline app
@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    with bm25_runtime(tmp_path_factory.mktemp("stemming"), PAGES) as rt:
        yield rt


@pytest.mark.parametrize("question", ["What is the refund rule for order 12345?",
                                      "What are the refund rules for order 12345?",
                                      "When is a refund paid back?"])
def test_the_offline_app_answers_the_singular_as_the_plural(runtime, question):
    answer = offline_app(runtime.retriever).run(question)
    assert not answer.refused, answer.text
    assert answer.citations[0].source == "docs/refund.md"


def test_a_name_is_found_by_its_exact_form(runtime):
    hits = runtime.retriever.search("min_relevance", mode="bm25")
    assert hits and hits[0].chunk.source == "docs/config.md" and hits[0].scores["coverage"] == 1.0


@pytest.mark.parametrize("question", ["How do I grow tomatoes?", "What career should I pursue after order 12345?"])
def test_off_topic_questions_are_still_refused(runtime, question):
    assert offline_app(runtime.retriever).run(question).refused


# ------------------------------------------------------------------ a store indexed before stemming
def test_a_store_indexed_by_version_2_warns_and_the_next_ingest_reindexes_it(tmp_path, caplog, monkeypatch):
    assert TOKENIZER_VERSION == "4"
    paths = []
    for name, text in PAGES.items():
        (tmp_path / "docs").mkdir(exist_ok=True)
        (path := tmp_path / "docs" / name).write_text(text, encoding="utf-8")
        paths.append(path)
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        monkeypatch.setattr(sys.modules["flywheel.retrieval.ingest"], "TOKENIZER_VERSION", "2")
        ingest(paths, store, KEYWORD_ONLY, root=tmp_path)
        monkeypatch.undo()
        retriever = Retriever(open_index(store), None, KEYWORD_ONLY)
        with caplog.at_level(logging.WARNING, logger="flywheel.retrieval"):
            retriever.search("refund rules")
            retriever.search("orders")
        warned = [m for m in caplog.messages if "tokenizer" in m]
        assert len(warned) == 1, caplog.messages
        assert "3 of 3 indexed files" in warned[0] and "; 3: English words stemmed;" in warned[0]
        assert "run `flywheel ingest PATH` on the same paths" in warned[0]

        again = ingest(paths, store, KEYWORD_ONLY, root=tmp_path)
        assert (again.indexed, again.unchanged) == (3, 0)  # the settings hash holds the version
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="flywheel.retrieval"):
            hits = retriever.search("refund rule", mode="bm25")
        assert hits[0].chunk.source == "docs/refund.md"
        assert retriever.stale_tokenizer_files("default") == 0
        assert not [m for m in caplog.messages if "tokenizer" in m]
    finally:
        store.close()


def test_chinese_between_two_names_is_kept():
    assert keyword_tokens("x_b中文c_d s_y.z rules") == ["x", "b", "中文", "c", "d", "s", "y", "z", "rule"]

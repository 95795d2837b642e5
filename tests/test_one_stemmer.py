"""One English stemmer (flywheel.text's `stem`, Snowball English) for the keyword index and the extractive model.
The keyword index's tokens did not change with it (TOKENIZER_VERSION 4 only adds acronym plurals): checked on real
English sentences, against a digest taken before the stemmer moved and against the Snowball stemmer called directly."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import snowballstemmer

from flywheel.gateway.providers.extractive import extractive_answer, split_sentences, terms
from flywheel.retrieval.tokenize import TOKENIZER_VERSION, keyword_tokens, marked_tokens
from flywheel.text import stem
from flywheel.text.tokenize import is_acronym_plural

REPO = Path(__file__).resolve().parents[1]
MRPC = REPO.parent / "shared" / "data" / "mrpc" / "msr_paraphrase_test.txt"
# keyword_tokens of both sentences of MRPC's first 300 test pairs (600 sentences, 7,511 tokens), taken with the
# code before the stemmer moved to flywheel.text.
MRPC_TOKENS_SHA256 = "e4aec839a58113885132de2f2cb498ccdc4b72c81f613d14a769a741b6408a10"


def test_tokenizer_version_is_unchanged() -> None:
    assert TOKENIZER_VERSION == "4"


@pytest.mark.skipif(not MRPC.is_file(), reason=f"{MRPC} absent (the shared benchmark data; see its README)")
def test_keyword_tokens_of_real_sentences_are_the_ones_indexed_before() -> None:
    rows = MRPC.read_text(encoding="utf-8-sig").splitlines()[1:301]
    sentences = [s for row in rows for s in row.split("\t")[3:5]]
    tokens = [keyword_tokens(s) for s in sentences]
    assert len(sentences) == 600 and sum(map(len, tokens)) == 7511
    assert hashlib.sha256(json.dumps(tokens).encode()).hexdigest() == MRPC_TOKENS_SHA256


def test_keyword_tokens_of_the_docs_are_snowball_stems_of_their_words() -> None:
    """What keyword_tokens did before: Snowball on every ASCII-letter token written as a word, all else as is
    (since version 4 without an acronym plural's s: llms → llm)."""
    snowball = snowballstemmer.stemmer("english")
    pages = sorted((REPO / "docs").glob("*.md"))
    sentences = [s for page in pages for s in split_sentences(page.read_text(encoding="utf-8"))]
    assert len(sentences) > 1000
    stemmed = 0
    for sentence in sentences:
        before = [snowball.stemWord(t[:-1] if is_acronym_plural(t) else t) if words and t.isascii() and t.isalpha() else t
                  for t, words in marked_tokens(sentence)]
        assert keyword_tokens(sentence) == before, sentence
        stemmed += sum(a != b for a, (b, _) in zip(before, marked_tokens(sentence), strict=True))
    assert stemmed > 1000  # the check compared stems, not only words that stay as they are


@pytest.mark.parametrize("word,expected", [
    ("rules", "rule"), ("refunded", "refund"), ("configuration", "configur"), ("configure", "configur"),
    ("gpt4", "gpt4"), ("s3", "s3"), ("register_providers", "register_providers"), ("退款", "退款"), ("café", "café"),
])
def test_stem_is_snowball_on_words_of_ascii_letters_only(word: str, expected: str) -> None:
    assert stem(word) == expected


def test_the_extractive_model_matches_words_as_the_keyword_index_does() -> None:
    sentence = "Refunded orders require the configuration of policies."
    assert terms(sentence) == set(keyword_tokens(sentence))


def test_a_question_finds_a_sentence_written_with_another_form_of_its_words() -> None:
    """configure / configuration, require / requirement: one Snowball stem each (the light stemmer kept them
    apart, and the extractive model declined)."""
    sources = {1: "Retries are configured per alias.\n\nEvery alias requires a provider.",
               2: "The dashboard lists traces."}
    answer = extractive_answer("What is the retry configuration requirement?", sources)
    assert answer.startswith("According to the sources:"), answer
    assert "Retries are configured per alias." in answer


@pytest.mark.parametrize("question,source", [
    ("How do I configure model aliases?", "Every alias names a provider and a model."),
    ("How do I ingest PDFs?", "The PDF loader ingests one document per page."),
    ("Which LLMs does the gateway call?", "The gateway calls any OpenAI-compatible LLM."),
])
def test_a_final_s_that_snowball_keeps_or_takes_does_not_keep_words_apart(question: str, source: str) -> None:
    answer = extractive_answer(question, {1: source})
    assert answer.startswith("According to the sources:"), answer


def test_a_sentence_holding_the_question_is_an_example_not_an_answer() -> None:
    sources = {1: 'A question with context before it, such as "We imported pages last week. What does '
                  'min_relevance do?", is scored on its last sentence too.',
               2: "`min_relevance` is the relevance floor: below it, search returns nothing."}
    answer = extractive_answer("What does min_relevance do?", sources)
    assert "relevance floor" in answer and "[1]" not in answer, answer


def test_chinese_inside_inline_code_is_an_example_string() -> None:
    sources = {1: '`diversity` 对 `["我喜欢北京的天气", "今天下雨了"]` 给出 0.69。'}
    assert extractive_answer("今天北京天气怎么样？", sources) == "提供的资料没有涵盖这个问题，无法据此回答。"
    assert extractive_answer("北京天气怎么样？", {1: "北京的天气秋天最好。"}).startswith("根据资料：")

"""The offline extractive answer to a question carrying an identifier: an order number no document contains
("退款规则 12345？", "What are the refund rules for order 12345?") is not held against the answer — the docs-QA
app passes the retriever's `unseen_identifiers` to the model, as the relevance floor leaves them out — while an
identifier the corpus has and the sources lack still makes it decline, and off-topic questions are still
refused, in both languages."""

from __future__ import annotations

import pytest
from docs_support import bm25_runtime, offline_app

from flywheel.gateway.providers.extractive import extractive_answer

PAGES = {
    "zh/refund.md": """# 售后

## 退款规则

自签收之日起 7 天内，商品未使用且包装完好的，可以申请无理由退款。定制商品和虚拟商品不支持无理由退款。退款会在审核
通过后 3 个工作日内原路退回。
""",
    "zh/orders.md": """# 订单

## 查询订单

登录后在“我的订单”页面可以看到全部订单，每个订单都有唯一的订单号，例如 20240101001。
""",
    "en/refund.md": """# After-sales

## Refund rules

Within 7 days of delivery, unused items in their original packaging can be refunded without giving a reason.
Custom-made and virtual goods cannot be refunded without a reason. Refunds are paid back to the original
payment method within 3 working days of approval.
""",
    "en/orders.md": """# Orders

## Finding an order

The "My orders" page lists all your orders. Every order has a unique order number, for example 20240101001.
""",
}


def section(page: str, heading: str) -> str:
    return PAGES[page].split(f"## {heading}", 1)[1].strip()


# what the app shows the model: the retrieved passages, each under the section it comes from
ZH = ({1: section("zh/refund.md", "退款规则"), 2: section("zh/orders.md", "查询订单")}, {1: "退款规则", 2: "查询订单"})
EN = ({1: section("en/refund.md", "Refund rules"), 2: section("en/orders.md", "Finding an order")},
      {1: "Refund rules", 2: "Finding an order"})
DECLINED = ("提供的资料没有涵盖这个问题", "The sources do not cover this question",
            "无法跨语言匹配", "I can't match this question to the documents")  # a question asked of the other language


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    """The shop's help pages in Chinese and English, BM25 only."""
    with bm25_runtime(tmp_path_factory.mktemp("unseen"), PAGES) as rt:
        yield rt


# ------------------------------------------------------------------ the model, given the sources
@pytest.mark.parametrize("question,shown", [("退款规则 12345？", ZH),
                                            ("What are the refund rules for order 12345?", EN)])
def test_an_identifier_the_corpus_lacks_does_not_count_against_the_answer(question, shown):
    sources, sections = shown
    # told nothing about the corpus, a number no source shows is what the question is about: declined
    assert extractive_answer(question, sources, sections=sections).startswith(DECLINED)
    answered = extractive_answer(question, sources, sections=sections, unseen=["12345"])
    assert ("7 天内" in answered or "Within 7 days" in answered) and "[1]" in answered


def test_an_identifier_the_corpus_has_but_the_sources_lack_still_declines():
    # 20240101001 is the example order number of the orders page, which these sources leave out
    for question, (sources, sections) in (("退款规则 20240101001", ZH),
                                          ("What are the refund rules for order 20240101001?", EN)):
        refund_only = {1: sources[1]}
        assert extractive_answer(question, refund_only, sections=sections, unseen=["12345"]).startswith(DECLINED)


@pytest.mark.parametrize("question", ["12345？", "12345 呢？", "What about 12345?"])
def test_a_question_that_is_only_an_unseen_identifier_is_still_declined(question):
    for sources, sections in (ZH, EN):
        assert extractive_answer(question, sources, sections=sections, unseen=["12345"]).startswith(DECLINED)


# ------------------------------------------------------------------ the docs-QA app with the real retriever
def test_the_retriever_names_the_identifiers_no_document_contains(runtime, monkeypatch):
    retriever = runtime.retriever
    assert retriever.unseen_identifiers("订单 12345 和 20240101001 的退款规则") == ["12345"]
    assert retriever.unseen_identifiers("订单 A20240101009 退款") == ["a20240101009"]
    assert retriever.unseen_identifiers("How do I use S3 with GPT4?") == []  # names with a digit are topics

    def no_lookup(*_args):
        raise AssertionError("a question without identifiers needs no lookup")

    monkeypatch.setattr(retriever.index, "doc_freqs", no_lookup)
    assert retriever.unseen_identifiers("退款规则是什么？") == []


@pytest.mark.parametrize("question,source,quoted", [
    ("退款规则 12345？", "docs/zh/refund.md", "7 天内"),
    ("订单 A20240101009 的退款规则是什么？", "docs/zh/refund.md", "原路退回"),
    ("What are the refund rules for order 12345?", "docs/en/refund.md", "Within 7 days"),
    ("What is order 20240101001?", "docs/en/orders.md", "20240101001"),  # the number the docs contain
])
def test_the_offline_app_answers_questions_with_an_order_number(runtime, question, source, quoted):
    answer = offline_app(runtime.retriever).run(question)
    assert not answer.refused, answer.text
    assert answer.citations[0].source == source and quoted in answer.text


@pytest.mark.parametrize("question", ["量子计算机的原理 12345？", "12345", "How do I grow tomatoes 12345?",
                                      "明天北京会下雨吗？订单 12345", "What career should I pursue after order 12345?"])
def test_off_topic_questions_with_a_number_are_still_refused(runtime, question):
    answer = offline_app(runtime.retriever).run(question)
    assert answer.refused, answer.text


def test_a_year_the_corpus_lacks_is_a_topic_not_an_instance(runtime):
    """A year constrains what is asked ("the refund rules of 2019"): the corpus states no year, so the question
    is not the user's own instance of something the docs describe and the year is not dropped."""
    assert runtime.retriever.unseen_identifiers("2019 年的退款规则 12345") == ["12345"]
    assert runtime.retriever.unseen_identifiers("What were the refund rules in 1999?") == []

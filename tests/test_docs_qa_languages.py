"""Docs QA over a bilingual corpus (Chinese pages and their English twins): a question carrying an order number
the docs do not contain is not refused, the answer reads and cites the page in the question's language, a
Chinese question about a code identifier is answered from English passages, traditional question words and
long questions that tell a story first are matched on what they ask, and off-topic questions are still refused
in both languages."""

from __future__ import annotations

import pytest
from docs_support import bm25_runtime

from flywheel.apps.augment import prefer_question_language, twin_key
from flywheel.apps.docs_qa import DocsQA
from flywheel.config import ModelAlias
from flywheel.gateway import Gateway
from flywheel.prompts import PromptRegistry
from flywheel.retrieval.retriever import Retriever, asked_terms, topic_terms
from flywheel.types import Chunk, Hit

PAGES = {
    "zh/refund.md": """# 退款政策

## 退款条件

自签收之日起 7 天内，商品未使用且包装完好的，可以申请无理由退款。定制商品和虚拟商品不支持无理由退款。

## 退款流程

在“我的订单”中选择需要退款的订单，点击“申请退款”，填写退款原因并上传商品照片。客服会在 1 个工作日内审核。
""",
    "zh/orders.md": """# 订单

## 查询订单

登录后在“我的订单”页面可以看到全部订单，每个订单都有唯一的订单号，例如 20240101001。

## 取消订单

未付款的订单 30 分钟后自动取消；已付款但未发货的订单可以直接取消，货款全额退回。
""",
    "zh/invoice.md": """# 发票

## 开具发票

订单完成后可以在订单详情页申请电子发票，支持增值税普通发票和增值税专用发票。

## 发票重开

发票信息填写错误时，可在开票后 30 天内申请重开一次。
""",
    "en/refund.md": """# Refund policy

## Refund conditions

Within 7 days of delivery, unused items in their original packaging can be returned for a refund without
giving a reason. Custom-made and virtual goods cannot be refunded without a reason.

## Refund process

In "My orders", choose the order you want refunded, click "Request a refund", give the reason and upload a
photo of the item. Customer service reviews it within 1 working day.
""",
    "en/orders.md": """# Orders

## Finding an order

After signing in, the "My orders" page lists all your orders. Every order has a unique order number, for
example 20240101001.

## Cancelling an order

Unpaid orders are cancelled automatically after 30 minutes; paid orders that have not shipped can be cancelled
directly with a full refund.
""",
    "en/invoice.md": """# Invoices

## Issuing an invoice

Once an order is complete you can request an electronic invoice on the order details page.

## Reissuing an invoice

If the invoice details are wrong, you can ask for it to be reissued once within 30 days of issue.
""",
    "en/settings.md": """# Search settings

`min_relevance` is the relevance floor: below it the assistant says it does not know. The default
`min_relevance: auto` uses a floor per relevance signal.
""",
}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    """The shop's help pages in Chinese and English (docs/zh/…, docs/en/…), BM25 only."""
    with bm25_runtime(tmp_path_factory.mktemp("bilingual"), PAGES) as rt:
        yield rt


def app(retriever: Retriever, llm=None) -> DocsQA:
    models = {"default": ModelAlias(provider="extractive")}
    if llm is not None:
        models["gpt"] = ModelAlias(provider="openai_compat", model="fake-model", base_url=llm.base_url,
                                   max_retries=0)
    return DocsQA(retriever=retriever, gateway=Gateway(models), prompt=PromptRegistry().get("docs_qa"),
                  model="gpt" if llm is not None else "default")


def sources(hits) -> list[str]:
    return [h.chunk.source for h in hits]


# ------------------------------------------------------------------ unknown identifiers and the relevance floor
def test_an_order_number_the_docs_lack_does_not_refuse_a_question_about_refunds(runtime, llm):
    retriever = runtime.retriever
    hits = retriever.search("退款规则 12345？")
    assert hits and sources(hits)[0] == "docs/zh/refund.md", "12345 sank the coverage of the refund passages"
    assert retriever.search("订单 20240101002 的退款规则是什么？")[0].chunk.source == "docs/zh/refund.md"
    assert retriever.search("How do I request a refund for order 20240101002?")[0].chunk.source == "docs/en/refund.md"

    llm.add(r"^Sources:", "在“我的订单”中选择订单并点击“申请退款” [1]。")
    answer = app(retriever, llm).run("退款规则 12345？")
    assert not answer.refused and answer.citations[0].source == "docs/zh/refund.md"


def test_an_identifier_the_docs_contain_still_counts(runtime):
    # the order number the docs show is content: it is what the orders page is found by
    hits = runtime.retriever.search("订单号 20240101001")
    assert hits[0].chunk.source == "docs/zh/orders.md" and hits[0].scores["coverage"] == 1.0
    assert topic_terms(["订单", "20240101001"], {"订单": 5, "20240101001": 2}) == ["订单", "20240101001"]
    assert topic_terms(["退款", "12345"], {"退款": 3}) == ["退款"]
    assert topic_terms(["12345"], {}) == ["12345"]  # nothing but an unknown number: still weighed (and refused)
    assert topic_terms(["退款", "a20240101002"], {"退款": 3}) == ["退款"]
    # short names with a digit are what a question is about, not instances of it
    assert topic_terms(["store", "s3"], {"store": 4}) == ["store", "s3"]
    assert topic_terms(["sha256", "gpt4", "h200"], {}) == ["sha256", "gpt4", "h200"]


@pytest.mark.parametrize("question", ["量子计算机的原理 12345？", "明天北京会下雨吗？", "12345", "１２３４５",
                                      "How do I bake sourdough bread 12345?", "How do I grow tomatoes 12345?", "What career should I pursue?",
                                      "My grandmother lives in Paris. How do I bake sourdough bread?"])
def test_off_topic_questions_are_still_refused_in_both_languages(runtime, question):
    assert runtime.retriever.search(question) == []
    answer = app(runtime.retriever).run(question)
    assert answer.refused and answer.refusal == "no_passage"


def test_full_width_digits_and_letters_match_like_ascii(runtime):
    assert sources(runtime.retriever.search("１２３４５ 退款"))[0] == "docs/zh/refund.md"
    assert sources(runtime.retriever.search("Ｒｅｆｕｎｄ　ｐｏｌｉｃｙ？"))[0] == "docs/en/refund.md"


def test_traditional_question_words_are_not_content(runtime):
    # 什麼 is 什么 in traditional characters: a question word, not a word the refund page must contain
    simplified, traditional = (runtime.retriever.search(q)[0] for q in ("退款政策是什么？", "退款政策是什麼？"))
    assert traditional.chunk.source == "docs/zh/refund.md"
    assert traditional.scores["coverage"] == simplified.scores["coverage"] == 1.0


def test_a_long_question_is_as_relevant_as_what_it_asks(runtime):
    story = ("I bought a blender last month and my neighbour told me it was cheaper somewhere else, which "
             "annoyed me quite a lot, so I decided I no longer want to keep it at all. How do I request a refund?")
    assert asked_terms(story) == [["request", "refund"]]
    assert asked_terms("How do I request a refund?") == []  # one sentence: the question itself
    hits = runtime.retriever.search(story)
    assert hits and hits[0].chunk.source == "docs/en/refund.md"


# ------------------------------------------------------------------ the question's language
def test_a_chinese_question_about_a_code_identifier_is_answered_from_english_passages(runtime):
    hits = runtime.retriever.search("min_relevance 是什么？")
    assert hits and hits[0].chunk.source == "docs/en/settings.md"
    assert sources(runtime.retriever.search("ｍｉｎ＿ｒｅｌｅｖａｎｃｅ是什么？"))[0] == "docs/en/settings.md"


def test_the_answer_cites_the_page_in_the_questions_language(runtime, llm):
    retriever = runtime.retriever
    # the order number is on both language versions of the orders page: both are retrieved
    question = "Where do I find order number 20240101001?"
    assert {"docs/en/orders.md", "docs/zh/orders.md"} <= set(sources(retriever.search(question)))
    answer = app(retriever).run(question)
    assert not answer.refused
    assert "docs/en/orders.md" in {s.source for s in answer.sources}
    assert not [s.source for s in answer.sources if s.source.startswith("docs/zh/")]
    assert [c.source for c in answer.citations] == ["docs/en/orders.md"]

    zh = app(retriever).run("订单号 20240101001 在哪里看？")
    assert zh.citations and {s.source for s in zh.sources} == {"docs/zh/orders.md"}

    llm.add(r"^Sources:", "The My orders page lists them [1].")
    app(retriever, llm).run(question)
    prompt = [r for r in llm.requests if r["messages"][-1]["content"].startswith("Sources:")][-1]
    assert "订单" not in prompt["messages"][-1]["content"]


def _hit(source: str, text: str) -> Hit:
    return Hit(chunk=Chunk(id=source + text[:8], doc_id=source, text=text, source=source), score=1.0)


def test_only_twins_give_way_and_the_cross_lingual_path_stays():
    en = _hit("docs/cache.md", "The semantic cache answers paraphrased questions.")
    zh = _hit("docs/zh/cache.md", "语义缓存回答改写过的问题。")
    other = _hit("docs/zh/billing.md", "发票在每月第一个工作日发送。")
    code = _hit("docs/zh/cache.md", "```yaml\ncache:\n  semantic: {threshold: 0.75}\n```")  # a twin's code block
    assert prefer_question_language("What does the semantic cache do?", [zh, en, code, other]) == [en, other]
    assert prefer_question_language("语义缓存做什么？", [en, zh, code]) == [zh, code]
    # a Chinese question over English-only pages (translated search, a multilingual embedder) keeps them all
    assert prefer_question_language("语义缓存做什么？", [en]) == [en]
    assert prefer_question_language("语义缓存做什么？", [en, _hit("docs/gateway.md", "Retries.")]) == \
        [en, _hit("docs/gateway.md", "Retries.")]


@pytest.mark.parametrize(("source", "key"), [
    ("docs/zh/cache.md", ("docs/cache.md", "zh")), ("docs/cache.md", ("docs/cache.md", None)),
    ("docs/en/refund.md", ("docs/refund.md", "en")), ("docs/cache.zh.md", ("docs/cache.md", "zh")),
    ("docs/cache_zh-CN.md", ("docs/cache.md", "zh")), ("zh-CN/a/b.md", ("a/b.md", "zh")),
    ("docs/getting-started.md", ("docs/getting-started.md", None)), ("docs/how-to.md", ("docs/how-to.md", None)),
    ("docs\\zh\\a.md", ("docs/a.md", "zh")), ("README", ("README", None)),
])
def test_twin_key(source, key):
    assert twin_key(source) == key

"""The semantic and exact caches as Chinese- and English-speaking users meet them (Task D audit).

Found: with an embedder that places near-duplicates close (any multilingual one), questions that differ only in
a relative date ("去年" / "今年", "last year" / "this year"), in the unit of a rate ("per minute" / "per hour")
or in the language or Chinese script they are written in ("How do I enable SSO?" / "如何启用 SSO？", 设置 /
設置) got each other's answers: no contrast rule saw the difference, and the verifier alone let "去年营收" /
"今年营收" and "per minute" / "per hour" through. A Chinese A-not-A question ("能不能退款？") counted as negated
and missed its plain twin. Pairs are written from general principles, not tuned on any data set.
"""

from __future__ import annotations

import pytest
from test_cache_audit_semantic import NearEmbedder, make

from flywheel.cache import Cache
from flywheel.cache.contrast import contradiction
from flywheel.cache.verifier import default_verifier
from flywheel.config import CacheConfig
from flywheel.types import ChatRequest

V = {"model_version": "m@1", "tenant": "acme"}

WRONG_HITS = [  # (cached, query, the rule that vetoes it)
    ("去年营收是多少？", "今年营收是多少？", "numbers"),
    ("昨天的订单发货了吗？", "今天的订单发货了吗？", "numbers"),
    ("本周的账单在哪里看？", "下周的账单在哪里看？", "numbers"),
    ("What was revenue last year?", "What was revenue this year?", "numbers"),
    ("Did yesterday's backup finish?", "Did today's backup finish?", "numbers"),
    ("How many requests per minute are allowed?", "How many requests per hour are allowed?", "numbers"),
    ("每分钟可以请求多少次？", "每秒可以请求多少次？", "numbers"),
    ("2023年营收是多少？", "2024年营收是多少？", "numbers"),
    ("How do I enable SSO?", "如何启用 SSO？", "language"),
    ("Как включить SSO?", "How do I enable SSO?", "language"),
    ("SSO を有効にするには？", "如何启用 SSO？", "language"),
    ("如何设置模型版本？", "如何設置模型版本？", "language"),
    ("發票在哪裡下載？", "发票在哪里下载？", "language"),
]
PARAPHRASES = [
    ("能不能退款？", "能退款吗？"),  # was: vetoed as a negation
    ("可不可以退款？", "可以退款吗？"),
    ("有没有免费版？", "有免费版吗？"),
    ("每天可以调用多少次？", "一天能调用几次？"),
    ("今天的账单在哪看？", "今日账单在哪看？"),
    ("How many requests can I make per minute?", "What is the per-minute request limit?"),
    ("Can I get a refund within 30 days?", "Is there a 30-day refund window?"),
    ("怎么设置 model version pinning？", "怎么设置模型版本固定？"),
    ("如何設置模型版本？", "怎麼設置模型版本？"),
    ("Comment activer le SSO ?", "Comment puis-je activer le SSO ?"),
    ("All of a sudden, it's like a state of shock.", "All of a sudden, its like a state of shock."),
]


@pytest.mark.parametrize(("cached", "query", "rule"), WRONG_HITS)
def test_questions_asking_about_another_date_unit_language_or_script_are_vetoed(cached, query, rule):
    assert contradiction(query, cached) == rule
    assert contradiction(cached, query) == rule


@pytest.mark.parametrize(("cached", "query", "rule"), WRONG_HITS)
@pytest.mark.parametrize("verify", [True, False])
def test_they_never_serve_each_others_answer(store, cached, query, rule, verify):
    cache = make(store, NearEmbedder(), verify=verify)  # every question a candidate: only the rules decide
    cache.save(ChatRequest.of(cached), "the answer to the cached question", **V)
    assert cache.lookup(ChatRequest.of(query), **V) is None


def test_the_verifier_alone_let_relative_dates_and_rate_units_through():
    verifier = default_verifier()  # why a rule is needed: the learned verifier accepts these at high cosine
    accepted = [(c, q) for c, q, _ in WRONG_HITS if verifier.probability(q, c, 0.97) >= verifier.threshold]
    assert accepted  # if a refitted verifier rejects them all, this test's premise is gone: drop it


@pytest.mark.parametrize(("cached", "query"), PARAPHRASES)
def test_paraphrases_are_not_vetoed(cached, query):
    assert contradiction(query, cached) is None
    assert contradiction(cached, query) is None


def test_a_not_a_question_is_still_negated_when_it_is():
    assert contradiction("能不能退款？", "不能退款吗？") == "negation"
    assert contradiction("是不是不收费？", "是不是收费？") == "negation"


@pytest.mark.parametrize(("asked", "again", "hit"), [
    ("怎么安装？", "  怎么安装？\r\n", True),  # outer whitespace and line endings: the same request
    ("e\u0301tat du service ?", "\u00e9tat du service ?", True),  # NFC: one text, two encodings
    ("怎么安装？", "怎么安装?", True),  # full-width punctuation, as input methods type it: folded
    ("把 ＡＢＣ 转成半角", "把 ABC 转成半角", False),  # the form can be the question itself: kept
    ("如何设置模型版本？", "如何設置模型版本？", False),  # simplified / traditional: answered in its script
    ("2023年营收是多少？", "2024年营收是多少？", False),
])
def test_the_exact_key_folds_only_what_cannot_change_an_answer(asked, again, hit):
    cache = Cache.from_config(CacheConfig(backend="memory"))
    cache.save(ChatRequest.of(asked), "the answer", **V)
    assert (cache.lookup(ChatRequest.of(again), **V) is not None) is hit

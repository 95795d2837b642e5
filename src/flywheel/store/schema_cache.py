"""Tables of the cache domain (flywheel.cache's store backend). Migration: migrations/versions/0004_cache.py.

- cache_entries: exact and item-ID answers, keyed by the sha256 request key; one ordinary and at most one
  pinned (reviewed, never expiring) row per key.
- cache_semantic: semantic entries with their embedding (float32 bytes), partitioned by scope (hash of system
  prompt, model, prompt/corpus version, tenant, embedder).
- cache_hits: every hit, and every candidate the verifier rejected, with its similarity, so that hit
  precision can be measured by reviewing a sample.
Times are Unix seconds (float).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, LargeBinary, String, Table, Text

from flywheel.store.schema import JSONDoc, metadata

cache_entries = Table(
    "cache_entries",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("pinned", Boolean, primary_key=True),
    Column("text", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),  # null: never
    Column("meta", JSONDoc),
    Index("ix_cache_entries_expires_at", "expires_at"),
)

cache_semantic = Table(
    "cache_semantic",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(32), nullable=False),
    Column("question", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("vector", LargeBinary, nullable=False),  # float32, little-endian, unit length
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("meta", JSONDoc),
    Index("ix_cache_semantic_scope_id", "scope", "id"),
    Index("ix_cache_semantic_expires_at", "expires_at"),
)

cache_hits = Table(
    "cache_hits",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", Float, nullable=False),
    Column("kind", String(10), nullable=False),  # exact | pinned | item | semantic
    Column("accepted", Boolean, nullable=False),  # false: a semantic candidate the verifier rejected
    Column("tenant", String(100)),
    Column("model", String(200)),
    Column("scope", String(32)),
    Column("entry", String(100)),  # exact key or semantic entry id
    Column("similarity", Float),
    Column("verifier_p", Float),
    Column("query", Text),
    Column("cached_question", Text),
    Column("trace_id", String(32)),
    Index("ix_cache_hits_created_at", "created_at"),
)

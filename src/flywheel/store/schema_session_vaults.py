"""Chat sessions' redaction vaults kept in the store (the sessions domain, flywheel.apps.session_vaults), for
servers that share state without Redis. Migration: migrations/versions/0013_sessions_vaults.py.

- session_vaults: one row per session (`key`: a hash of the store, tenant, app and session id, never the ids
  themselves), its placeholder `nonce` and when a turn last used it (`used_at`, Unix seconds); a session unused
  for the vaults' TTL is deleted with its values.
- session_vault_values: one row per value a redact guard masked in the session: its placeholder's type and
  number, an HMAC `fingerprint` of the type and value (the same value keeps its placeholder, unique per session)
  and the value `sealed` with AES-GCM (never in the clear; the key is FLYWHEEL_VAULT_KEY, never in the store).
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, LargeBinary, String, Table

from flywheel.store.schema import metadata

session_vaults = Table(
    "session_vaults",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("nonce", String(32), nullable=False),
    Column("used_at", Float, nullable=False),
    Index("ix_session_vaults_used_at", "used_at"),
)

session_vault_values = Table(
    "session_vault_values",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("entity_type", String(100), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("sealed", LargeBinary, nullable=False),
    Index("ux_session_vault_values_fingerprint", "key", "fingerprint", unique=True),
)

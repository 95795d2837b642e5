"""Tables of the server domain (flywheel.server). Migration: migrations/versions/0006_server.py.

- api_keys: virtual keys. Only a salted SHA-256 of the secret part is stored; `key_id` is the public part of
  the key (`fw-<key_id>-<secret>`). Budget counters live on the row so one atomic UPDATE admits or refuses a
  request across processes: `spent_usd` (settled) + `reserved_usd` (in flight) against `budget_usd`, reset
  when `period` (e.g. "2026-12" for monthly budgets) changes.
- rate_windows: requests and tokens per key per fixed one-minute window (rpm / tpm limits).
With `server.redis` set, the counters live in Redis (server/counters.py) and these rows are the record: each
settled cost is added to `spent_usd` (`reserved_usd` and `rate_windows` stay unused), and Redis re-seeds a
missing budget counter from `spent_usd`.
Times are Unix seconds (float).
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table

from flywheel.store.schema import JSONDoc, metadata

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("tenant", String(100), nullable=False),
    Column("salt", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("models", JSONDoc),  # allowed aliases, null: all
    Column("apps", JSONDoc),  # allowed apps, null: all
    Column("budget_usd", Float),  # null: no budget
    Column("budget_period", String(10)),  # month | total
    Column("period", String(10)),  # the budget period the counters belong to
    Column("spent_usd", Float, nullable=False, server_default="0"),
    Column("reserved_usd", Float, nullable=False, server_default="0"),
    Column("rpm", Integer),
    Column("tpm", Integer),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
    Index("ix_api_keys_name", "name"),
)

rate_windows = Table(
    "rate_windows",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("minute", Integer, primary_key=True),  # Unix time // 60
    Column("requests", Integer, nullable=False, server_default="0"),
    Column("tokens", Integer, nullable=False, server_default="0"),
)

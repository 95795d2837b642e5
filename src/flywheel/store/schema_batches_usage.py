"""The token details of batch requests (the batches domain, flywheel/server/batches_store.py).
Migration: migrations/versions/0013_batches_usage.py.

- batch_request_usage: one row per finished batch request whose upstream reported prompt-cache reads or reasoning
  tokens (`cached_tokens`, `reasoning_tokens`, from the response body's usage details), keyed like its
  `batch_requests` row. Written in the transaction that records the request, so the batch object's
  `usage.input_tokens_details.cached_tokens` / `output_tokens_details.reasoning_tokens` (sums of these rows) never
  drift from what ran. A request with neither has no row (both count 0).
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table

from flywheel.store.schema import metadata

batch_request_usage = Table(
    "batch_request_usage",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("cached_tokens", Integer, nullable=False),
    Column("reasoning_tokens", Integer, nullable=False),
)

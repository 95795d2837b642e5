"""Tables of the batches domain (the OpenAI Files and Batch APIs on `flywheel serve`, flywheel/server/files_api.py,
batches_api.py, batches_store.py). Migration: migrations/versions/0012_batches.py.

- files: one row per uploaded file (`file-<24 hex>`, purpose `batch`) or batch result file (`batch_output`), owned
  by one tenant (another tenant's id is not found); `content` is the file's bytes.
- batches: one row per batch (`batch_<24 hex>`): its owner (the key id, or the admin / open principal's name), the
  endpoint, status and the time of each transition, the output and error files once finalized. `worker` and
  `lease_until` say which server process runs it (a lease renewed while it runs, taken over when it lapses or its
  process on the same host is gone).
- batch_requests: one row per input line (`line` from 1): its custom_id and body, `state` pending | done (2xx) |
  failed (any other status), and once run the output line as OpenAI writes it (`result`) and its tokens. A
  restarted server runs only the pending rows, so no finished request is sent twice.
Times are Unix seconds (float).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, LargeBinary, String, Table

from flywheel.store.schema import JSONDoc, metadata

files = Table(
    "files",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant", String(100), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("bytes", Integer, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
    Index("ix_files_tenant", "tenant", "created_at"),
)

batches = Table(
    "batches",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant", String(100), nullable=False),
    Column("key_id", String(32)),
    Column("owner", String(100), nullable=False),
    Column("admin", Boolean, nullable=False, default=False),
    Column("endpoint", String(64), nullable=False),
    Column("input_file_id", String(64), nullable=False),
    Column("completion_window", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("meta", JSONDoc),
    Column("errors", JSONDoc),
    Column("model", String(200)),
    Column("total", Integer, nullable=False),
    Column("output_file_id", String(64)),
    Column("error_file_id", String(64)),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("in_progress_at", Float),
    Column("finalizing_at", Float),
    Column("completed_at", Float),
    Column("failed_at", Float),
    Column("expired_at", Float),
    Column("cancelling_at", Float),
    Column("cancelled_at", Float),
    Column("worker", String(200)),
    Column("lease_until", Float),
    Index("ix_batches_tenant", "tenant", "created_at"),
    Index("ix_batches_status", "status"),
)

batch_requests = Table(
    "batch_requests",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("custom_id", String(512), nullable=False),
    Column("body", JSONDoc, nullable=False),
    Column("state", String(16), nullable=False),
    Column("result", JSONDoc),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("finished_at", Float),
    Index("ix_batch_requests_state", "batch_id", "state"),
)

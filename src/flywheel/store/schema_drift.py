"""Tables of the drift domain (flywheel.monitor.vectors; `flywheel drift`, `flywheel skew`).
Migration: migrations/versions/0007_drift.py.

- trace_vectors: per trace and embedder, what drift reads so that it never re-embeds or re-tokenizes a trace:
  the input and output embeddings (float32 bytes, unit length; NULL when no embedder is configured), their
  keyword tokens (flywheel.text.tokenize, space-joined: the CJK-aware lexical side and the cluster labels), and
  the descriptors PSI is computed over (languages, lengths, refusal, output format). Times are Unix seconds.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, LargeBinary, String, Table, Text

from flywheel.store.schema import ID, metadata

trace_vectors = Table(
    "trace_vectors",
    metadata,
    Column("trace_id", String(ID), primary_key=True),
    Column("embedder", String(200), primary_key=True),  # the embedder's name, or "none" (lexical only)
    Column("started_at", Float, nullable=False),  # the trace's start, copied so windows need no join
    Column("app", String(100)),
    Column("model", String(200)),
    Column("tenant", String(100)),
    Column("input_language", String(10)),
    Column("output_language", String(10)),
    Column("input_chars", Integer, nullable=False, server_default="0"),
    Column("output_chars", Integer, nullable=False, server_default="0"),
    Column("refused", Boolean, nullable=False),
    Column("input_format", String(12), nullable=False, server_default="plain"),  # question | plain | multiline | code_or_json
    Column("output_format", String(12), nullable=False, server_default="text"),  # text | json | broken_json | empty
    Column("input_terms", Text),
    Column("output_terms", Text),
    Column("input_vec", LargeBinary),
    Column("output_vec", LargeBinary),
    Column("created_at", Float, nullable=False),
    Index("ix_trace_vectors_embedder_started_at", "embedder", "started_at"),
)

"""Tables of the retrieval domain (migration: migrations/versions/0002_retrieval.py, branch `retrieval`).

- `ingested_files`: one row per (tenant, source file): content hash and status, so unchanged files are skipped
  and an interrupted ingest resumes (`partial` until every document of the file is written), and the keyword
  tokenizer version it was indexed with (a search over another version's tokens warns).
- `chunks`: the searchable unit. `tokens` holds the pre-segmented keyword tokens (jieba for Chinese); SQLite
  indexes them with the tenant in the contentless FTS5 table `chunks_fts` (kept in sync by triggers, created
  by the migration only); PostgreSQL in the `tsv` tsvector column (GIN). `pk` only ever grows (AUTOINCREMENT).
- `embeddings`: vectors cached by (model, hash of the embedded text), shared by all tenants: re-ingesting or
  re-chunking unchanged text never calls the embedder again. float32 BLOB on SQLite, pgvector on PostgreSQL.
- `retrieval_tenants`: a per-tenant write counter (in-memory vector caches check it), chunk count and
  language statistics.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Float, Index, Integer, LargeBinary, String, Table, Text, text
from sqlalchemy.dialects.postgresql import TSVECTOR

from flywheel.store.schema import JSONDoc, metadata

try:  # the `postgres` extra; without it a PostgreSQL store cannot be opened anyway
    from pgvector.sqlalchemy import VECTOR as _PgVector

    _pg_vector: Any = _PgVector()
except ImportError:  # pragma: no cover
    _pg_vector = LargeBinary()

VectorColumn = LargeBinary().with_variant(_pg_vector, "postgresql")
RowId = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PRIMARY KEY is SQLite's rowid alias

ingested_files = Table(
    "ingested_files",
    metadata,
    Column("tenant", String(100), primary_key=True),
    Column("source", String(2000), primary_key=True),
    Column("file_hash", String(64), nullable=False),
    Column("settings", String(32), nullable=False),  # hash of chunking settings + embedder
    Column("status", String(16), nullable=False),  # partial | complete
    Column("size", BigInteger, nullable=False, server_default="0"),
    Column("docs", Integer, nullable=False, server_default="0"),
    Column("chunks", Integer, nullable=False, server_default="0"),
    Column("updated_at", Float, nullable=False),
    Column("tokenizer", String(16)),  # keyword tokenizer version (NULL: indexed before it was recorded, "1")
)

chunks = Table(
    "chunks",
    metadata,
    Column("pk", RowId, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("doc_id", String(32), nullable=False),
    Column("tenant", String(100), nullable=False),
    Column("source", String(2000), nullable=False),
    Column("ordinal", Integer, nullable=False, server_default="0"),
    Column("location", Text),
    Column("title", Text),
    Column("text", Text, nullable=False),
    Column("tokens", Text, nullable=False),
    Column("n_tokens", Integer, nullable=False, server_default="0"),
    Column("lang", String(8), nullable=False, server_default=""),
    Column("embed_hash", String(32), nullable=False),
    Column("metadata", JSONDoc),
    Column("tsv", Text().with_variant(TSVECTOR(), "postgresql")),  # PostgreSQL only; NULL on SQLite
    Column("created_at", Float, nullable=False),
    Index("ix_chunks_tenant_source", "tenant", "source"),
    Index("ix_chunks_doc_id", "doc_id"),
    Index("ix_chunks_embed_hash", "embed_hash"),
    # GIN on PostgreSQL; on SQLite (where `tsv` is always NULL and FTS5 does the job) a partial index that stays empty.
    Index("ix_chunks_tsv", "tsv", postgresql_using="gin", sqlite_where=text("tsv IS NOT NULL")),
    sqlite_autoincrement=True,
)

embeddings = Table(
    "embeddings",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("hash", String(32), primary_key=True),
    Column("dim", Integer, nullable=False),
    Column("vector", VectorColumn, nullable=False),
)

retrieval_tenants = Table(
    "retrieval_tenants",
    metadata,
    Column("tenant", String(100), primary_key=True),
    Column("version", BigInteger, nullable=False, server_default="0"),
    Column("chunks", BigInteger, nullable=False, server_default="0"),
    Column("languages", JSONDoc),  # {"zh": chunks, "en": chunks}
    Column("updated_at", Float, nullable=False),
)

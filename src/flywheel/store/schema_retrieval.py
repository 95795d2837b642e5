"""Tables of the retrieval domain (migration: migrations/versions/0002_retrieval.py, branch `retrieval`).

- `ingested_files`: one row per (tenant, source file): content hash and status, so unchanged files are skipped
  and an interrupted ingest resumes (`partial` until every document of the file is written), and the keyword
  tokenizer version it was indexed with (a search over another version's tokens warns).
- `chunks`: the searchable unit. `tokens` holds the pre-segmented keyword tokens (jieba for Chinese); SQLite
  indexes them with the tenant in the contentless FTS5 table `chunks_fts` (kept in sync by triggers, created
  by the migration only); PostgreSQL in the `tsv` tsvector column (GIN). `pk` only ever grows (AUTOINCREMENT).
- `embeddings`: vectors by (model, hash of the embedded text, tenant): re-ingesting or re-chunking unchanged text
  never calls the embedder again (a vector another tenant already has is copied, not recomputed). float32 BLOB on
  SQLite, pgvector on PostgreSQL, where the table is partitioned by tenant (`PARTITION BY LIST (tenant)`, one
  partition per tenant, attached at its first vector: `partition_ddl`), so a tenant's search walks an HNSW graph
  of its own vectors instead of filtering a graph of everyone's (migration 0016_retrieval_tenant_vectors).
  Tenant '' holds vectors no chunk used when a store was migrated (still reused by a re-ingest).
- `retrieval_tenants`: a per-tenant write counter (in-memory vector caches check it), chunk count and
  language statistics.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR

from flywheel.store.schema import JSONDoc, metadata
from flywheel.types import content_hash

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
    Column("tenant", String(100), primary_key=True),
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


MAX_INDEX_DIMS = {"halfvec": 4000, "vector": 2000}  # pgvector's HNSW limits


def pgvector_version(conn: Connection) -> tuple[int, ...]:
    """The installed pgvector extension's version, (0,) when it is not installed."""
    v = conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar()
    return tuple(int(p) for p in str(v or "0").split(".") if p.isdigit())


def vector_kind(version: tuple[int, ...], dim: int) -> str | None:
    """The type an HNSW index of `dim`-dimensional vectors is built over on pgvector `version`: `halfvec` (≥ 0.7,
    half the memory), else `vector`; None when `dim` is too wide for an HNSW index of that type."""
    kind = "halfvec" if version >= (0, 7) else "vector"
    return kind if dim <= MAX_INDEX_DIMS[kind] else None


def hnsw_index_name(model: str, dim: int, kind: str | None) -> str:
    """The partitioned HNSW index of (model, dim) on `embeddings`."""
    return f"ix_embeddings_hnsw_{content_hash(model, str(dim), kind or '', n=12)}"


def hnsw_index_ddl(model: str, dim: int, kind: str, m: int, ef_construction: int) -> str:
    """CREATE INDEX of the HNSW index of (model, dim) over `kind` (on the partitioned table: built on every
    partition, and on each one attached later)."""
    model_sql = model.replace("'", "''")
    return (f"CREATE INDEX IF NOT EXISTS {hnsw_index_name(model, dim, kind)} ON embeddings USING hnsw "
            f"((vector::{kind}({int(dim)})) {kind}_cosine_ops) WITH (m = {int(m)}, ef_construction = "
            f"{int(ef_construction)}) WHERE model = '{model_sql}' AND dim = {int(dim)}")


def partition_name(tenant: str) -> str:
    """The PostgreSQL partition of `embeddings` holding `tenant`'s vectors (a hash: tenants may hold any text)."""
    return f"embeddings_t_{content_hash(tenant, n=16)}"


def partition_ddl(tenant: str) -> list[str]:
    """Statements that create and attach `tenant`'s partition of `embeddings` (PostgreSQL). ATTACH takes a SHARE
    UPDATE EXCLUSIVE lock on `embeddings`, so searches and writes of other tenants go on meanwhile (`CREATE TABLE
    … PARTITION OF` would wait for every open transaction on the table and block new ones behind it). The
    partitioned HNSW indexes are built on the new, empty partition as it is attached."""
    name = partition_name(tenant)
    value = "'" + tenant.replace("'", "''") + "'"
    return [f"CREATE TABLE IF NOT EXISTS {name} (LIKE embeddings INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
            f"ALTER TABLE embeddings ATTACH PARTITION {name} FOR VALUES IN ({value})"]


def attach_partition(conn: Connection, tenant: str) -> None:
    """Run `partition_ddl(tenant)` in the connection's transaction. Sent as they are through the driver's cursor
    (no parameters): a tenant may hold ':' or '%', which SQLAlchemy or psycopg would read as placeholders."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]  # open while conn is
    try:
        for statement in partition_ddl(tenant):
            cursor.execute(statement)
    finally:
        cursor.close()

"""retrieval: ingested_files, chunks (+ FTS5 on SQLite, tsvector GIN on PostgreSQL), embeddings, retrieval_tenants.

Revision ID: 0002_retrieval
Branch: retrieval
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_retrieval"
down_revision = None
branch_labels = ("retrieval",)
depends_on = None

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:
        op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table(
        "ingested_files",
        sa.Column("tenant", sa.String(100), primary_key=True),
        sa.Column("source", sa.String(2000), primary_key=True),
        sa.Column("file_hash", sa.String(64), nullable=False),
        sa.Column("settings", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("docs", sa.Integer, nullable=False, server_default="0"),
        sa.Column("chunks", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "chunks",
        sa.Column("pk", RowId, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(32), nullable=False, unique=True),
        sa.Column("doc_id", sa.String(32), nullable=False),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("source", sa.String(2000), nullable=False),
        sa.Column("ordinal", sa.Integer, nullable=False, server_default="0"),
        sa.Column("location", sa.Text),
        sa.Column("title", sa.Text),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("tokens", sa.Text, nullable=False),
        sa.Column("n_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lang", sa.String(8), nullable=False, server_default=""),
        sa.Column("embed_hash", sa.String(32), nullable=False),
        sa.Column("metadata", JSONDoc),
        sa.Column("tsv", sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql")),
        sa.Column("created_at", sa.Float, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_chunks_tenant_source", "chunks", ["tenant", "source"])
    op.create_index("ix_chunks_doc_id", "chunks", ["doc_id"])
    op.create_index("ix_chunks_embed_hash", "chunks", ["embed_hash"])
    op.create_index("ix_chunks_tsv", "chunks", ["tsv"], postgresql_using="gin", sqlite_where=sa.text("tsv IS NOT NULL"))
    if pg:
        vector_type = "vector"
    else:
        # Contentless FTS5 over the pre-segmented tokens plus one token naming the tenant ('t' || hex(tenant):
        # exact, no tokenizer ambiguity), so a tenant's keyword search is a single FTS5 query. Triggers keep it
        # in step with `chunks` inside the same transaction: an interrupted ingest cannot desynchronise it.
        op.execute("CREATE VIRTUAL TABLE chunks_fts USING fts5(tenant_key, tokens, content='', "
                   "tokenize='unicode61 remove_diacritics 0')")
        op.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('rank', 'bm25(0.0, 1.0)')")
        op.execute("CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN "
                   "INSERT INTO chunks_fts(rowid, tenant_key, tokens) "
                   "VALUES (new.pk, 't' || hex(new.tenant), new.tokens); END")
        op.execute("CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN "
                   "INSERT INTO chunks_fts(chunks_fts, rowid, tenant_key, tokens) "
                   "VALUES ('delete', old.pk, 't' || hex(old.tenant), old.tokens); END")
        op.execute("CREATE TRIGGER chunks_fts_update AFTER UPDATE OF tokens, tenant ON chunks BEGIN "
                   "INSERT INTO chunks_fts(chunks_fts, rowid, tenant_key, tokens) "
                   "VALUES ('delete', old.pk, 't' || hex(old.tenant), old.tokens); "
                   "INSERT INTO chunks_fts(rowid, tenant_key, tokens) "
                   "VALUES (new.pk, 't' || hex(new.tenant), new.tokens); END")
        vector_type = None
    op.create_table(
        "embeddings",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("hash", sa.String(32), primary_key=True),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary() if vector_type is None else _pg_vector(), nullable=False),
    )
    op.create_table(
        "retrieval_tenants",
        sa.Column("tenant", sa.String(100), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("chunks", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("languages", JSONDoc),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def _pg_vector() -> sa.types.TypeEngine:
    from pgvector.sqlalchemy import VECTOR

    return VECTOR()


def downgrade() -> None:
    op.drop_table("retrieval_tenants")
    op.drop_table("embeddings")
    if op.get_bind().dialect.name != "postgresql":
        for trigger in ("chunks_fts_insert", "chunks_fts_delete", "chunks_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS chunks_fts")
    op.drop_table("chunks")
    op.drop_table("ingested_files")

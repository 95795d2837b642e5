"""Turn a store written by this flywheel back into the shape an earlier retrieval revision left, so migration
tests start from a store of that revision: `embeddings` before 0016_retrieval_tenant_vectors (one row per
(model, hash), no tenant, not partitioned)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

HEAD = "0016_retrieval_tenant_vectors"


def embeddings_before_tenant_vectors(conn: Any, revision: str = "0009_retrieval_tokenizer",
                                     rows: list[dict] | None = None) -> None:
    """In `conn`'s transaction: replace `embeddings` by the pre-0016 table holding one row per (model, hash) of
    today's rows (or `rows`: model, hash, dim, vector as the engine stores it), and record `revision` as the
    retrieval branch's head."""
    pg = conn.dialect.name == "postgresql"
    if rows is None:
        rows = [dict(r) for r in conn.execute(text(
            "SELECT model, hash, min(dim) AS dim, min(vector::text) AS vector FROM embeddings GROUP BY model, hash"
            if pg else "SELECT model, hash, dim, vector FROM embeddings GROUP BY model, hash")).mappings()]
    conn.execute(text("DROP TABLE embeddings" + (" CASCADE" if pg else "")))
    conn.execute(text("CREATE TABLE embeddings (model VARCHAR(200) NOT NULL, hash VARCHAR(32) NOT NULL, "
                      f"dim INTEGER NOT NULL, vector {'vector' if pg else 'BLOB'} NOT NULL, "
                      "PRIMARY KEY (model, hash))"))
    if rows:
        value = "CAST(:vector AS vector)" if pg else ":vector"
        conn.execute(text(f"INSERT INTO embeddings (model, hash, dim, vector) VALUES (:model, :hash, :dim, {value})"),
                     rows)
    conn.execute(text("UPDATE alembic_version SET version_num = :old WHERE version_num = :head"),
                 {"old": revision, "head": HEAD})

"""retrieval: HNSW indexes over halfvec, one per (model, dim), replacing the `vector` ones (PostgreSQL only).

Stores written before this revision have one HNSW index per model over `vector(dim)`, named
ix_embeddings_hnsw_<content_hash(model, dim)>. Searches now cast to `halfvec(dim)` (pgvector >= 0.7) and filter on
`dim`, so the old index would no longer be used: build the new one (the name and DDL that
flywheel.retrieval.index.postgres.PostgresIndex.on_new_vectors writes) and drop the old. On older pgvector the new
index is over `vector`, as before. SQLite: nothing to do (vectors are scanned exactly in memory). A store with
no vectors (every new store) does nothing here: the index is created at the first vector write.

Revision ID: 0007_retrieval_halfvec
Branch: retrieval
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flywheel.store.schema_retrieval import hnsw_index_ddl, pgvector_version, vector_kind
from flywheel.types import content_hash

revision = "0007_retrieval_halfvec"
down_revision = "0002_retrieval"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    version = pgvector_version(bind)
    for model, dim in bind.execute(sa.text("SELECT DISTINCT model, dim FROM embeddings")).all():
        dim = int(dim)
        kind = vector_kind(version, dim)
        if kind is not None:
            op.execute(hnsw_index_ddl(model, dim, kind, m=16, ef_construction=64))
        op.execute(f"DROP INDEX IF EXISTS ix_embeddings_hnsw_{content_hash(model, str(dim), n=12)}")


def downgrade() -> None:
    """The halfvec indexes stay (an older flywheel ignores them and creates its own at the next write)."""

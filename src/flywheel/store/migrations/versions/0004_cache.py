"""cache: cache_entries, cache_semantic and cache_hits tables.

Revision ID: 0004_cache
Branch: cache
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_cache"
down_revision = None
branch_labels = ("cache",)
depends_on = None

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "cache_entries",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("pinned", sa.Boolean, primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.Column("meta", JSONDoc),
    )
    op.create_index("ix_cache_entries_expires_at", "cache_entries", ["expires_at"])

    op.create_table(
        "cache_semantic",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.Column("meta", JSONDoc),
    )
    op.create_index("ix_cache_semantic_scope_id", "cache_semantic", ["scope", "id"])
    op.create_index("ix_cache_semantic_expires_at", "cache_semantic", ["expires_at"])

    op.create_table(
        "cache_hits",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("accepted", sa.Boolean, nullable=False),
        sa.Column("tenant", sa.String(100)),
        sa.Column("model", sa.String(200)),
        sa.Column("scope", sa.String(32)),
        sa.Column("entry", sa.String(100)),
        sa.Column("similarity", sa.Float),
        sa.Column("verifier_p", sa.Float),
        sa.Column("query", sa.Text),
        sa.Column("cached_question", sa.Text),
        sa.Column("trace_id", sa.String(32)),
    )
    op.create_index("ix_cache_hits_created_at", "cache_hits", ["created_at"])


def downgrade() -> None:
    op.drop_table("cache_hits")
    op.drop_table("cache_semantic")
    op.drop_table("cache_entries")

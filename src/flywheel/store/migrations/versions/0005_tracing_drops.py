"""tracing: writer_drops, the count of items the background writer dropped under load.

Revision ID: 0005_tracing_drops
Branch: tracing
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_tracing_drops"
down_revision = "0001_tracing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "writer_drops",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.create_index("ix_writer_drops_at", "writer_drops", ["at"])


def downgrade() -> None:
    op.drop_index("ix_writer_drops_at", table_name="writer_drops")
    op.drop_table("writer_drops")

"""drift: trace_vectors (stored embeddings, keyword tokens and descriptors per trace).

Revision ID: 0007_drift
Branch: drift
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_drift"
down_revision = None
branch_labels = ("drift",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trace_vectors",
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("embedder", sa.String(200), primary_key=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("app", sa.String(100)),
        sa.Column("model", sa.String(200)),
        sa.Column("tenant", sa.String(100)),
        sa.Column("input_language", sa.String(10)),
        sa.Column("output_language", sa.String(10)),
        sa.Column("input_chars", sa.Integer, nullable=False, server_default="0"),
        sa.Column("output_chars", sa.Integer, nullable=False, server_default="0"),
        sa.Column("refused", sa.Boolean, nullable=False),
        sa.Column("input_format", sa.String(12), nullable=False, server_default="plain"),
        sa.Column("output_format", sa.String(12), nullable=False, server_default="text"),
        sa.Column("input_terms", sa.Text),
        sa.Column("output_terms", sa.Text),
        sa.Column("input_vec", sa.LargeBinary),
        sa.Column("output_vec", sa.LargeBinary),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_trace_vectors_embedder_started_at", "trace_vectors", ["embedder", "started_at"])


def downgrade() -> None:
    op.drop_table("trace_vectors")

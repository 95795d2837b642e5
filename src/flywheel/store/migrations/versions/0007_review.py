"""review: annotation queues, their items, labels and per-annotator claims.

Revision ID: 0007_review
Branch: review (depends on 0006_feedback: a label also writes a `feedback` row)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007_review"
down_revision = None
branch_labels = ("review",)
depends_on = "0006_feedback"

JSONDoc = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "review_queues",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("overlap", sa.Integer, nullable=False),
        sa.Column("strategy", sa.String(50), nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("tenant", sa.String(100)),
        sa.Column("app", sa.String(100)),
        sa.Column("since", sa.Float),
        sa.Column("until", sa.Float),
        sa.Column("params", JSONDoc),
        sa.Column("n_items", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("name", name="uq_review_queues_name"),
    )
    op.create_table(
        "review_items",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("queue_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("trace_id_b", sa.String(32)),
        sa.Column("stratum", sa.String(50)),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_review_items_queue_id_position", "review_items", ["queue_id", "position"])
    op.create_index("ix_review_items_trace_id", "review_items", ["trace_id"])
    op.create_index("ix_review_items_trace_id_b", "review_items", ["trace_id_b"])
    op.create_table(
        "review_labels",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.String(32), nullable=False),
        sa.Column("queue_id", sa.String(32), nullable=False),
        sa.Column("annotator", sa.String(200), nullable=False),
        sa.Column("verdict", sa.String(10), nullable=False),
        sa.Column("shown", sa.String(10), nullable=False),
        sa.Column("swapped", sa.Integer, nullable=False, server_default="0"),
        sa.Column("reason", sa.Text),
        sa.Column("correction", sa.Text),
        sa.Column("feedback_id", sa.Integer),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("item_id", "annotator", name="uq_review_labels_item_annotator"),
    )
    op.create_index("ix_review_labels_queue_id", "review_labels", ["queue_id"])
    op.create_table(
        "review_claims",
        sa.Column("item_id", sa.String(32), primary_key=True),
        sa.Column("annotator", sa.String(200), primary_key=True),
        sa.Column("queue_id", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_review_claims_queue_id", "review_claims", ["queue_id"])


def downgrade() -> None:
    for table in ("review_claims", "review_labels", "review_items", "review_queues"):
        op.drop_table(table)

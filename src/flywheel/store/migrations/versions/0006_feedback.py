"""feedback: the feedback table (events and labels attached to traces).

Revision ID: 0006_feedback
Branch: feedback
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_feedback"
down_revision = None
branch_labels = ("feedback",)
depends_on = None

JSONDoc = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("span_id", sa.String(32)),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("value", JSONDoc),
        sa.Column("comment", sa.Text),
        sa.Column("actor", sa.String(200)),
        sa.Column("tenant", sa.String(100)),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_feedback_trace_id", "feedback", ["trace_id"])
    op.create_index("ix_feedback_name_created_at", "feedback", ["name", "created_at"])


def downgrade() -> None:
    op.drop_table("feedback")

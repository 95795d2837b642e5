"""prompts: stored prompt versions and the history of their labels.

Revision ID: 0007_prompts
Branch: prompts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007_prompts"
down_revision = None
branch_labels = ("prompts",)
depends_on = None

JSONDoc = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "prompt_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("content", JSONDoc, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("path", sa.String(1000)),
        sa.Column("source_text", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_prompt_versions_name_version"),
    )
    op.create_table(
        "prompt_labels",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("actor", sa.String(200)),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_prompt_labels_name_label", "prompt_labels", ["name", "label"])


def downgrade() -> None:
    op.drop_table("prompt_labels")
    op.drop_table("prompt_versions")

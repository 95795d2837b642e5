"""batches: batch_request_usage (cached and reasoning tokens of finished batch requests).

Revision ID: 0013_batches_usage
Branch: batches
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_batches_usage"
down_revision = "0012_batches"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_request_usage",
        sa.Column("batch_id", sa.String(64), primary_key=True),
        sa.Column("line", sa.Integer, primary_key=True),
        sa.Column("cached_tokens", sa.Integer, nullable=False),
        sa.Column("reasoning_tokens", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("batch_request_usage")

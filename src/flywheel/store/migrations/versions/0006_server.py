"""server: api_keys (hashed virtual keys with budgets) and rate_windows (rpm / tpm counters).

Revision ID: 0006_server
Branch: server
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_server"
down_revision = None
branch_labels = ("server",)
depends_on = None

JSONDoc = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("models", JSONDoc),
        sa.Column("apps", JSONDoc),
        sa.Column("budget_usd", sa.Float),
        sa.Column("budget_period", sa.String(10)),
        sa.Column("period", sa.String(10)),
        sa.Column("spent_usd", sa.Float, nullable=False, server_default="0"),
        sa.Column("reserved_usd", sa.Float, nullable=False, server_default="0"),
        sa.Column("rpm", sa.Integer),
        sa.Column("tpm", sa.Integer),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float),
    )
    op.create_index("ix_api_keys_name", "api_keys", ["name"])
    op.create_table(
        "rate_windows",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("minute", sa.Integer, primary_key=True),
        sa.Column("requests", sa.Integer, nullable=False, server_default="0"),
        sa.Column("tokens", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("rate_windows")
    op.drop_table("api_keys")

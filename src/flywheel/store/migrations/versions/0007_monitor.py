"""monitor: online-evaluator claims and cursors, alerts sent.

Revision ID: 0007_monitor
Branch: monitor
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_monitor"
down_revision = None
branch_labels = ("monitor",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_online_runs",
        sa.Column("evaluator", sa.String(100), primary_key=True),
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("worker", sa.String(100)),
        sa.Column("claimed_at", sa.Float, nullable=False),
        sa.Column("next_at", sa.Float),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_monitor_online_runs_status_next_at", "monitor_online_runs", ["status", "next_at"])
    op.create_table(
        "monitor_cursors",
        sa.Column("evaluator", sa.String(100), primary_key=True),
        sa.Column("position", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "monitor_alerts",
        sa.Column("rule", sa.String(100), primary_key=True),
        sa.Column("window_start", sa.Float, primary_key=True),
        sa.Column("group_key", sa.String(500), primary_key=True),
        sa.Column("sent_at", sa.Float, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("monitor_alerts")
    op.drop_table("monitor_cursors")
    op.drop_table("monitor_online_runs")

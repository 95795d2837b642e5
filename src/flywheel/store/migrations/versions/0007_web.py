"""web: saved views of the dashboard, and indexes for its trace list (keyset pages, model/status filters, users).

Revision ID: 0007_web
Branch: web
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_web"
down_revision = None
branch_labels = ("web",)
depends_on = "0007_tracing_sessions"  # the traces table with its user_id column


def upgrade() -> None:
    op.create_table(
        "web_views",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(100)),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("page", sa.String(40), nullable=False),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(200)),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_web_views_tenant_page", "web_views", ["tenant", "page"])
    op.create_index("ix_traces_started_at_trace_id", "traces", ["started_at", "trace_id"])
    op.create_index("ix_traces_model_started_at", "traces", ["model", "started_at"])
    op.create_index("ix_traces_status_started_at", "traces", ["status", "started_at"])
    op.create_index("ix_traces_user_id", "traces", ["user_id"])


def downgrade() -> None:
    for name in ("ix_traces_user_id", "ix_traces_status_started_at", "ix_traces_model_started_at",
                 "ix_traces_started_at_trace_id"):
        op.drop_index(name, table_name="traces")
    op.drop_index("ix_web_views_tenant_page", table_name="web_views")
    op.drop_table("web_views")

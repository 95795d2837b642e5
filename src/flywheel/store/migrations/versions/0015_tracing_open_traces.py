"""tracing: open_traces, the traces with spans stored but no trace row yet (still running, or killed), so they
are listed however old without scanning every span; filled here from the spans already stored (one scan, once).

Revision ID: 0015_tracing_open_traces
Branch: tracing
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_tracing_open_traces"
down_revision = "0007_tracing_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "open_traces",
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("started_at", sa.Float, nullable=False),
    )
    op.create_index("ix_open_traces_started_at", "open_traces", ["started_at"])
    op.execute(
        "INSERT INTO open_traces (trace_id, started_at) "
        "SELECT s.trace_id, MIN(s.start_ns) / 1e9 FROM spans s "
        "WHERE NOT EXISTS (SELECT 1 FROM traces t WHERE t.trace_id = s.trace_id) GROUP BY s.trace_id"
    )


def downgrade() -> None:
    op.drop_index("ix_open_traces_started_at", table_name="open_traces")
    op.drop_table("open_traces")

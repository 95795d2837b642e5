"""tracing: session and user ids on traces (multi-turn conversations, per-user views), and where a trace came
from (our own tracer, the OTLP receiver, or an import of past logs).

Revision ID: 0007_tracing_sessions
Branch: tracing
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_tracing_sessions"
down_revision = "0005_tracing_drops"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("traces") as batch:
        batch.add_column(sa.Column("session_id", sa.String(200)))
        batch.add_column(sa.Column("user_id", sa.String(200)))
    op.create_index("ix_traces_session_id", "traces", ["session_id"])


def downgrade() -> None:
    op.drop_index("ix_traces_session_id", table_name="traces")
    with op.batch_alter_table("traces") as batch:
        batch.drop_column("user_id")
        batch.drop_column("session_id")

"""tracing: traces and spans tables.

Revision ID: 0001_tracing
Branch: tracing
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_tracing"
down_revision = None
branch_labels = ("tracing",)
depends_on = None

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "traces",
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False, server_default="other"),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        sa.Column("latency_ms", sa.Float),
        sa.Column("status", sa.String(10), nullable=False, server_default="ok"),
        sa.Column("error", sa.Text),
        sa.Column("input_preview", sa.Text),
        sa.Column("output_preview", sa.Text),
        sa.Column("output_state", sa.String(10)),
        sa.Column("tenant", sa.String(100)),
        sa.Column("app", sa.String(100)),
        sa.Column("model", sa.String(200)),
        sa.Column("prompt_version", sa.String(100)),
        sa.Column("span_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("input_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
    )
    op.create_index("ix_traces_started_at", "traces", ["started_at"])
    op.create_index("ix_traces_app_started_at", "traces", ["app", "started_at"])
    op.create_index("ix_traces_tenant_started_at", "traces", ["tenant", "started_at"])

    op.create_table(
        "spans",
        sa.Column("span_id", sa.String(32), primary_key=True),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("parent_id", sa.String(32)),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False, server_default="other"),
        sa.Column("start_ns", sa.BigInteger, nullable=False),
        sa.Column("end_ns", sa.BigInteger),
        sa.Column("latency_ms", sa.Float),
        sa.Column("inputs", JSONDoc),
        sa.Column("outputs", JSONDoc),
        sa.Column("output_state", sa.String(10), nullable=False, server_default="missing"),
        sa.Column("error", sa.Text),
        sa.Column("attributes", JSONDoc),
        sa.Column("model", sa.String(200)),
        sa.Column("provider", sa.String(50)),
        sa.Column("input_tokens", sa.Integer),
        sa.Column("output_tokens", sa.Integer),
        sa.Column("cost_usd", sa.Float),
        sa.Column("prompt_version", sa.String(100)),
        sa.Column("tenant", sa.String(100)),
        sa.Column("app", sa.String(100)),
    )
    op.create_index("ix_spans_trace_id", "spans", ["trace_id"])
    op.create_index("ix_spans_start_ns", "spans", ["start_ns"])
    op.create_index("ix_spans_kind_start_ns", "spans", ["kind", "start_ns"])


def downgrade() -> None:
    op.drop_table("spans")
    op.drop_table("traces")

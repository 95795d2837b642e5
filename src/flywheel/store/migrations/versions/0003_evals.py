"""evals: eval_runs and eval_results tables.

Revision ID: 0003_evals
Branch: evals
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_evals"
down_revision = None
branch_labels = ("evals",)
depends_on = None

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("suite", sa.String(200), nullable=False),
        sa.Column("suite_path", sa.Text),
        sa.Column("suite_hash", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("model", sa.String(200)),
        sa.Column("status", sa.String(20), nullable=False, server_default="running"),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("repeat", sa.Integer, nullable=False, server_default="1"),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("cases_total", sa.Integer, nullable=False, server_default="0"),
        sa.Column("pass_rate", sa.Float),
        sa.Column("versions", JSONDoc),
        sa.Column("summary", JSONDoc),
    )
    op.create_index("ix_eval_runs_suite_started_at", "eval_runs", ["suite", "started_at"])
    op.create_index("ix_eval_runs_fingerprint", "eval_runs", ["fingerprint"])

    op.create_table(
        "eval_results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("eval_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("case_id", sa.String(200), nullable=False),
        sa.Column("repeat_index", sa.Integer, nullable=False, server_default="0"),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("input", sa.Text),
        sa.Column("output", sa.Text),
        sa.Column("reference", sa.Text),
        sa.Column("vars", JSONDoc),
        sa.Column("checks", JSONDoc),
        sa.Column("error", sa.Text),
        sa.Column("latency_ms", sa.Float),
        sa.Column("cost_usd", sa.Float),
        sa.Column("trace_id", sa.String(32)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("run_id", "case_id", "repeat_index", name="uq_eval_results_run_case_repeat"),
    )


def downgrade() -> None:
    op.drop_table("eval_results")
    op.drop_table("eval_runs")

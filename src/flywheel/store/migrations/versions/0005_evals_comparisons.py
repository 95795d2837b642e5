"""evals: a failed run's reason, what each result's answer reported, stored comparisons.

Revision ID: 0005_evals_comparisons
Branch: evals
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_evals_comparisons"
down_revision = "0003_evals"
branch_labels = None
depends_on = None

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("eval_runs") as batch:
        batch.add_column(sa.Column("error", sa.Text))
    with op.batch_alter_table("eval_results") as batch:
        batch.add_column(sa.Column("meta", JSONDoc))

    op.create_table(
        "eval_comparisons",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("a", sa.String(200), nullable=False),
        sa.Column("b", sa.String(200), nullable=False),
        sa.Column("run_a", sa.String(32)),
        sa.Column("run_b", sa.String(32)),
        sa.Column("app", sa.String(100)),
        sa.Column("judge", sa.String(200), nullable=False),
        sa.Column("judge_model", sa.String(300)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("summary", JSONDoc),
    )
    op.create_index("ix_eval_comparisons_created_at", "eval_comparisons", ["created_at"])

    op.create_table(
        "eval_comparison_pairs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "comparison_id",
            sa.String(32),
            sa.ForeignKey("eval_comparisons.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("ordinal", sa.Integer, nullable=False),
        sa.Column("case_id", sa.String(200), nullable=False),
        sa.Column("question", sa.Text),
        sa.Column("reference", sa.Text),
        sa.Column("answer_a", sa.Text),
        sa.Column("answer_b", sa.Text),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("verdict_1", sa.String(10)),
        sa.Column("verdict_2", sa.String(10)),
        sa.Column("reason_1", sa.Text),
        sa.Column("reason_2", sa.Text),
        sa.Column("consistent", sa.Boolean),
        sa.Column("length_ratio", sa.Float),
        sa.Column("flagged", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.Column("judge_cost_usd", sa.Float),
        sa.Column("tenant", sa.String(100)),
        sa.Column("trace_id", sa.String(32)),
        sa.Column("replay_trace_id", sa.String(32)),
    )
    op.create_index(
        "ix_eval_comparison_pairs_comparison", "eval_comparison_pairs", ["comparison_id", "ordinal"]
    )


def downgrade() -> None:
    op.drop_table("eval_comparison_pairs")
    op.drop_table("eval_comparisons")
    with op.batch_alter_table("eval_results") as batch:
        batch.drop_column("meta")
    with op.batch_alter_table("eval_runs") as batch:
        batch.drop_column("error")

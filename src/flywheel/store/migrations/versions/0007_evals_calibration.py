"""evals: versioned judge prompts calibrated against human labels (`flywheel judge calibrate`).

Revision ID: 0007_evals_calibration
Branch: evals
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007_evals_calibration"
down_revision = "0005_evals_comparisons"
branch_labels = None
depends_on = None

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "judge_calibrations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("judge_key", sa.String(40), nullable=False),
        sa.Column("check_name", sa.String(300), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("base_criterion", sa.Text, nullable=False),
        sa.Column("criterion", sa.Text, nullable=False),
        sa.Column("examples", JSONDoc),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("judge_model", sa.String(300)),
        sa.Column("queue_id", sa.String(64)),
        sa.Column("seed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("n_heldout", sa.Integer, nullable=False),
        sa.Column("kappa_before", sa.Float),
        sa.Column("kappa_after", sa.Float),
        sa.Column("adopted", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("metrics", JSONDoc),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("judge_key", "version", name="uq_judge_calibrations_key_version"),
    )


def downgrade() -> None:
    op.drop_table("judge_calibrations")

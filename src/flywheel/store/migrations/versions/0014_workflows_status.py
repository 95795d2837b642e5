"""workflows: workflow_runs.status wide enough for every state (`interrupted` is 11 characters; PostgreSQL refused
it, so a run stopped by Ctrl-C stayed `running` there).

Revision ID: 0014_workflows_status
Branch: workflows
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_workflows_status"
down_revision = "0007_workflows"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workflow_runs") as batch:
        batch.alter_column("status", existing_type=sa.String(10), type_=sa.String(16), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("workflow_runs") as batch:
        batch.alter_column("status", existing_type=sa.String(16), type_=sa.String(10), existing_nullable=False)

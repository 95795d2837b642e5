"""review: queue names unique per tenant (was: across all tenants, which told one tenant another's names).

Revision ID: 0008_review_tenant_names
Branch: review

A NULL tenant is never equal to another in a unique constraint, so queues.create_queue also checks the name
inside its serialised transaction; the constraint is the backstop for named tenants.
"""

from __future__ import annotations

from alembic import op

revision = "0008_review_tenant_names"
down_revision = "0007_review"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("review_queues") as batch:
        batch.drop_constraint("uq_review_queues_name", type_="unique")
        batch.create_unique_constraint("uq_review_queues_tenant_name", ["tenant", "name"])


def downgrade() -> None:
    with op.batch_alter_table("review_queues") as batch:
        batch.drop_constraint("uq_review_queues_tenant_name", type_="unique")
        batch.create_unique_constraint("uq_review_queues_name", ["name"])

"""batches: files, batches and batch_requests (the OpenAI Files and Batch APIs on `flywheel serve`).

Revision ID: 0012_batches
Branch: batches
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0012_batches"
down_revision = None
branch_labels = ("batches",)
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float),
    )
    op.create_index("ix_files_tenant", "files", ["tenant", "created_at"])
    op.create_table(
        "batches",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("key_id", sa.String(32)),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("admin", sa.Boolean, nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("input_file_id", sa.String(64), nullable=False),
        sa.Column("completion_window", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("meta", _json()),
        sa.Column("errors", _json()),
        sa.Column("model", sa.String(200)),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("output_file_id", sa.String(64)),
        sa.Column("error_file_id", sa.String(64)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("in_progress_at", sa.Float),
        sa.Column("finalizing_at", sa.Float),
        sa.Column("completed_at", sa.Float),
        sa.Column("failed_at", sa.Float),
        sa.Column("expired_at", sa.Float),
        sa.Column("cancelling_at", sa.Float),
        sa.Column("cancelled_at", sa.Float),
        sa.Column("worker", sa.String(200)),
        sa.Column("lease_until", sa.Float),
    )
    op.create_index("ix_batches_tenant", "batches", ["tenant", "created_at"])
    op.create_index("ix_batches_status", "batches", ["status"])
    op.create_table(
        "batch_requests",
        sa.Column("batch_id", sa.String(64), primary_key=True),
        sa.Column("line", sa.Integer, primary_key=True),
        sa.Column("custom_id", sa.String(512), nullable=False),
        sa.Column("body", _json(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("result", _json()),
        sa.Column("input_tokens", sa.Integer),
        sa.Column("output_tokens", sa.Integer),
        sa.Column("finished_at", sa.Float),
    )
    op.create_index("ix_batch_requests_state", "batch_requests", ["batch_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_batch_requests_state", table_name="batch_requests")
    op.drop_table("batch_requests")
    op.drop_index("ix_batches_status", table_name="batches")
    op.drop_index("ix_batches_tenant", table_name="batches")
    op.drop_table("batches")
    op.drop_index("ix_files_tenant", table_name="files")
    op.drop_table("files")

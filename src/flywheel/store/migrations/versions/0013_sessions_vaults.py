"""sessions: session_vaults and session_vault_values (chat sessions' redaction vaults, sealed, without Redis).

Revision ID: 0013_sessions_vaults
Branch: sessions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_sessions_vaults"
down_revision = "0007_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "session_vaults",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("nonce", sa.String(32), nullable=False),
        sa.Column("used_at", sa.Float, nullable=False),
    )
    op.create_index("ix_session_vaults_used_at", "session_vaults", ["used_at"])
    op.create_table(
        "session_vault_values",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("entity_type", sa.String(100), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("sealed", sa.LargeBinary, nullable=False),
    )
    op.create_index("ux_session_vault_values_fingerprint", "session_vault_values", ["key", "fingerprint"],
                    unique=True)


def downgrade() -> None:
    op.drop_index("ux_session_vault_values_fingerprint", table_name="session_vault_values")
    op.drop_table("session_vault_values")
    op.drop_index("ix_session_vaults_used_at", table_name="session_vaults")
    op.drop_table("session_vaults")

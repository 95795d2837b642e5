"""sessions: chat_turns (conversation memory of chat apps, per tenant and session id).

Revision ID: 0007_sessions
Branch: sessions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_sessions"
down_revision = None
branch_labels = ("sessions",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_turns",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("session_id", sa.String(200), nullable=False),
        sa.Column("app", sa.String(100), nullable=False),
        sa.Column("user_text", sa.Text, nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("trace_id", sa.String(32)),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_chat_turns_session", "chat_turns", ["tenant", "session_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_chat_turns_session", table_name="chat_turns")
    op.drop_table("chat_turns")

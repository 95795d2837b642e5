"""conversations: conversations and conversation_items (the OpenAI Conversations API on `flywheel serve`).

Revision ID: 0010_conversations
Branch: conversations
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010_conversations"
down_revision = None
branch_labels = ("conversations",)
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("meta", _json()),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "conversation_items",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("conversation_id", sa.String(64), nullable=False),
        sa.Column("item_id", sa.String(100), nullable=False),
        sa.Column("item", _json(), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_conversation_items_order", "conversation_items", ["conversation_id", "seq"])
    op.create_index("ix_conversation_items_id", "conversation_items", ["conversation_id", "item_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_conversation_items_id", table_name="conversation_items")
    op.drop_index("ix_conversation_items_order", table_name="conversation_items")
    op.drop_table("conversation_items")
    op.drop_table("conversations")

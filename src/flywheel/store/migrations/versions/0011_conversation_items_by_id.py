"""conversations: conversation_items indexed by item id alone (an `item_reference` on /v1/responses names an item
of any of the caller's conversations).

Revision ID: 0011_conversation_items_by_id
Branch: conversations
"""

from __future__ import annotations

from alembic import op

revision = "0011_conversation_items_by_id"
down_revision = "0010_conversations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_conversation_items_item", "conversation_items", ["item_id"])


def downgrade() -> None:
    op.drop_index("ix_conversation_items_item", table_name="conversation_items")

"""Tables of the conversations domain (the OpenAI Conversations API on `flywheel serve`,
flywheel/server/conversations_store.py). Migrations: migrations/versions/0010_conversations.py, 0011_conversation_items_by_id.py.

- conversations: one row per conversation (`conv_<48 hex>`), owned by one tenant: another tenant's id is not
  found. `meta` is the caller's metadata (up to 16 string pairs). Deleting a conversation deletes its row and
  its items.
- conversation_items: the conversation's items in order (`seq`), each the Responses item as the API answers it
  (`item`, secrets scrubbed before it is stored); `item_id` is unique within its conversation.
Times are Unix seconds (float).
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table

from flywheel.store.schema import JSONDoc, metadata

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant", String(100), nullable=False),
    Column("meta", JSONDoc),
    Column("created_at", Float, nullable=False),
)

conversation_items = Table(
    "conversation_items",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(64), nullable=False),
    Column("item_id", String(100), nullable=False),
    Column("item", JSONDoc, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_conversation_items_order", "conversation_id", "seq"),
    Index("ix_conversation_items_id", "conversation_id", "item_id", unique=True),
    Index("ix_conversation_items_item", "item_id"),  # item_reference lookups across conversations (0011)
)

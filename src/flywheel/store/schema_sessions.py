"""Tables of the sessions domain (chat conversation memory, flywheel.apps.memory).
Migration: migrations/versions/0007_sessions.py.

- chat_turns: one row per finished exchange of a chat session, keyed by (tenant, session_id): a session id
  sent by another tenant finds no rows. `user_text` is the message as the model saw it (after input guards);
  `answer` the answer with secrets scrubbed. Times are Unix seconds (float).
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from flywheel.store.schema import metadata

chat_turns = Table(
    "chat_turns",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(100), nullable=False),
    Column("session_id", String(200), nullable=False),
    Column("app", String(100), nullable=False),
    Column("user_text", Text, nullable=False),
    Column("answer", Text, nullable=False),
    Column("trace_id", String(32)),
    Column("created_at", Float, nullable=False),
    Index("ix_chat_turns_session", "tenant", "session_id", "id"),
)

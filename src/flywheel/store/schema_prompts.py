"""Tables of the prompts domain (flywheel.prompts.versions). Migration: migrations/versions/0007_prompts.py.

- prompt_versions: every distinct version of a prompt that was registered or loaded by an app: its name, the
  content hash (`version`), the content itself (what the model sees, enough to render it again), the file it
  came from and that file's text at the time.
- prompt_labels: the history of label moves (`production`, `staging`, any name). A row says "label L of
  prompt N now points at version V" (`action` set) or "L went back to V" (`action` rollback); the current
  target of a label, and what a rollback restores, come from replaying the rows in id order.
Times are Unix seconds (float).
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text, UniqueConstraint

from flywheel.store.schema import JSONDoc, metadata

prompt_versions = Table(
    "prompt_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("version", String(64), nullable=False),
    Column("content", JSONDoc, nullable=False),
    Column("description", Text),
    Column("path", String(1000)),
    Column("source_text", Text),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("name", "version", name="uq_prompt_versions_name_version"),
)

prompt_labels = Table(
    "prompt_labels",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("label", String(100), nullable=False),
    Column("version", String(64), nullable=False),
    Column("action", String(10), nullable=False),  # set | rollback
    Column("actor", String(200)),
    Column("created_at", Float, nullable=False),
    Index("ix_prompt_labels_name_label", "name", "label"),
)

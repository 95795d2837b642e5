"""Tables of the feedback domain (flywheel.feedback). Migration: migrations/versions/0006_feedback.py.

- feedback: one row per event attached to a trace (and optionally one span of it): explicit user feedback
  (thumbs, score, comment, correction), implicit events (copied, regenerated, edited, accepted …), annotator
  labels, check and judge results. `source` says who wrote it: user | annotator | check | judge.
Times are Unix seconds (float).
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from flywheel.store.schema import ID, JSONDoc, metadata

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trace_id", String(ID), nullable=False),
    Column("span_id", String(ID)),
    Column("source", String(20), nullable=False),  # user | annotator | check | judge
    Column("name", String(100), nullable=False),  # thumbs, score, comment, correction, copied, edited …
    Column("value", JSONDoc),
    Column("comment", Text),
    Column("actor", String(200)),  # who: a key name, "token", an annotator, a check spec
    Column("tenant", String(100)),
    Column("created_at", Float, nullable=False),
    Index("ix_feedback_trace_id", "trace_id"),
    Index("ix_feedback_name_created_at", "name", "created_at"),
)

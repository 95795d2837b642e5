"""Tables of the review domain (flywheel.feedback.queues). Migrations: migrations/versions/0007_review.py,
0008_review_tenant_names.py.

- review_queues: one row per annotation queue (its name unique per tenant): binary (pass / fail) or pairwise (a / b / tie), the overlap K
  (distinct annotators each item needs), and how it was sampled (strategy, seed, window, app) so it can be rebuilt.
- review_items: the queue's tasks in order; a binary item is one trace, a pairwise item two traces that answered
  the same input (`trace_id` is A, `trace_id_b` is B before the per-annotator shuffle). `stratum` is the sampling
  strategy that picked it.
- review_labels: one verdict per (item, annotator) — the unique constraint is the last line of defence for
  "never twice"; `verdict` is canonical (a = trace_id), `shown` what the annotator pressed, `swapped` whether
  their screen showed B first. `feedback_id` is the `feedback` row the label also wrote.
- review_claims: an annotator's hold on an item (`next_item`), until `expires_at`; counted against the overlap.
Times are Unix seconds (float).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, String, Table, Text, UniqueConstraint

from flywheel.store.schema import ID, JSONDoc, metadata

review_queues = Table(
    "review_queues",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(10), nullable=False),  # binary | pairwise
    Column("overlap", Integer, nullable=False),
    Column("strategy", String(50), nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("tenant", String(100)),
    Column("app", String(100)),
    Column("since", Float),
    Column("until", Float),
    Column("params", JSONDoc),
    Column("n_items", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("tenant", "name", name="uq_review_queues_tenant_name"),
)

review_items = Table(
    "review_items",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("queue_id", String(ID), nullable=False),
    Column("position", Integer, nullable=False),
    Column("kind", String(10), nullable=False),
    Column("trace_id", String(ID), nullable=False),
    Column("trace_id_b", String(ID)),
    Column("stratum", String(50)),
    Column("created_at", Float, nullable=False),
    Index("ix_review_items_queue_id_position", "queue_id", "position"),
    Index("ix_review_items_trace_id", "trace_id"),
    Index("ix_review_items_trace_id_b", "trace_id_b"),
)

review_labels = Table(
    "review_labels",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_id", String(ID), nullable=False),
    Column("queue_id", String(ID), nullable=False),
    Column("annotator", String(200), nullable=False),
    Column("verdict", String(10), nullable=False),
    Column("shown", String(10), nullable=False),
    Column("swapped", Integer, nullable=False, server_default="0"),
    Column("reason", Text),
    Column("correction", Text),
    Column("feedback_id", Integer),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("item_id", "annotator", name="uq_review_labels_item_annotator"),
    Index("ix_review_labels_queue_id", "queue_id"),
)

review_claims = Table(
    "review_claims",
    metadata,
    Column("item_id", String(ID), primary_key=True),
    Column("annotator", String(200), primary_key=True),
    Column("queue_id", String(ID), nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_review_claims_queue_id", "queue_id"),
)

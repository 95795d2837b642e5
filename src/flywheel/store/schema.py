"""Tables of the tracing domain, and the one `metadata` every domain adds its tables to.

Other domains define their tables in `flywheel/store/schema_<domain>.py` with
`from flywheel.store.schema import metadata`; `flywheel.store.db` imports every `schema_*` module, and each
domain ships hand-written migrations on its own Alembic branch (see migrations/README.md).

Times: `traces.started_at/ended_at` are Unix seconds (float); `spans.start_ns/end_ns` Unix nanoseconds.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

from flywheel.text import fold_for_search

metadata = MetaData()


def search_text(question: str | None, answer: str | None) -> str:
    """`traces.search_text`: the question and answer previews, each `fold_for_search`ed (full-width letters and
    digits as ASCII, lower case, traditional Chinese as simplified), on lines of their own; a search word is
    matched against it folded the same way (flywheel.tracing.search)."""
    return "\n".join(fold_for_search(p) for p in (question, answer) if p)


def _search_text_default(context: Any) -> str:
    row = context.get_current_parameters()
    return search_text(row.get("input_preview"), row.get("output_preview"))


# JSON documents: JSONB on PostgreSQL (indexable, compact), JSON text on SQLite. Python None is stored as
# SQL NULL (not the JSON literal null), so `IS NULL` works the same on both engines.
JSONDoc = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

ID = 32  # hex ids: trace 32 chars, span 16 chars

traces = Table(
    "traces",
    metadata,
    Column("trace_id", String(ID), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(20), nullable=False, server_default="other"),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("latency_ms", Float),
    Column("status", String(10), nullable=False, server_default="ok"),  # ok | error
    Column("error", Text),
    Column("input_preview", Text),
    Column("output_preview", Text),
    Column("output_state", String(10)),  # ok | empty | missing (of the root span)
    Column("tenant", String(100)),
    Column("app", String(100)),
    Column("model", String(200)),
    Column("prompt_version", String(100)),
    Column("span_count", Integer, nullable=False, server_default="0"),
    Column("error_count", Integer, nullable=False, server_default="0"),
    Column("input_tokens", Integer, nullable=False, server_default="0"),
    Column("output_tokens", Integer, nullable=False, server_default="0"),
    Column("cost_usd", Float, nullable=False, server_default="0"),
    Column("session_id", String(200)),  # a conversation: flywheel.session_id / session.id / gen_ai.conversation.id
    Column("user_id", String(200)),  # the end user: flywheel.user_id / user.id / the OpenAI `user` field
    # what trace search matches: the previews folded by `search_text` (filled on insert when a row leaves it out;
    # NULL only in rows written by raw SQL, which search matches on the previews as written)
    Column("search_text", Text, default=_search_text_default),
    Index("ix_traces_started_at", "started_at"),
    Index("ix_traces_session_id", "session_id"),
    Index("ix_traces_app_started_at", "app", "started_at"),
    Index("ix_traces_tenant_started_at", "tenant", "started_at"),
)

spans = Table(
    "spans",
    metadata,
    Column("span_id", String(ID), primary_key=True),
    Column("trace_id", String(ID), nullable=False),
    Column("parent_id", String(ID)),
    Column("name", String(200), nullable=False),
    Column("kind", String(20), nullable=False, server_default="other"),
    Column("start_ns", BigInteger, nullable=False),
    Column("end_ns", BigInteger),
    Column("latency_ms", Float),
    Column("inputs", JSONDoc),
    Column("outputs", JSONDoc),
    Column("output_state", String(10), nullable=False, server_default="missing"),  # ok | empty | missing
    Column("error", Text),
    Column("attributes", JSONDoc),
    Column("model", String(200)),
    Column("provider", String(50)),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("cost_usd", Float),
    Column("prompt_version", String(100)),
    Column("tenant", String(100)),
    Column("app", String(100)),
    Index("ix_spans_trace_id", "trace_id"),
    Index("ix_spans_start_ns", "start_ns"),
    Index("ix_spans_kind_start_ns", "kind", "start_ns"),
)

# Items the background writer had to drop (queue full for longer than its back-pressure wait, or written after
# close), one row per (kind, reason) per batch: lost spans are counted, never silent.
writer_drops = Table(
    "writer_drops",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),  # Unix seconds
    Column("kind", String(100), nullable=False),  # e.g. tracing.spans, table:cache_hits
    Column("reason", String(20), nullable=False),  # queue_full | closed | early_buffer_full
    Column("count", Integer, nullable=False),
    Index("ix_writer_drops_at", "at"),
)

# Traces with spans stored and no trace row yet: the root span has not ended (the request is still running, or
# its process was killed). A row per such trace, written with the trace's first spans and deleted when its trace
# row is written, so `flywheel traces` and the dashboard find an incomplete trace of any age by reading this
# small table instead of scanning every span for a trace id without a trace row.
open_traces = Table(
    "open_traces",
    metadata,
    Column("trace_id", String(ID), primary_key=True),
    Column("started_at", Float, nullable=False),  # Unix seconds: the earliest of its spans stored when first seen
    Index("ix_open_traces_started_at", "started_at"),
)

"""Tables of the web dashboard (flywheel.web), and the indexes its trace pages need on the tracing tables.
Migration: migrations/versions/0007_web.py (branch "web").

- web_views: saved views of the traces page — a name and the page's querystring, per tenant.
Times are Unix seconds (float).
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from flywheel.store.schema import metadata, traces

web_views = Table(
    "web_views",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(100)),  # None: made on an open (local) server or by the admin
    Column("name", String(100), nullable=False),
    Column("page", String(40), nullable=False),  # traces | sessions
    Column("query", Text, nullable=False),  # the querystring, without cursor or lang
    Column("created_by", String(200)),
    Column("created_at", Float, nullable=False),
    Index("ix_web_views_tenant_page", "tenant", "page"),
)

# keyset pages of the trace list and its most used filters (bound to `traces`, created by 0007_web)
Index("ix_traces_started_at_trace_id", traces.c.started_at, traces.c.trace_id)
Index("ix_traces_model_started_at", traces.c.model, traces.c.started_at)
Index("ix_traces_status_started_at", traces.c.status, traces.c.started_at)
Index("ix_traces_user_id", traces.c.user_id)

"""tracing: traces.search_text, the question and answer previews folded for search (full-width letters and
digits as ASCII, lower case, traditional Chinese as simplified), so trace search matches ＡＰＩ with "api" and
發票 with "发票" in plain SQL LIKE on both engines; filled here for the traces already stored (a keyset pass in
batches, once).

Revision ID: 0016_tracing_search_text
Branch: tracing
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flywheel.store.schema import search_text

revision = "0016_tracing_search_text"
down_revision = "0015_tracing_open_traces"
branch_labels = None
depends_on = None

_BATCH = 2000


def upgrade() -> None:
    with op.batch_alter_table("traces") as batch:
        batch.add_column(sa.Column("search_text", sa.Text))
    t = sa.table("traces", sa.column("trace_id", sa.String), sa.column("input_preview", sa.Text),
                 sa.column("output_preview", sa.Text), sa.column("search_text", sa.Text))
    fill = t.update().where(t.c.trace_id == sa.bindparam("b_id")).values(search_text=sa.bindparam("b_text"))
    bind = op.get_bind()
    last = ""
    while True:
        rows = bind.execute(sa.select(t.c.trace_id, t.c.input_preview, t.c.output_preview)
                            .where(t.c.trace_id > last).order_by(t.c.trace_id).limit(_BATCH)).all()
        if not rows:
            break
        bind.execute(fill, [{"b_id": tid, "b_text": search_text(q, a)} for tid, q, a in rows])
        last = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("traces") as batch:
        batch.drop_column("search_text")

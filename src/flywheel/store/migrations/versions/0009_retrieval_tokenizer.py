"""retrieval: the keyword tokenizer version each file was indexed with (`ingested_files.tokenizer`).

Revision ID: 0009_retrieval_tokenizer
Branch: retrieval

A search over files indexed by another version of flywheel.retrieval.tokenize.keyword_tokens (NULL: before this
revision, version 1) warns once with the command that re-indexes them (`flywheel ingest PATH`): their tokens may
not match the query's (version 2 folds traditional Chinese characters to simplified).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_retrieval_tokenizer"
down_revision = "0007_retrieval_halfvec"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ingested_files", sa.Column("tokenizer", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ingested_files") as batch:
        batch.drop_column("tokenizer")

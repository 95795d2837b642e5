"""retrieval: vectors stored per tenant (`embeddings.tenant` in the primary key); on PostgreSQL `embeddings` is
partitioned by tenant.

A tenant's vector search on PostgreSQL used to filter one HNSW graph of every tenant's vectors, so ef_search had
to grow with the tenant's share of the store (10x for a 10 % tenant). Partitioned by tenant, each tenant's search
walks a graph of its own. Each vector is now stored once for every tenant with a chunk of that text (the usual case
is one), and once under tenant '' if no chunk uses it (a re-ingest still reuses it). SQLite keeps the same table
shape (one schema), its searches join on the tenant too.

PostgreSQL: the old table is renamed, the partitioned one created, one partition attached per tenant
(flywheel.store.schema_retrieval.attach_partition, as at run time), the rows copied, the old table and its indexes
dropped, and one HNSW index per (model, dim) built again with the default m = 16, ef_construction = 128 (the
index flywheel.retrieval.index.postgres.PostgresIndex.on_new_vectors creates). On a big store this takes as long
as the first index build did.

Revision ID: 0016_retrieval_tenant_vectors
Branch: retrieval
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from flywheel.errors import UserError
from flywheel.store.db import sqlstate
from flywheel.store.schema_retrieval import attach_partition, hnsw_index_ddl, pgvector_version, vector_kind
from flywheel.store.url_display import display_url

revision = "0016_retrieval_tenant_vectors"
down_revision = "0009_retrieval_tokenizer"
branch_labels = None
depends_on = None

COLUMNS = "model, hash, tenant, dim, vector"
OWNED = ("SELECT e.model, e.hash, t.tenant, e.dim, e.vector FROM {old} e "
         "JOIN (SELECT DISTINCT embed_hash, tenant FROM chunks) t ON t.embed_hash = e.hash")
UNUSED = ("SELECT e.model, e.hash, '', e.dim, e.vector FROM {old} e "
          "WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.embed_hash = e.hash)")
LOCKS_PER_PARTITION = 6  # measured: the partition, its primary key, TOAST table and index, and the ATTACH



def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        op.execute("CREATE TABLE embeddings_new (model VARCHAR(200) NOT NULL, hash VARCHAR(32) NOT NULL, "
                   "tenant VARCHAR(100) NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL, "
                   "PRIMARY KEY (model, hash, tenant))")
        op.execute(f"INSERT INTO embeddings_new ({COLUMNS}) " + OWNED.format(old="embeddings"))
        op.execute(f"INSERT INTO embeddings_new ({COLUMNS}) " + UNUSED.format(old="embeddings"))
        op.execute("DROP TABLE embeddings")
        op.execute("ALTER TABLE embeddings_new RENAME TO embeddings")
        return
    pairs = bind.execute(sa.text("SELECT DISTINCT model, dim FROM embeddings")).all()
    op.execute("ALTER TABLE embeddings RENAME TO embeddings_old")
    op.execute("ALTER INDEX IF EXISTS embeddings_pkey RENAME TO embeddings_old_pkey")
    op.execute("CREATE TABLE embeddings (model VARCHAR(200) NOT NULL, hash VARCHAR(32) NOT NULL, "
               "tenant VARCHAR(100) NOT NULL, dim INTEGER NOT NULL, vector vector NOT NULL, "
               "PRIMARY KEY (model, hash, tenant)) PARTITION BY LIST (tenant)")
    tenants = [t for (t,) in bind.execute(sa.text(
        "SELECT DISTINCT c.tenant FROM chunks c WHERE EXISTS "
        "(SELECT 1 FROM embeddings_old e WHERE e.hash = c.embed_hash)"))]
    if bind.execute(sa.text(UNUSED.format(old="embeddings_old") + " LIMIT 1")).first() is not None:
        tenants.append("")
    slots = bind.execute(sa.text(  # the lock table's nominal size, read before it can fill up
        "SELECT current_setting('max_locks_per_transaction')::int, current_setting('max_connections')::int "
        "+ current_setting('max_prepared_transactions')::int")).one()
    try:
        _partition_and_copy(bind, tenants, pairs)
    except Exception as exc:
        if sqlstate(exc) != "53200":  # out of shared memory: lock table
            raise
        raise _out_of_locks(bind, len(tenants), len(pairs), *slots) from None


def _out_of_locks(bind: sa.Connection, n_tenants: int, n_pairs: int, per_tx: int, conns: int) -> UserError:
    """One transaction holds a lock on every partition it creates (and each partition's HNSW index) until it
    commits: thousands of tenants outgrow PostgreSQL's default lock table (64 × max_connections)."""
    need = n_tenants * (LOCKS_PER_PARTITION + n_pairs) + 64
    wanted = max(2 * per_tx, math.ceil(need / max(conns, 1)))
    suggest = 1 << (wanted - 1).bit_length()
    shown = display_url(bind.engine.url.render_as_string(hide_password=False))
    return UserError(
        f"cannot upgrade the PostgreSQL store {shown} to vectors per tenant (migration "
        f"0016_retrieval_tenant_vectors): its one transaction needs a lock on a new partition for each of "
        f"{n_tenants:,} tenants (about {need:,} locks) and the server's lock table is full "
        f"(max_locks_per_transaction = {per_tx} for {conns} connections); nothing was changed",
        hint=f"raise it (ALTER SYSTEM SET max_locks_per_transaction = {suggest}, or postgresql.conf), restart "
             "PostgreSQL, then open the store again; the setting can go back down after the upgrade")


def _partition_and_copy(bind: sa.Connection, tenants: list[str], pairs: Sequence[sa.Row]) -> None:
    for tenant in tenants:
        attach_partition(bind, tenant)
    op.execute(f"INSERT INTO embeddings ({COLUMNS}) " + OWNED.format(old="embeddings_old"))
    op.execute(f"INSERT INTO embeddings ({COLUMNS}) " + UNUSED.format(old="embeddings_old"))
    op.execute("DROP TABLE embeddings_old")  # and its HNSW indexes, whose names the new ones take
    version = pgvector_version(bind)
    for model, dim in pairs:
        kind = vector_kind(version, int(dim))
        if kind is not None:  # the retrieval defaults: the configured values are not known here
            op.execute(hnsw_index_ddl(model, int(dim), kind, m=16, ef_construction=128))


def downgrade() -> None:
    """Not supported: an older flywheel cannot read vectors stored per tenant (restore a backup instead)."""
    raise NotImplementedError("0016_retrieval_tenant_vectors cannot be downgraded")

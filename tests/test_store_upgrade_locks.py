"""Upgrading a PostgreSQL store with thousands of tenants to vectors per tenant (0016_retrieval_tenant_vectors):
the one migration transaction holds a lock on every partition it creates, so PostgreSQL's lock table (64 ×
max_connections by default) runs out ("out of shared memory"). That is one line naming the setting to raise and
by how much, not "cannot connect", and nothing is changed."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text
from store_revisions import embeddings_before_tenant_vectors

from flywheel.errors import UserError
from flywheel.retrieval.retriever import open_index
from flywheel.retrieval.synthetic import chunk_row
from flywheel.store import Store, schema_retrieval

pytestmark = pytest.mark.postgres


def _old_store(url: str) -> None:
    """A store as flywheel left it before 0016: two tenants' chunks, one vector each, no tenant on vectors."""
    store = Store.open(url)
    index = open_index(store)
    rows = [chunk_row(t, f"{t}.md", 0, f"text of {t}") for t in ("acme", "beta")]
    with index.transaction() as conn:
        index.insert_chunks(conn, rows)
    with store.engine.begin() as conn:
        embeddings_before_tenant_vectors(conn, rows=[
            {"model": "m", "hash": r["embed_hash"], "dim": 3, "vector": "[1,0,0]"} for r in rows])
    store.close()


def _locks_per_transaction(url: str) -> int:
    with Store.open(url, migrate_schema=False) as store, store.engine.connect() as conn:
        return int(conn.execute(text("SELECT current_setting('max_locks_per_transaction')::int")).scalar() or 0)


def _state(url: str) -> tuple[str, int]:
    store = Store.open(url, migrate_schema=False)
    try:
        with store.engine.connect() as conn:
            kind = conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'embeddings'")).scalar()
            return str(kind), int(conn.execute(text("SELECT count(*) FROM embeddings")).scalar() or 0)
    finally:
        store.close()


def test_running_out_of_lock_slots_while_partitioning_says_which_setting_to_raise(pg_fresh_url, monkeypatch):
    _old_store(pg_fresh_url)
    per_tx = _locks_per_transaction(pg_fresh_url)
    real = schema_retrieval.attach_partition
    calls: list[str] = []

    def attach(conn, tenant):  # the lock table fills up at the second partition (thousands, on a real store)
        calls.append(tenant)
        if len(calls) == 2:
            raise psycopg.errors.OutOfMemory("out of shared memory")
        real(conn, tenant)

    monkeypatch.setattr(schema_retrieval, "attach_partition", attach)
    with pytest.raises(UserError) as err:
        Store.open(pg_fresh_url)
    message = err.value.message
    assert "0016_retrieval_tenant_vectors" in message and "2 tenants" in message
    assert f"max_locks_per_transaction = {per_tx} for" in message and "nothing was changed" in message
    assert f"ALTER SYSTEM SET max_locks_per_transaction = {1 << (2 * per_tx - 1).bit_length()}," in (err.value.hint or "")
    assert _state(pg_fresh_url) == ("r", 2)  # rolled back: the old table, every vector

    monkeypatch.setattr(schema_retrieval, "attach_partition", real)
    # after the setting is raised: the upgrade goes through
    with Store.open(pg_fresh_url) as store, store.engine.connect() as conn:
        got = sorted(conn.execute(text("SELECT tenant FROM embeddings")).scalars())
    assert got == ["acme", "beta"]
    assert _state(pg_fresh_url) == ("p", 2)


def test_a_full_lock_table_in_any_migration_is_not_reported_as_a_connection_problem(pg_fresh_url, monkeypatch):
    from alembic import command
    from sqlalchemy import exc as sa_exc

    _old_store(pg_fresh_url)

    def upgrade(*_a, **_k):
        raise sa_exc.OperationalError("CREATE TABLE …", {}, psycopg.errors.OutOfMemory("out of shared memory"))

    monkeypatch.setattr(command, "upgrade", upgrade)
    with pytest.raises(UserError) as err:
        Store.open(pg_fresh_url)
    assert err.value.message.startswith("cannot migrate the PostgreSQL store")
    assert "out of shared memory" in err.value.message and "nothing was changed" in err.value.message
    assert "max_locks_per_transaction" in (err.value.hint or "")

"""Two processes writing the first vectors of two new tenants at once on PostgreSQL (two `flywheel ingest` or
`flywheel embed` runs, or one beside `flywheel serve`'s embed worker). Each write transaction inserted its
vectors, then ran `CREATE INDEX IF NOT EXISTS` for the model's HNSW index, which takes a SHARE lock on
`embeddings` (and every partition) even when the index exists: two transactions holding the ROW EXCLUSIVE lock
of their inserts each waited for the other's, and PostgreSQL killed one with "deadlock detected" (a traceback
from `flywheel embed`). Now the index is made (serialised by an advisory lock) before the insert, and only
when it does not exist yet."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from sqlalchemy import select, text

from flywheel.retrieval.retriever import open_index
from flywheel.store import Store
from flywheel.store.schema_retrieval import embeddings

pytestmark = pytest.mark.postgres
MODEL = "synthetic"


def _vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("index_exists", [True, False], ids=["index-exists", "fresh-store"])
def test_two_writers_first_vectors_of_two_new_tenants_both_commit(pg_fresh_url, index_exists):
    if index_exists:  # an earlier tenant's vectors: the HNSW index is there
        with Store.open(pg_fresh_url) as store:
            index = open_index(store)
            with index.transaction() as conn:
                index.put_embeddings(conn, MODEL, {"0" * 32: _vector(0)}, "earlier")
    stores = [Store.open(pg_fresh_url) for _ in range(2)]
    try:
        indexes = [open_index(s) for s in stores]
        both_there = threading.Barrier(2, timeout=20)
        for index in indexes:  # each writer reaches the index step, then both go on together
            original = index.on_new_vectors

            def meet(conn, model, dim, _original=original):
                both_there.wait()
                _original(conn, model, dim)

            index.on_new_vectors = meet  # type: ignore[method-assign]
        errors: list[BaseException] = []

        def write(k: int) -> None:
            try:
                with indexes[k].transaction() as conn:
                    indexes[k].put_embeddings(conn, MODEL, {str(k + 1) * 32: _vector(k + 1)}, f"new {k}")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with stores[0].engine.connect() as conn:
            tenants = {t for (t,) in conn.execute(select(embeddings.c.tenant))}
        assert {"new 0", "new 1"} <= tenants
    finally:
        for s in stores:
            s.close()


def test_a_vector_write_takes_no_share_lock_on_embeddings_once_the_index_exists(pg_fresh_url):
    """Other tenants' writes (ROW EXCLUSIVE) and partition attaches (SHARE UPDATE EXCLUSIVE) do not queue behind
    every process's first write transaction."""
    with Store.open(pg_fresh_url) as store:
        index = open_index(store)
        with index.transaction() as conn:
            index.put_embeddings(conn, MODEL, {"0" * 32: _vector(0)}, "earlier")
    with Store.open(pg_fresh_url) as store:
        index = open_index(store)  # a new process: it has not seen the index yet
        with index.transaction() as conn:
            index.put_embeddings(conn, MODEL, {"1" * 32: _vector(1)}, "later")
            modes = {m for (m,) in conn.execute(text(
                "SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() AND relation = 'embeddings'::regclass"))}
        assert "ShareLock" not in modes
        assert "RowExclusiveLock" in modes


def test_a_partition_attach_that_waits_too_long_is_one_clear_error(pg_fresh_url, monkeypatch):
    """A session holding a lock on `embeddings` (an index build, a migration, a LOCK TABLE) for longer than the
    attach waits: `flywheel ingest` / `embed` of a new tenant printed a LockNotAvailable traceback."""
    from flywheel.errors import UserError
    from flywheel.retrieval.index import postgres

    monkeypatch.setattr(postgres, "PARTITION_LOCK_TIMEOUT_S", 1)
    with Store.open(pg_fresh_url) as store:
        index = open_index(store)
        with store.engine.connect() as holder, holder.begin():
            holder.execute(text("LOCK TABLE embeddings IN SHARE MODE"))
            with pytest.raises(UserError) as caught:
                index.prepare_tenants(["new: 'one'"])
        assert "new: 'one'" in caught.value.message
        assert "flywheel embed" in (caught.value.hint or "")
        index.prepare_tenants(["new: 'one'"])  # once the lock is gone, it attaches
        with index.transaction() as conn:
            index.put_embeddings(conn, MODEL, {"1" * 32: _vector(1)}, "new: 'one'")


def test_embed_rebuilds_a_dropped_hnsw_index_even_with_nothing_to_embed(pg_fresh_url, tmp_path):
    """docs/retrieval.md: to rebuild with other `hnsw_m` / `hnsw_ef_construction`, DROP INDEX the model's index and
    run any ingest or `flywheel embed`. Both only created it when they wrote a new vector, so with nothing left to
    embed the store stayed without one (every search a sequential scan of the tenant's partition)."""
    from test_retrieval_embed import Hashing

    from flywheel.config import RetrievalConfig
    from flywheel.retrieval.embed import embed_pending
    from flywheel.retrieval.ingest import ingest

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("# Guide\n\nThe fallback model answers when the primary is down.\n")
    emb = Hashing()
    with Store.open(pg_fresh_url) as store:
        ingest([docs], store, RetrievalConfig(), embedder=emb, tenant="acme", root=tmp_path)
        index = open_index(store)
        name = index.hnsw_index_name(emb.name, 64)
        with store.engine.begin() as conn:
            conn.execute(text(f"DROP INDEX {name}"))
    with Store.open(pg_fresh_url) as store:  # the next run
        index = open_index(store)
        assert embed_pending(index, emb).chunks == 0
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar() is not None

"""The store on SQLite and PostgreSQL: open + migrate (idempotent, concurrent), the background writer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from flywheel.errors import UserError
from flywheel.store import Store, load_schemas, schema_diff
from flywheel.store.db import current_revisions, script_heads, script_revisions
from flywheel.store.schema import traces


def _count(store: Store, table=traces) -> int:
    with store.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(table))


def _row(i: int, prefix: str = "t") -> dict:
    return {"trace_id": f"{prefix}{i:06d}", "name": f"n{i}", "started_at": float(i)}


def _wait_for(pred, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def test_open_migrates_to_heads_idempotently(store_url):
    with Store.open(store_url) as store:
        assert current_revisions(store.engine) == script_heads()
        assert any(rev.split("_", 1)[1].startswith("tracing") for rev in script_revisions()[0])  # tracing branch
        assert schema_diff(store, ["traces", "spans"]) == []
        store.writer.submit("traces", _row(1))
        assert store.writer.flush()
    with Store.open(store_url) as again:  # second open: no migration, data kept
        assert current_revisions(again.engine) == script_heads()
        assert _count(again) == 1
        assert again.dialect in ("sqlite", "postgresql")


def test_concurrent_opens_of_a_fresh_store_migrate_once(store_url):
    def open_close(_: int) -> frozenset:
        with Store.open(store_url) as s:
            return current_revisions(s.engine)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(open_close, range(4)))
    assert all(r == script_heads() for r in results)


def test_postgres_url_is_mapped_to_psycopg3(pg_fresh_url):
    assert pg_fresh_url.startswith("postgresql://")
    with Store.open(pg_fresh_url) as store:
        assert store.dialect == "postgresql"
        assert store.url.startswith("postgresql+psycopg://")
        assert store.engine.dialect.driver == "psycopg"


def test_sqlite_runs_in_wal_mode_with_sane_pragmas(tmp_path):
    with Store.open(f"sqlite:///{tmp_path}/a/b/c.db") as store:  # parent folders are created
        assert (tmp_path / "a" / "b" / "c.db").exists()
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_memory_url_gives_a_private_temporary_store():
    store = Store.open("sqlite://")
    path = store.engine.url.database
    store.writer.submit("traces", _row(1))
    store.writer.flush()
    assert _count(store) == 1
    store.close()
    assert not os.path.exists(path)


def test_up_to_date_store_opens_without_importing_alembic(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    Store.open(url).close()
    code = ("import sys; from flywheel.store import Store; s = Store.open(sys.argv[1]); "
            "print('alembic' in sys.modules); s.close()")
    out = subprocess.run([sys.executable, "-c", code, url], check=False, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_every_schema_module_is_loaded():
    import pkgutil

    import flywheel.store as pkg

    load_schemas()
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("schema_"):
            assert f"flywheel.store.{info.name}" in sys.modules


# ------------------------------------------------------------------------------------------ errors


def test_unreachable_postgres_is_a_user_error_without_the_password():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError) as err:
        Store.open(f"postgresql://bob:hunter2secret@127.0.0.1:{port}/nope")
    text = err.value.render()
    assert "PostgreSQL" in text and "hint:" in text
    assert "hunter2secret" not in text


def test_unwritable_sqlite_path_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError) as err:
        Store.open(f"sqlite:///{blocker}/sub/db.sqlite")
    assert "hint:" in err.value.render()


@pytest.mark.parametrize("url", ["mysql://u@h/db", "", "not a url"])
def test_unsupported_urls_are_user_errors(url):
    with pytest.raises(UserError):
        Store.open(url)


# ------------------------------------------------------------------------------------------ writer


def test_writer_commits_full_batches_without_waiting(store_url):
    with Store.open(store_url, batch_rows=10, max_delay_s=30.0) as store:
        for i in range(25):
            store.writer.submit("traces", _row(i))
        # two full batches of 10 are committed at once; the last 5 wait for the (long) delay or a flush
        assert _wait_for(lambda: _count(store) == 20)
        time.sleep(0.3)
        assert _count(store) == 20
        assert store.writer.flush(timeout=10)
        assert _count(store) == 25


def test_writer_commits_a_partial_batch_after_the_delay(store_url):
    with Store.open(store_url, batch_rows=1000, max_delay_s=0.2) as store:
        t0 = time.monotonic()
        for i in range(3):
            store.writer.submit("traces", _row(i))
        assert _wait_for(lambda: _count(store) == 3, timeout=10)
        assert time.monotonic() - t0 < 5


def test_concurrent_submits_from_threads_are_all_written(store_url):
    with Store.open(store_url) as store:
        def work(t: int) -> None:
            for i in range(300):
                store.writer.submit("traces", _row(i, prefix=f"th{t}-"))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert store.writer.flush(timeout=30)
        assert _count(store) == 1800
        with store.engine.connect() as conn:
            assert conn.scalar(select(func.count(traces.c.trace_id.distinct()))) == 1800


def test_close_flushes_everything_queued(store_url):
    store = Store.open(store_url, batch_rows=50, max_delay_s=10.0)
    for i in range(420):
        store.writer.submit("traces", _row(i))
    store.close()
    assert store.writer.submit("traces", _row(999)) is False  # closed: refused, not silently queued
    with Store.open(store_url) as again:
        assert _count(again) == 420


def test_a_bad_row_costs_only_itself_and_the_writer_keeps_going(store_url):
    with Store.open(store_url) as store:
        store.writer.submit("traces", _row(1))
        store.writer.flush()
        for i in range(2, 6):
            store.writer.submit("traces", _row(i))
        store.writer.submit("traces", _row(1))  # duplicate primary key
        store.writer.submit("no_such_table", {"x": 1})
        store.writer.flush()
        assert store.writer.errors == 2
        assert _count(store) == 5
        store.writer.submit("traces", _row(7))
        assert store.writer.flush()
        assert _count(store) == 6


def test_registered_handlers_run_in_the_batch_transaction(store_url):
    seen_threads = []
    with Store.open(store_url) as store:
        def handler(conn, payloads):
            seen_threads.append(threading.current_thread().name)
            conn.execute(traces.insert(), [_row(p) for p in payloads])

        store.writer.register("test.rows", handler)
        for i in range(10):
            store.writer.put("test.rows", i)
        store.writer.flush()
        assert _count(store) == 10
    assert seen_threads and all(name == "flywheel-store-writer" for name in seen_threads)


def test_a_store_from_a_newer_flywheel_is_refused_with_a_hint(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    with Store.open(url) as store, store.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO alembic_version (version_num) VALUES ('9999_from_the_future')")
    with pytest.raises(UserError) as err:
        Store.open(url)
    assert "newer flywheel" in err.value.render() and "9999_from_the_future" in err.value.render()


# ------------------------------------------------------------------------------------------ service fixtures


def test_postgres_fixture_has_a_working_pgvector(pg_url):
    from sqlalchemy import create_engine

    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            dist = conn.exec_driver_sql("SELECT '[1,2,3]'::vector <-> '[1,2,5]'::vector").scalar()
    finally:
        engine.dispose()
    assert dist == pytest.approx(2.0)


def test_redis_fixture_serves_a_real_redis(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.set("flywheel-test:key", "value", ex=30)
        assert client.get("flywheel-test:key") == b"value"
        assert client.config_get("appendonly")["appendonly"] == "no"
    finally:
        client.close()


def test_write_first_transaction_holds_sqlites_write_lock_from_begin(tmp_path):
    """A read-then-write transaction (rate-limit admission) takes the write lock at BEGIN: a writer that commits
    between its read and its write can no longer make it fail with "database is locked"."""
    import sqlite3

    from sqlalchemy import text


    store = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    other = sqlite3.connect(tmp_path / "w.db", timeout=0, isolation_level=None)
    try:
        with store.begin(write_first=True) as conn:
            conn.execute(text("SELECT 1"))
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        with store.begin() as conn:  # a plain transaction takes no write lock for a read
            conn.execute(text("SELECT 1"))
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
    finally:
        other.close()
        store.close()

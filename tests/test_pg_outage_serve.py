"""PostgreSQL lost under a running `flywheel serve` (stopped, restarting, refusing connections): requests fail
clearly, 503 `store_unavailable` naming the cause, not a 500 "internal error" with a traceback per request, and
the same server answers again once the database is back. Services are real (tests/services_fixtures.py):
the outage is the database refusing new connections while its sessions are terminated, as during a restart."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from sqlalchemy import exc as sa_exc

from flywheel.store.outage import store_outage

pytestmark = pytest.mark.postgres

YAML = """
store: {url}
models:
  gpt: {{provider: openai_compat, base_url: "{base}", model: fake-model, max_retries: 0}}
cache: {{exact: false}}
apps:
  support: {{kind: chat, model: gpt}}
"""


def _database(url: str) -> str:
    from sqlalchemy.engine import make_url

    return str(make_url(url).database)


def _cut(pg_server, name: str, on: bool) -> None:
    pg_server.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {'true' if on else 'false'}")
    if not on:
        pg_server.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' "
                          "AND pid <> pg_backend_pid()")


def test_lost_postgres_is_a_clear_503_then_the_server_recovers(tmp_path: Path, pg_server, pg_fresh_url, server):
    from server_support import serving

    server.reset()
    name = _database(pg_fresh_url)
    pg_server.execute("CREATE EXTENSION IF NOT EXISTS vector", database=name)
    with serving(tmp_path, YAML.format(url=pg_fresh_url, base=server.base_url)) as live:
        ok = httpx.post(f"{live.url}/v1/chat/completions", timeout=30,
                        json={"model": "app:support", "messages": [{"role": "user", "content": "hi"}]})
        assert ok.status_code == 200, ok.text
        trace_id = ok.headers["x-flywheel-trace-id"]
        _cut(pg_server, name, on=False)
        try:
            for method, path, body in [("GET", "/v1/review/queues", None),
                                       ("POST", "/v1/feedback", {"trace_id": trace_id, "name": "thumbs",
                                                                 "value": "up"}),
                                       ("GET", "/ui/traces.json", None)]:
                r = httpx.request(method, live.url + path, json=body, timeout=30)
                assert r.status_code == 503, (path, r.status_code, r.text)
                error = r.json()["error"]
                assert error["code"] == "store_unavailable", r.text
                assert "store is unavailable" in error["message"] and "accepting connections" in error["message"]
        finally:
            _cut(pg_server, name, on=True)
        assert live.state.store.writer.flush(60)
        again = httpx.post(f"{live.url}/v1/feedback", timeout=30,
                           json={"trace_id": trace_id, "name": "thumbs", "value": "up"})
        assert again.status_code == 201, again.text
        assert httpx.get(f"{live.url}/v1/review/queues", timeout=30).status_code == 200


def test_the_writer_holds_a_batch_while_postgres_is_lost_and_writes_it_once_back(pg_server, pg_fresh_url):
    from sqlalchemy import func, select

    from flywheel.store import Store
    from flywheel.store.schema_feedback import feedback

    name = _database(pg_fresh_url)
    pg_server.execute("CREATE EXTENSION IF NOT EXISTS vector", database=name)
    with Store.open(pg_fresh_url) as store:
        _cut(pg_server, name, on=False)
        try:
            store.writer.submit(feedback, {"trace_id": "a" * 32, "source": "user", "name": "thumbs",
                                           "value": "up", "created_at": 1.0})
            assert not store.writer.flush(1.0)  # held, not dropped: the store cannot be reached
        finally:
            _cut(pg_server, name, on=True)
        assert store.writer.flush(60)
        with store.connect() as conn:
            assert conn.execute(select(func.count()).select_from(feedback)).scalar() == 1
        assert store.writer.errors == 0 and not store.writer.drops


def test_closing_the_writer_during_an_outage_drops_and_counts_instead_of_waiting(pg_server, pg_fresh_url):
    import threading

    from flywheel.store import Store
    from flywheel.store.schema_feedback import feedback

    name = _database(pg_fresh_url)
    pg_server.execute("CREATE EXTENSION IF NOT EXISTS vector", database=name)
    store = Store.open(pg_fresh_url)
    store.writer.OUTAGE_RETRY_S = 3600.0
    _cut(pg_server, name, on=False)
    try:
        store.writer.submit(feedback, {"trace_id": "b" * 32, "source": "user", "name": "thumbs", "value": "up",
                                       "created_at": 1.0})
        assert not store.writer.flush(1.0)  # the batch is held
        closer = threading.Thread(target=store.writer.close, kwargs={"timeout": 60})
        closer.start()
        closer.join(120)  # a bound far below the hour it would otherwise hold the batch for
        assert not closer.is_alive(), "closing waited for the store instead of dropping the held batch"
        assert store.writer.drops == {"table:feedback": 1}
    finally:
        _cut(pg_server, name, on=True)
        store.engine.dispose()


def test_a_long_outage_is_waited_out_once_then_batches_are_dropped_and_counted(pg_server, pg_fresh_url, caplog):
    import logging

    from sqlalchemy import func, select

    from flywheel.store import Store
    from flywheel.store.schema_feedback import feedback

    name = _database(pg_fresh_url)
    pg_server.execute("CREATE EXTENSION IF NOT EXISTS vector", database=name)
    row = {"source": "user", "name": "thumbs", "value": "up", "created_at": 1.0}
    with Store.open(pg_fresh_url) as store, caplog.at_level(logging.WARNING, logger="flywheel.store.writer"):
        store.writer.OUTAGE_RETRY_S = 0.5
        _cut(pg_server, name, on=False)
        try:
            for i in range(3):
                store.writer.submit(feedback, {**row, "trace_id": f"{i}" * 32})
                assert store.writer.flush(60)
        finally:
            _cut(pg_server, name, on=True)
        store.writer.submit(feedback, {**row, "trace_id": "f" * 32})
        assert store.writer.flush(60)
        with store.connect() as conn:
            assert conn.execute(select(func.count()).select_from(feedback)).scalar() == 1
            drops = store.table("writer_drops")
            recorded = conn.execute(select(drops.c.kind, drops.c.reason, func.sum(drops.c.count))
                                    .group_by(drops.c.kind, drops.c.reason)).all()
        assert [tuple(r) for r in recorded] == [("table:feedback", "store_unavailable", 3)]
        assert store.writer.drops == {"table:feedback": 3} and store.writer.errors == 0
    held = [r for r in caplog.records if "holding" in r.getMessage()]
    dropping = [r for r in caplog.records if "dropping what cannot be written" in r.getMessage()]
    assert len(held) == 1 and len(dropping) == 1  # one window and one error line per outage, not per batch
    assert not [r for r in caplog.records if r.exc_info and "dropped one" in r.getMessage()]


def test_store_outage_tells_a_lost_connection_from_other_database_errors(tmp_path: Path):
    from sqlalchemy import create_engine, text

    gone = create_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    with pytest.raises(sa_exc.OperationalError) as lost:
        gone.connect()
    assert store_outage(lost.value) == "unable to open database file"
    wrapped = RuntimeError("the app failed")
    wrapped.__cause__ = lost.value
    assert store_outage(wrapped) == "unable to open database file"
    here = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with here.connect() as conn, pytest.raises(sa_exc.OperationalError) as bad_sql:
        conn.execute(text("SELECT * FROM no_such_table"))
    assert store_outage(bad_sql.value) is None
    assert store_outage(ValueError("connection refused")) is None
    assert os.path.exists(tmp_path / "x.db")

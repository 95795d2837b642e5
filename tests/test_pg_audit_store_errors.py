"""Store URLs a user gets wrong when moving to PostgreSQL: a port that is not a number, and a role that may connect
but not use the tables another role created. Each is one line and exit 2, without the password and without a
traceback. Services are real: PostgreSQL from pgserver (tests/services_fixtures.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import insert
from sqlalchemy.engine import make_url

import flywheel.cli.store  # noqa: F401 - registers `flywheel store`
from flywheel.cli import main
from flywheel.errors import UserError
from flywheel.store import Store
from flywheel.store.db import normalize_url
from flywheel.store.schema_feedback import feedback

SECRET = "pw-Audit-93x"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://fly:{SECRET}@db.example:54x2/flywheel",
        f"postgres://fly:{SECRET}@db.example:5432:1/flywheel",
        f"postgresql://fly:a/{SECRET}@db.example:5x/flywheel",
    ],
)
def test_a_port_that_is_not_a_number_is_a_user_error_without_the_password(url):
    with pytest.raises(UserError) as err:
        normalize_url(url)
    assert "port" in str(err.value) and "fly:***@db.example" in str(err.value)
    assert SECRET not in str(err.value) and SECRET not in (err.value.hint or "")


def test_store_copy_with_a_bad_port_exits_2_without_traceback(tmp_path: Path):
    src = f"sqlite:///{tmp_path / 'src.db'}"
    with Store.open(src) as store, store.begin() as conn:
        conn.execute(insert(feedback).values(trace_id="0" * 32, source="user", name="thumbs", created_at=1.0))
    result = CliRunner().invoke(main, ["store", "copy", src, f"postgresql://fly:{SECRET}@db:5x/flywheel"])
    assert result.exit_code == 2, result.output
    assert "port is not a number" in result.output and SECRET not in result.output
    assert "Traceback" not in result.output


@pytest.fixture
def foreign_role_url(pg_server) -> str:
    """A store migrated by the superuser, and the URL of a plain role (no grants) on the same database."""
    name = f"pgaudit{os.getpid()}"
    pg_server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    pg_server.execute(f"DROP ROLE IF EXISTS {name}")
    pg_server.execute(f"CREATE DATABASE {name}")
    pg_server.execute("CREATE EXTENSION IF NOT EXISTS vector", database=name)
    Store.open(pg_server.url(name)).close()
    pg_server.execute(f"CREATE ROLE {name} LOGIN NOSUPERUSER")
    # the local socket trusts every user: the password is ignored, but it is what must never be printed
    return (
        make_url(pg_server.url(name))
        .set(username=name, password=SECRET)
        .render_as_string(hide_password=False)
    )


@pytest.mark.postgres
def test_a_role_without_privileges_on_the_tables_is_one_line(foreign_role_url):
    with pytest.raises(UserError) as err:
        Store.open(foreign_role_url)
    message = str(err.value)
    assert "may not use the store" in message and "permission denied" in message
    assert "GRANT" in (err.value.hint or "")
    assert SECRET not in message and "postgresql+psycopg" not in message


@pytest.mark.postgres
def test_cli_with_a_role_without_privileges_exits_2(foreign_role_url, tmp_path: Path):
    (tmp_path / "flywheel.yaml").write_text(f'store: "{foreign_role_url}"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "search", "hello"])
    assert result.exit_code == 2, result.output
    assert "may not use the store" in result.output and SECRET not in result.output
    assert "Traceback" not in result.output


def test_a_url_without_a_scheme_is_refused_without_the_password():
    with pytest.raises(UserError) as err:
        normalize_url(f"fly:{SECRET}@db.example/flywheel")
    assert "cannot parse store URL" in str(err.value) and SECRET not in str(err.value)

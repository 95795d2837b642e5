"""sql_qa on SQLite: a query that makes a huge value (`SELECT randomblob(1000000000)`, which a question can ask
for) is refused by the database instead of filling memory, each cell shown to the answering model is cut, and a
`tables:` entry that is not a table of the database is a config error (it used to leave the schema empty)."""

from __future__ import annotations

import sqlite3

import pytest

from flywheel.workflows.sql_db import SqlDatabase, rows_text


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "notes.db"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
                       "INSERT INTO notes VALUES (1, 'short'), (2, printf('%.5000c', 'x'));")
    conn.commit()
    conn.close()
    return SqlDatabase(f"sqlite:///{path}")


def test_a_huge_value_is_refused_by_the_database(db):
    with pytest.raises(sqlite3.DataError, match="too big"):
        db.query("SELECT randomblob(1000000000)")
    assert db.query("SELECT length(randomblob(1000)) AS n")["rows"] == [[1000]]


def test_each_cell_shown_to_the_model_is_cut(db):
    from flywheel.workflows.sql_db import MAX_CELL_CHARS

    text = rows_text(db.query("SELECT id, body FROM notes ORDER BY id"))
    lines = text.splitlines()
    assert lines[:2] == ["id | body", "1 | short"]
    assert lines[2] == f"2 | {'x' * MAX_CELL_CHARS}… (5000 characters)"


def test_an_unknown_table_in_options_is_named_with_its_line(tmp_path):
    from flywheel.apps.runtime import Runtime
    from flywheel.config import Project
    from flywheel.errors import UserError

    conn = sqlite3.connect(tmp_path / "shop.db")
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    conn.close()
    (tmp_path / "flywheel.yaml").write_text(
        "models:\n"
        "  gpt: {provider: openai_compat, base_url: 'http://127.0.0.1:9/v1', model: fake}\n"
        "apps:\n"
        "  shop:\n"
        "    kind: sql_qa\n"
        "    model: gpt\n"
        "    options:\n"
        "      database: shop.db\n"
        "      tables: [ordrs]\n")
    with Runtime(Project.load(tmp_path)) as rt, pytest.raises(UserError) as info:
        rt.app("shop")
    assert info.value.where == f"{tmp_path / 'flywheel.yaml'}:9"
    assert "unknown table 'ordrs' — did you mean 'orders'?" in info.value.message

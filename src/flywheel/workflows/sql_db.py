"""A SQL database opened read-only, for the `sql_qa` workflow: its schema as text, and SELECT queries.

Three locks, any one of which stops a write: `read_only_problem` lets only one SELECT / WITH statement through;
SQLite is opened `file:…?mode=ro` with `PRAGMA query_only` and an authorizer that denies everything but reads;
PostgreSQL runs the query in a READ ONLY transaction that is rolled back. What a query may read (`tables:`, and
on PostgreSQL which functions it may call) is the database's own check too: SQLite's authorizer, PostgreSQL's
parse tree of the query before it runs (sql_pg_check.py).
"""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flywheel.config.yaml_io import anchored
from flywheel.errors import UserError

# Verbs that write or change state wherever they appear (functions such as replace() stay allowed; the read-only
# connection is the lock that does not depend on this list).
_WRITES = re.compile(
    r"\b(insert|update|delete|drop|alter|create|truncate|attach|detach|pragma|vacuum|grant|revoke|merge|into"
    r"|reindex|load_extension|upsert)\b", re.IGNORECASE)
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_STRINGS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\$\$.*?\$\$", re.DOTALL)
_FENCE = re.compile(r"```(?:sql|SQL)?\s*\n?(.*?)```", re.DOTALL)
# A query such as `SELECT randomblob(1000000000)` must not fill memory or the answering prompt: SQLite refuses
# values longer than MAX_VALUE_BYTES ("string or blob too big"), and each cell shown to the model is cut.
MAX_VALUE_BYTES = 10_000_000
MAX_CELL_CHARS = 1000


def extract_sql(text: str) -> str:
    """The SQL in a model's answer: the first ``` fence, else the whole text; trailing `;` and space removed."""
    m = _FENCE.search(text or "")
    sql = (m.group(1) if m else text or "").strip()
    return sql.rstrip().rstrip(";").strip()


def read_only_problem(sql: str) -> str | None:
    """Why `sql` is not a single read-only SELECT / WITH statement, or None when it is."""
    body = _STRINGS.sub("''", _COMMENT.sub(" ", sql or "")).strip()
    body = body.rstrip().rstrip(";").strip()
    if not body:
        return "there is no SQL statement"
    if ";" in body:
        return "only one statement is allowed (found `;` between statements)"
    first = re.match(r"[\s(]*([A-Za-z]+)", body)
    if first is None or first.group(1).lower() not in ("select", "with"):
        return f"only SELECT or WITH queries are allowed, not {first.group(1).upper() if first else 'this'}"
    bad = _WRITES.search(body)
    if bad:
        return f"`{bad.group(1).upper()}` is not allowed in a read-only query"
    return None


class SqlDatabase:
    """`sqlite:///path.db` (or a plain path) or `postgresql://…`, only ever read."""

    def __init__(self, url: str, *, root: Path | None = None, timeout_s: float = 10.0, tables: list[str] | None = None):
        self.timeout_s, self.tables = timeout_s, tables
        self._views: dict[str, set[str]] | None = None  # SQLite: listed view → the tables it reads
        if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            self.kind, self.url = "postgresql", url.replace("postgresql+psycopg://", "postgresql://")
            self.path: Path | None = None
        else:
            raw = url.split(":///", 1)[1] if url.startswith("sqlite:") else url
            path = anchored(raw, root)  # relative to the project; `~` is the home folder
            if not path.is_file():
                raise UserError(f"database {path} does not exist", hint="set `database:` to a SQLite file or a "
                                "postgresql:// URL in the app's options")
            self.kind, self.url, self.path = "sqlite", f"sqlite:///{path}", path

    @property
    def shown(self) -> str:
        """The URL with any password hidden."""
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", self.url)

    # ------------------------------------------------------------------ schema
    def schema_text(self) -> str:
        return self._sqlite_schema() if self.kind == "sqlite" else self._pg_schema()

    def _sqlite_schema(self) -> str:
        with self._sqlite() as conn:
            rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'view') "
                                "AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()
        return "\n".join(f"{sql};" for name, sql in rows if sql and (self.tables is None or name in self.tables))

    def table_names(self) -> list[str]:
        """The SQLite file's tables and views (PostgreSQL: not listed, [] — checking would need a connection)."""
        if self.kind != "sqlite":
            return []
        with self._sqlite() as conn:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                                "AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()
        return [name for (name,) in rows]

    def _pg_schema(self) -> str:
        sql = ("SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
               "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
               "ORDER BY table_schema, table_name, ordinal_position")
        tables: dict[str, list[str]] = {}
        (_, rows), shown = self._pg_query(sql, 100_000, inspect=False)
        for schema, table, column, kind in rows:
            if shown is None or (schema, table) in shown:
                name = table if schema == "public" else f"{schema}.{table}"
                tables.setdefault(name, []).append(f"{column} {kind}")
        return "\n".join(f"CREATE TABLE {t} ({', '.join(cols)});" for t, cols in tables.items())

    # ------------------------------------------------------------------ queries
    def query(self, sql: str, *, max_rows: int = 50, checked: bool = True) -> dict[str, Any]:
        """{columns, rows, truncated} of one read-only query; UserError when it is not one, or (PostgreSQL)
        when it reads outside `tables:` or calls a function that may (sql_pg_check.py). `checked=False`:
        flywheel's own statements, and tests of what the database itself refuses."""
        if checked:
            problem = read_only_problem(sql)
            if problem is not None:
                raise UserError(f"refused SQL: {problem}", hint="ask a question the database can answer by reading")
        if self.kind == "sqlite":
            with self._sqlite(restrict=True) as conn:
                if self.tables is not None:
                    _refuse_shadowing(sql, self._view_reads(conn))
                cur = conn.execute(sql)
                rows = cur.fetchmany(max_rows + 1)
                columns = [d[0] for d in cur.description or []]
        else:
            (columns, rows), _ = self._pg_query(sql, max_rows, inspect=checked)
        return {"columns": columns, "rows": [list(r) for r in rows[:max_rows]], "truncated": len(rows) > max_rows}

    def _sqlite(self, restrict: bool = False) -> Any:
        assert self.path is not None
        conn = sqlite3.connect(f"file:{quote(str(self.path))}?mode=ro", uri=True, timeout=self.timeout_s,
                               check_same_thread=False)
        conn.execute("PRAGMA query_only = ON")
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        # the model's query reads only `tables:`; flywheel's own schema reads (sqlite_master) are not restricted
        conn.set_authorizer(_tables_authorizer(set(self.tables), self._view_reads(conn))
                            if restrict and self.tables is not None else _read_only_authorizer)
        deadline = time.monotonic() + self.timeout_s
        conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
        return _Closing(conn)

    def _view_reads(self, conn: sqlite3.Connection) -> dict[str, set[str]]:
        """Listed view (lower case) → the tables it reads, found by SQLite compiling `SELECT * FROM view` once."""
        if self._views is None:
            self._views = {}
            names = {n.lower(): n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'")}
            for listed in self.tables or []:
                if listed.lower() not in names:
                    continue
                read: set[str] = set()
                vias = {listed.lower()}

                def record(action: int, table: str | None, _c: Any, _d: Any, via: str | None,
                           read: set[str] = read, vias: set[str] = vias) -> int:
                    if action == sqlite3.SQLITE_READ and table:
                        read.add(table)
                        if via:
                            vias.add(via.lower())  # a view the listed one reads reads for it
                    return sqlite3.SQLITE_OK
                conn.set_authorizer(record)
                quoted = names[listed.lower()].replace('"', '""')
                conn.execute(f'SELECT * FROM "{quoted}" LIMIT 0').fetchall()
                for via in vias:
                    self._views[via] = self._views.get(via, set()) | read
            conn.set_authorizer(None)
        return self._views

    def _pg_query(self, sql: str, max_rows: int, *, inspect: bool
                  ) -> tuple[tuple[list[str], list[Any]], set[tuple[str, str]] | None]:
        """((columns, rows), the (schema, table) pairs `tables:` names, or None without `tables:`). `inspect`:
        the query is the model's, checked against `tables:` and the function rules before it runs."""
        try:
            import psycopg
        except ImportError:
            raise UserError("sql_qa over PostgreSQL needs psycopg", hint="pip install -e '.[postgres]'") from None
        from flywheel.workflows.sql_pg_check import allowed_relations, check_query

        with psycopg.connect(self.url, connect_timeout=max(1, int(self.timeout_s))) as conn:
            conn.read_only = True  # every transaction of this connection is READ ONLY
            try:
                with conn.cursor() as cur:
                    cur.execute(f"SET LOCAL statement_timeout = {int(self.timeout_s * 1000)}")
                    shown = None
                    if inspect:
                        check_query(conn, sql, self.tables)
                    elif self.tables is not None:
                        shown = set(allowed_relations(conn, self.tables).values())
                    cur.execute(sql)  # type: ignore[arg-type]
                    columns = [d.name for d in cur.description or []]
                    rows = cur.fetchmany(max_rows + 1)
            finally:
                conn.rollback()
        return (columns, rows), shown


_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
            getattr(sqlite3, "SQLITE_RECURSIVE", 33)}


def _read_only_authorizer(action: int, *args: Any) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED else sqlite3.SQLITE_DENY


def _tables_authorizer(tables: set[str], views: dict[str, set[str]]) -> Any:
    """Reads only, and only of `tables:`: a query naming a table the prompt never showed is denied like a write.
    A listed view may read the tables it reads itself. SQLite names a WITH query like a view (`via`), so `via`
    alone is not trusted: `WITH orders AS (SELECT * FROM staff_salaries)` must not pass as the listed `orders`."""
    def authorize(action: int, table: str | None, _column: str | None, db: str | None, via: str | None) -> int:
        if action == sqlite3.SQLITE_READ and table not in tables:
            through_view = via is not None and table in views.get(via.lower(), ())
            if db is not None and not through_view:  # db None: a recursive WITH query reading its own rows
                return sqlite3.SQLITE_DENY
        return _read_only_authorizer(action)
    return authorize


_IDENT = r'"(?:[^"]|"")+"|\[[^\]]+\]|`(?:[^`]|``)+`|[^\W\d][\w$]*'
_WITH_NAME = re.compile(rf"(?:\bwith(?:\s+recursive)?|,)\s*({_IDENT})\s*(?:\([^()]*\)\s*)?as\s*(?:not\s+)?"
                        r"(?:materialized\s*)?\(", re.IGNORECASE)


def _refuse_shadowing(sql: str, views: dict[str, set[str]]) -> None:
    """A WITH query named like a listed view would read that view's tables as the view never does (every row
    and column): refused before it runs."""
    body = re.sub(r"'(?:[^']|'')*'", "''", _COMMENT.sub(" ", sql))
    for m in _WITH_NAME.finditer(body):
        name = m.group(1)
        if name[0] in "\"[`":
            name = name[1:-1].replace(name[0] * 2, name[0]) if name[0] != "[" else name[1:-1]
        if name.lower() in views:
            raise UserError(f"refused SQL: the WITH query `{name}` has the name of the view {name}",
                            hint="give the WITH query another name")


class _Closing:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def rows_text(result: dict[str, Any]) -> str:
    """Rows as a small pipe table (what the answering model and the Answer's source show)."""
    cols = result.get("columns") or []
    lines = [" | ".join(map(str, cols))] if cols else []
    lines += [" | ".join(_cell(v) for v in row) for row in result.get("rows") or []]
    if result.get("truncated"):
        lines.append(f"… (only the first {len(result.get('rows') or [])} rows)")
    return "\n".join(lines) if lines else "(no rows)"


def _cell(value: Any) -> str:
    text = "NULL" if value is None else str(value)
    return text if len(text) <= MAX_CELL_CHARS else f"{text[:MAX_CELL_CHARS]}… ({len(text)} characters)"

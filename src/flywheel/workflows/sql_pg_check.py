"""What a model-written query may touch on PostgreSQL, checked by PostgreSQL's own parser before the query runs
(SQLite's equivalent is its authorizer, sql_db.py).

In the query's READ ONLY transaction, `debug_print_parse` with `client_min_messages = log` makes the server send
the analysed query tree to this client when the statement is Parsed (the extended protocol's Parse message:
parsed, names resolved, neither planned nor run). The tree names every relation the query reads by OID — in
sub-queries and CTEs too, schema-qualified or quoted names already resolved, a view as the view (its own tables
are read with its owner's rights, as on SQLite) — and every function it calls (FUNCEXPR, aggregates, window
functions, the function behind each operator) by OID. Nothing the SQL text says can hide one: user text in the
tree (aliases, column names) is escaped, and string constants are printed as bytes, so it can only add
tokens, which makes the check stricter.

The rules (a refusal names the one broken, in words the model can act on):
- one plain SELECT: no utility statement (EXPLAIN, COPY, SHOW, DO …) and no data-modifying CTE;
- with `tables:`, every relation read is one of them (each resolved as PostgreSQL resolves a name in a query:
  `orders` by the search path, `hr.orders`, `"Orders"`); without, any relation but the system catalogs
  (pg_catalog, information_schema);
- every function is a built-in one (schema pg_catalog), not SECURITY DEFINER, not volatile (random(),
  clock_timestamp(), timeofday(), gen_random_uuid() excepted: they read nothing), and not one that reads what
  this check cannot see: a table named in a string or a query in a string (table_to_xml, query_to_xml), server
  settings and files (current_setting, pg_read_file, pg_ls_dir, lo_import), other sessions and catalog
  definitions (pg_stat_*, pg_get_*, obj_description). dblink and other extensions' functions are not built in.
"""

from __future__ import annotations

import re
from typing import Any

from flywheel.errors import UserError

_RELID = re.compile(r":relid\s+(\d+)")
_FUNCTION = re.compile(r":(?:funcid|aggfnoid|winfnoid)\s+(\d+)")
_OPERATOR = re.compile(r":opno\s+(\d+)")
_OPERATORS = re.compile(r":opnos\s+\(o((?:\s+\d+)*)\s*\)")  # RowCompareExpr: (o 96 97)
_COMMAND = re.compile(r":commandType\s+(\d+)")
_UTILITY = re.compile(r":utilityStmt\s+\{")
_MODIFYING_CTE = re.compile(r":hasModifyingCTE\s+true")
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
VOLATILE_ALLOWED = frozenset({"random", "random_normal", "clock_timestamp", "timeofday", "gen_random_uuid"})
DENIED_FUNCTIONS = frozenset({
    "current_setting", "pg_show_all_settings", "pg_settings_get_flags", "pg_config", "pg_cursor",
    "pg_prepared_statement", "obj_description", "col_description", "shobj_description", "ts_debug", "ts_stat",
    "table_to_xml", "table_to_xmlschema", "table_to_xml_and_xmlschema", "query_to_xml", "query_to_xmlschema",
    "query_to_xml_and_xmlschema", "cursor_to_xml", "cursor_to_xmlschema", "schema_to_xml", "schema_to_xmlschema",
    "schema_to_xml_and_xmlschema", "database_to_xml", "database_to_xmlschema", "database_to_xml_and_xmlschema",
    "pg_relation_filepath", "pg_relation_filenode", "pg_filenode_relation", "pg_identify_object",
    "pg_identify_object_as_address", "set_config"})
DENIED_PREFIXES = ("pg_get_", "pg_stat_", "pg_ls_", "pg_read_", "pg_file", "lo_", "dblink")
_SELECT = "1"  # CmdType CMD_SELECT


def check_query(conn: Any, sql: str, tables: list[str] | None) -> None:
    """Raise UserError when the query `sql` reads a relation outside `tables` (None: any but the system
    catalogs) or calls a function outside the rules above, and the database's own error (a syntax error, an
    unknown table) when PostgreSQL cannot parse it. `conn`: a psycopg connection inside the query's READ ONLY
    transaction."""
    if "\x00" in sql:
        raise UserError("refused SQL: it contains a NUL character", hint="write the query as plain text")
    trees = _parse_trees(conn, sql)
    if not trees:  # fail closed: without the tree nothing is known about what the query reads
        raise UserError("refused SQL: PostgreSQL did not show how it parses the query (debug_print_parse), so "
                        "what it reads cannot be checked", hint="use a PostgreSQL server that lets any user "
                        "`SET debug_print_parse` (the default)")
    text = "\n".join(trees)
    if set(_COMMAND.findall(text)) != {_SELECT} or _UTILITY.search(text) or _MODIFYING_CTE.search(text):
        raise UserError("refused SQL: only one plain SELECT is allowed (no EXPLAIN, COPY, SHOW, DO or "
                        "data-modifying WITH)", hint="write a single SELECT query")
    relids = _oids(_RELID, text)
    relations = _rows(conn, "SELECT c.oid, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
                            "ON n.oid = c.relnamespace WHERE c.oid = ANY(%s)", relids)
    allowed = allowed_relations(conn, tables) if tables is not None else {}
    for oid in relids:
        schema, name = relations.get(oid, ("?", f"relation {oid}"))
        shown = name if schema == "public" else f"{schema}.{name}"
        if tables is not None and oid not in allowed:
            raise UserError(f"refused SQL: access to {shown} is prohibited: it is not one of the app's tables "
                            f"({', '.join(tables) or 'none'})", hint="query only the tables shown in the schema")
        if tables is None and schema in SYSTEM_SCHEMAS:
            raise UserError(f"refused SQL: access to {shown} is prohibited: it is a system catalog",
                            hint="query the database's own tables")
    funcids = _oids(_FUNCTION, text)
    opnos = sorted({int(o) for group in _OPERATORS.findall(text) for o in group.split()} | set(_oids(_OPERATOR, text)))
    functions = _rows(conn, "SELECT p.oid, n.nspname, p.proname, p.provolatile, p.prosecdef FROM pg_proc p "
                            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = ANY(%s)", funcids)
    behind = _rows(conn, "SELECT o.oid, n.nspname, p.proname, p.provolatile, p.prosecdef FROM pg_operator o "
                         "JOIN pg_proc p ON p.oid = o.oprcode JOIN pg_namespace n ON n.oid = p.pronamespace "
                         "WHERE o.oid = ANY(%s)", opnos)
    for what, oid, row in [*(("", f, functions.get(f)) for f in funcids),
                           *((" (an operator's)", o, behind.get(o)) for o in opnos)]:
        schema, name, volatility, definer = row or ("?", f"function {oid}", "v", False)
        why = function_problem(schema, name, volatility, definer)
        if why:
            raise UserError(f"refused SQL: {name}(){what} is not allowed: {why}",
                            hint="use only PostgreSQL's built-in functions that compute from the row values")


def function_problem(schema: str, name: str, volatility: str, definer: bool) -> str | None:
    if schema != "pg_catalog":
        return f"it is not a built-in function (schema {schema})"
    if definer:
        return "it runs with another user's rights (SECURITY DEFINER)"
    if name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES):
        return "it reads what the query's tables do not hold (server files or settings, other tables, catalogs)"
    if volatility == "v" and name not in VOLATILE_ALLOWED:
        return "it is volatile (it may change state or read outside the query's tables)"
    return None


def allowed_relations(conn: Any, tables: list[str]) -> dict[int, tuple[str, str]]:
    """{oid: (schema, name)} of the `tables:` entries that name a relation, each resolved as a query resolves
    it (search path, schema qualification, quoting); entries naming nothing are left out."""
    import psycopg

    try:
        rows = conn.execute("SELECT c.oid, n.nspname, c.relname FROM unnest(%s::text[]) AS t(name) "
                            "JOIN pg_class c ON c.oid = to_regclass(t.name) "
                            "JOIN pg_namespace n ON n.oid = c.relnamespace", [list(tables)]).fetchall()
    except psycopg.DataError as exc:  # "improper relation name (too many dotted names)"
        raise UserError(f"`tables:` has a name PostgreSQL cannot read: {exc}",
                        hint="list tables as NAME or SCHEMA.NAME") from None
    return {int(oid): (schema, name) for oid, schema, name in rows}


def _parse_trees(conn: Any, sql: str) -> list[str]:
    """The analysed query trees PostgreSQL sends while it Parses `sql` (unnamed statement, not run)."""
    import psycopg
    from psycopg import pq

    trees: list[str] = []

    def keep(diag: psycopg.errors.Diagnostic) -> None:
        if diag.severity_nonlocalized == "LOG" and (diag.message_primary or "").startswith("parse tree"):
            trees.append(diag.message_detail or "")

    # In a savepoint, so that rolling back to it restores every setting changed here. The parse tree is LOG
    # level, so the server's log gets it too, unless this role may raise log_min_messages (a superuser).
    conn.execute("SAVEPOINT flywheel_parse_check")
    conn.execute("SELECT set_config('debug_pretty_print', 'off', true), "
                 "set_config('client_min_messages', 'log', true), "
                 "CASE WHEN current_setting('is_superuser') = 'on' "
                 "THEN set_config('log_min_messages', 'fatal', true) END, "
                 "set_config('debug_print_parse', 'on', true)")
    conn.add_notice_handler(keep)
    try:
        result = conn.pgconn.prepare(b"", sql.encode(conn.info.encoding))
    finally:
        conn.remove_notice_handler(keep)
    conn.execute("ROLLBACK TO SAVEPOINT flywheel_parse_check")
    if result.status != pq.ExecStatus.COMMAND_OK:
        raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)
    return trees


def _oids(pattern: re.Pattern[str], text: str) -> list[int]:
    return sorted({int(m) for m in pattern.findall(text)} - {0})


def _rows(conn: Any, sql: str, oids: list[int]) -> dict[int, tuple[Any, ...]]:
    if not oids:
        return {}
    return {int(row[0]): tuple(row[1:]) for row in conn.execute(sql, [oids]).fetchall()}

"""The store: one schema over SQLite (default, WAL) or PostgreSQL, migrated on open, with a background writer.

    store = Store.open("sqlite:///.flywheel/flywheel.db")     # or postgresql://user:pw@host/db
    with store.engine.connect() as conn: ...                   # reads: plain SQLAlchemy Core
    store.writer.submit("spans", row)                          # writes off the hot path, batched
    store.close()                                              # flushes the writer, disposes the engine
"""

from __future__ import annotations

import ast
import importlib
import json
import logging
import math
import pkgutil
import shutil
import tempfile
import threading
import time
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Connection, Engine, MetaData, Table, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

from flywheel.errors import UserError
from flywheel.store.url_display import display_url
from flywheel.store.writer import Writer
from flywheel.text.install import pip_install

log = logging.getLogger("flywheel.store")
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_MIGRATION_LOCK_KEY = zlib.crc32(b"flywheel-store-migrations")  # pg_advisory_xact_lock key
_schemas_lock = threading.Lock()
_schemas_loaded = False


def sqlstate(exc: BaseException) -> str | None:
    """PostgreSQL's SQLSTATE code of a driver error, raw or wrapped by SQLAlchemy (None for anything else)."""
    return getattr(getattr(exc, "orig", exc), "sqlstate", None)


def load_schemas() -> MetaData:
    """Import `schema.py` and every `schema_<domain>.py` of this package, so `metadata` holds all tables."""
    global _schemas_loaded
    from flywheel.store import schema

    with _schemas_lock:
        if not _schemas_loaded:
            package = importlib.import_module("flywheel.store")
            for info in pkgutil.iter_modules(package.__path__):
                if info.name.startswith("schema_"):
                    importlib.import_module(f"flywheel.store.{info.name}")
            _schemas_loaded = True
    return schema.metadata


def _json_default(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return repr(obj)


def _json_serializer(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_json_default, allow_nan=False)


def _float_safe(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


# ---------------------------------------------------------------------------- URLs and engines


def _refuse_raw_at_in_password(raw: str) -> None:
    """A password with a raw '@' splits at the first '@': the rest of it would be taken for the host and printed
    in every error. Refuse it, showing nothing of the password."""
    scheme, _, rest = raw.partition("://")
    authority = rest.split("?", 1)[0]
    userinfo = authority.rsplit("@", 1)[0]
    if not scheme.startswith("postgresql") or authority.count("@") < 2 or ":" not in userinfo.split("@", 1)[0]:
        return
    host = authority.rsplit("@", 1)[1]
    raise UserError(f"the password in the store URL {scheme}://{userinfo.split(':', 1)[0]}:***@{host} contains "
                    "'@', which must be written %40",
                    hint="percent-encode the user and password in a URL (@ → %40, : → %3A, / → %2F, # → %23; "
                         "urllib.parse.quote(password, safe=''))")


def _mask_raw(raw: str) -> str:
    """A URL that did not parse, safe to print: whatever stands between the user's ':' and the last '@' (the
    password, even one holding an unencoded '/') becomes ***."""
    scheme, sep, rest = raw.partition("://")
    if not sep:
        return repr(raw.rsplit("@", 1)[-1])
    if "@" in rest:
        userinfo, host = rest.rsplit("@", 1)
        rest = f"{userinfo.split(':', 1)[0]}{':***' if ':' in userinfo else ''}@{host}"
    return repr(f"{scheme}://{rest}")


def normalize_url(url: str) -> tuple[URL, str, Path | None]:
    """(SQLAlchemy URL, dialect, temp dir to delete on close). Maps postgresql:// to the psycopg 3 driver and
    sqlite memory URLs to a temporary file (a writer thread and readers need a real shared database)."""
    if not isinstance(url, str) or not url.strip():
        raise UserError("the store URL is empty", hint="set `store:` in flywheel.yaml, e.g. sqlite:///.flywheel/flywheel.db")
    raw = url.strip()
    if raw.startswith("postgres://"):
        raw = "postgresql://" + raw[len("postgres://"):]
    _refuse_raw_at_in_password(raw)
    try:
        u = make_url(raw)
    except (sa_exc.ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        why = "the port is not a number" if "int()" in str(exc) else "not a URL"
        raise UserError(f"cannot parse store URL {_mask_raw(raw)} ({why})",
                        hint="use sqlite:///path/to/file.db or postgresql://user:password@host:5432/dbname") from None
    backend = u.get_backend_name()
    tmp: Path | None = None
    if backend == "sqlite":
        if u.drivername not in ("sqlite", "sqlite+pysqlite"):
            raise UserError(f"unsupported SQLite driver {u.drivername!r}", hint="use a plain sqlite:/// URL")
        db = u.database or ""
        if db in ("", ":memory:") or db.startswith("file::memory:"):
            tmp = Path(tempfile.mkdtemp(prefix="flywheel-store-"))
            u = u.set(drivername="sqlite", database=str(tmp / "memory.db"), query={})
        else:
            path = Path(db).expanduser()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"cannot create the folder {path.parent} for the SQLite store: {exc.strerror}",
                                hint="choose a writable location in `store:` (flywheel.yaml) or --project") from None
            u = u.set(database=str(path))
        return u, "sqlite", tmp
    if backend == "postgresql":
        if u.drivername in ("postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
            u = u.set(drivername="postgresql+psycopg")
        else:
            raise UserError(f"unsupported PostgreSQL driver {u.drivername!r}",
                            hint="use postgresql://… (flywheel uses psycopg 3)")
        return u, "postgresql", None
    raise UserError(f"unsupported store URL scheme {u.drivername!r}",
                    hint="use sqlite:///path/to/file.db (default) or postgresql://user:password@host/dbname")


def _sqlite_engine(u: URL) -> Engine:
    engine = create_engine(u, connect_args={"timeout": 30, "check_same_thread": False},
                           json_serializer=_json_serializer, pool_size=8, max_overflow=16)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
        # We emit BEGIN ourselves (below): pysqlite's implicit transactions break SAVEPOINT and transactional DDL.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000", "foreign_keys=ON",
                       "temp_store=MEMORY", "cache_size=-16000"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        opts = conn.get_execution_options()
        if opts.get("isolation_level") == "AUTOCOMMIT":
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE" if opts.get("sqlite_immediate") else "BEGIN")

    return engine


def _postgres_engine(u: URL) -> Engine:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise UserError("the store is PostgreSQL but the psycopg driver is not installed",
                        hint=pip_install("postgres")) from None
    return create_engine(u, json_serializer=_json_serializer, pool_pre_ping=True, pool_size=8, max_overflow=16,
                         connect_args={"connect_timeout": 10})


# ---------------------------------------------------------------------------- migrations


def script_heads() -> frozenset[str]:
    """Head revisions of all migration branches (computed once per process, without importing Alembic)."""
    return script_revisions()[1]


@lru_cache(maxsize=1)
def script_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """(all revisions, head revisions as Alembic records them) read from the version files without importing
    Alembic, so opening an up-to-date store stays cheap. A branch head that another branch `depends_on` is not
    recorded in `alembic_version` (the dependent revision stands for it), so it is not counted as a head."""
    revisions: set[str] = set()
    below: set[str] = set()
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        if path.name.startswith("__"):
            continue
        values = _module_constants(path, ("revision", "down_revision", "depends_on"))
        rev = values.get("revision")
        if not isinstance(rev, str):
            continue
        revisions.add(rev)
        for key in ("down_revision", "depends_on"):
            ref = values.get(key)
            if isinstance(ref, str):
                below.add(ref)
            elif isinstance(ref, (tuple, list)):
                below.update(d for d in ref if isinstance(d, str))
    return frozenset(revisions), frozenset(revisions - below)


def _module_constants(path: Path, names: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node: Any  # an ast.AnnAssign or ast.Assign wherever `.value` is read
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
        if isinstance(target, ast.Name) and target.id in names and node.value is not None:
            try:
                out[target.id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return out


def current_revisions(engine: Engine) -> frozenset[str] | None:
    """Revisions recorded in the database; None when it was never migrated."""
    with engine.connect() as conn:
        try:
            rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").fetchall()
        except sa_exc.DBAPIError as exc:
            if isinstance(exc, sa_exc.OperationalError) and _is_connect_error(exc):
                raise
            return None
    return frozenset(r[0] for r in rows)


def _is_connect_error(exc: sa_exc.DBAPIError) -> bool:
    msg = str(exc.orig).lower()
    return any(s in msg for s in ("connect", "unable to open", "readonly", "read-only", "disk i/o",
                                  "authentication", "does not exist", "permission"))


def migrate(engine: Engine, dialect: str) -> None:
    """Upgrade to all heads, under a lock so concurrent openers never migrate twice."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.connect() as conn:
        if dialect == "sqlite":
            # Batch ALTERs recreate tables; foreign keys must be off meanwhile (not changeable inside BEGIN).
            _raw_sqlite(conn, "PRAGMA foreign_keys=OFF")
            conn.execution_options(sqlite_immediate=True)  # take the write lock first: one migrator at a time
        try:
            with conn.begin():
                if dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "heads")
        finally:
            if dialect == "sqlite":
                conn.execution_options(sqlite_immediate=False)
                _raw_sqlite(conn, "PRAGMA foreign_keys=ON")


def _raw_sqlite(conn: Connection, sql: str) -> None:
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]  # open while conn is
    try:
        cur.execute(sql)
    finally:
        cur.close()


def schema_diff(store: Store, tables: list[str] | None = None) -> list[Any]:
    """Differences between the migrated database and `metadata` (for the given tables); [] when in sync."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    wanted = set(tables) if tables else None

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        tname = name if type_ == "table" else getattr(table, "name", None)
        if tname == "alembic_version":
            return False
        return wanted is None or tname in wanted

    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": include, "compare_type": True})
        return compare_metadata(ctx, load_schemas())


# ---------------------------------------------------------------------------- the store


_OPEN_ATTEMPTS = 6  # opening a SQLite store that another process is migrating: up to ~3 s of pauses


class Store:
    """An open store: `.engine` (SQLAlchemy 2), `.url`, `.dialect` ('sqlite' | 'postgresql'), `.writer`."""

    def __init__(self, engine: Engine, url: str, dialect: str, *, temp_dir: Path | None = None,
                 batch_rows: int = 100, max_delay_s: float = 0.2):
        self.engine = engine
        # the same pool, BEGIN IMMEDIATE on SQLite (see begin()); made once, not per transaction
        self._write_first = engine.execution_options(sqlite_immediate=True)
        self.url = url
        self.dialect = dialect
        self.metadata = load_schemas()
        self.writer = Writer(engine, batch_rows=batch_rows, max_delay_s=max_delay_s)
        self._temp_dir = temp_dir
        self._closed = False

    @classmethod
    def open(cls, url: str, *, migrate_schema: bool = True, batch_rows: int = 100,
             max_delay_s: float = 0.2) -> Store:
        """Open (creating if needed) and migrate the store at `url`. Raises UserError when unreachable."""
        u, dialect, tmp = normalize_url(url)
        # as the user wrote it (postgresql://…, ?host=/socket/dir, an empty password), not the driver URL
        shown = display_url(url)
        engine = _sqlite_engine(u) if dialect == "sqlite" else _postgres_engine(u)
        load_schemas()
        for attempt in range(_OPEN_ATTEMPTS):
            try:
                current = current_revisions(engine) if migrate_schema else None
                if migrate_schema and current != script_heads():
                    unknown = (current or frozenset()) - script_revisions()[0]
                    if unknown:
                        engine.dispose()
                        raise UserError(f"the store {shown} was migrated by a newer flywheel (unknown schema "
                                        f"revisions: {', '.join(sorted(unknown))})",
                                        hint="upgrade flywheel (pip install -U flywheel), or use another store")
                    try:
                        migrate(engine, dialect)
                    except sa_exc.DBAPIError as exc:  # all migrations run in one transaction: nothing written
                        if dialect == "postgresql" and 'extension "vector"' in str(exc.orig):
                            engine.dispose()
                            raise _pgvector_error(shown, exc) from None
                        if dialect == "postgresql" and sqlstate(exc) == "42501":
                            engine.dispose()
                            raise _privilege_error(shown, u.username, exc) from None
                        if dialect == "postgresql" and sqlstate(exc) == "53200":
                            engine.dispose()  # out of shared memory: the lock table, not the connection
                            raise UserError(f"cannot migrate the PostgreSQL store {shown}: {exc.orig}; nothing "
                                            "was changed", hint="raise max_locks_per_transaction (ALTER SYSTEM "
                                            "SET …, then restart PostgreSQL) and open the store again") from None
                        raise
                break
            except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
                # Another process opening the same fresh SQLite file can hold it while it migrates; SQLite
                # answers some of those conflicts (a journal-mode switch, a read lock upgraded to a write)
                # with "database is locked" at once, without waiting: look again after a short pause.
                if dialect == "sqlite" and "locked" in str(exc) and attempt + 1 < _OPEN_ATTEMPTS:
                    time.sleep(0.1 * 2 ** attempt)
                    continue
                engine.dispose()
                if tmp:
                    shutil.rmtree(tmp, ignore_errors=True)
                raise _open_error(shown, dialect, exc) from None
        return cls(engine, u.render_as_string(hide_password=False), dialect, temp_dir=tmp,
                   batch_rows=batch_rows, max_delay_s=max_delay_s)

    def table(self, name: str) -> Table:
        try:
            return self.metadata.tables[name]
        except KeyError:
            raise LookupError(f"no table {name!r} in the store schema; known: {sorted(self.metadata.tables)}") from None

    def connect(self) -> Connection:
        return self.engine.connect()

    def begin(self, *, write_first: bool = False) -> Any:
        """`with store.begin() as conn:` one transaction, committed on exit. `write_first=True` for a transaction
        that reads and then writes: on SQLite it takes the write lock at BEGIN (BEGIN IMMEDIATE), so it waits
        for another writer (busy_timeout) instead of failing with "database is locked" when that writer
        committed after its read; PostgreSQL is unaffected."""
        if write_first:
            return self._write_first.begin()
        return self.engine.begin()

    def flush(self, timeout: float | None = 30.0) -> bool:
        return self.writer.flush(timeout)

    def close(self) -> None:
        """Flush and stop the writer, then dispose the engine. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.writer.close()
        self.engine.dispose()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.dialect}: {display_url(self.url)})"


def _pgvector_error(shown: str, exc: sa_exc.DBAPIError) -> UserError:
    """The store's schema needs pgvector: not installed on the server, or this user may not create it."""
    reason = str(exc.orig).strip().splitlines()[0]
    return UserError(f"the PostgreSQL store {shown} needs the pgvector extension: {reason}",
                     hint="install pgvector on the server (https://github.com/pgvector/pgvector) and have a "
                          "superuser run `CREATE EXTENSION vector;` in this database once; nothing was written")


def _privilege_error(shown: str, user: str | None, exc: sa_exc.DBAPIError) -> UserError:
    """The user may connect but not read or create the store's tables (another role owns them)."""
    reason = str(exc.orig).strip().splitlines()[0]
    return UserError(f"the PostgreSQL user {user or '(default)'} may not use the store {shown}: {reason}",
                     hint="connect as the role that created the store's tables (or the database owner), or have "
                          "it run `GRANT ALL ON ALL TABLES IN SCHEMA public TO <user>` (and the same ON ALL "
                          "SEQUENCES); nothing was written")


def _open_error(shown: str, dialect: str, exc: Exception) -> UserError:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    if dialect == "postgresql":
        return UserError(f"cannot connect to the PostgreSQL store {shown}: {reason}",
                         hint="check the server is running and reachable, the database exists and the user and "
                              "password are right (`store:` in flywheel.yaml)")
    return UserError(f"cannot open the SQLite store {shown}: {reason}",
                     hint="check the path is writable (`store:` in flywheel.yaml or --project DIR)")

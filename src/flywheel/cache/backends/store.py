"""The default backend: the project's store (SQLite or PostgreSQL), tables in flywheel.store.schema_cache.

Reads on SQLite go through one plain sqlite3 connection per thread (autocommit, read-only): SQLAlchemy's
per-call overhead is ~30x the ~10 µs primary-key lookup itself, and the exact-hit budget is 0.5 ms. On
PostgreSQL the network round trip dominates, so reads use prebuilt statements on an autocommit connection.
Writes are synchronous upserts: they happen after the model answered, and a lookup right after a save must
see it. Hit-log rows go through the store's background writer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import Any

import numpy as np
from sqlalchemy import and_, bindparam, delete, insert, or_, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from flywheel.cache.backends.base import (
    Backend,
    BackendDown,
    SemanticEntry,
    StoredAnswer,
    VectorRow,
    hit_row,
    stored_answer,
)
from flywheel.store.schema_cache import cache_entries, cache_hits, cache_semantic
from flywheel.text.secrets import scrub_secrets

_E, _S = cache_entries.c, cache_semantic.c


def _down(exc: Exception) -> Exception:
    """Connection-level failures become BackendDown (the store is unreachable); others stay as they are."""
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)):
        return BackendDown(str(getattr(exc, "orig", None) or exc).strip().splitlines()[0])
    return exc


_SQLITE_GET = ("SELECT text, created_at, expires_at, pinned, meta FROM cache_entries WHERE key = ? "
               "AND (pinned = 1 OR expires_at IS NULL OR expires_at > ?) ORDER BY pinned DESC LIMIT 1")
_SQLITE_SINCE = "SELECT id, vector, expires_at FROM cache_semantic WHERE scope = ? AND id > ? ORDER BY id"
_SQLITE_ENTRIES = ("SELECT id, scope, question, text, created_at, expires_at, meta FROM cache_semantic "
                   "WHERE id IN ({})")


class _SqliteReaders:
    """One read-only autocommit sqlite3 connection per thread (WAL: readers never block the writer)."""

    def __init__(self, path: str):
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only=1")
            conn.execute("PRAGMA busy_timeout=5000")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def query(self, sql: str, params: tuple) -> list[tuple]:
        try:
            return self.get().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise BackendDown(f"sqlite: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


class StoreBackend(Backend):
    name = "store"

    def __init__(self, store: Any):
        self.store = store
        self.engine = store.engine
        self._reader = store.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._sqlite = _SqliteReaders(store.engine.url.database) if store.dialect == "sqlite" else None
        self._get = (
            select(_E.text, _E.created_at, _E.expires_at, _E.pinned, _E.meta)
            .where(_E.key == bindparam("key"))
            .where(or_(_E.pinned.is_(True), _E.expires_at.is_(None), _E.expires_at > bindparam("now")))
            .order_by(_E.pinned.desc())
            .limit(1)
        )
        self._since = (
            select(_S.id, _S.vector, _S.expires_at)
            .where(and_(_S.scope == bindparam("scope"), _S.id > bindparam("cursor")))
            .order_by(_S.id)
        )
        insert_fn = postgresql.insert if store.dialect == "postgresql" else sqlite.insert
        upsert = insert_fn(cache_entries)
        self._put = upsert.on_conflict_do_update(
            index_elements=[_E.key, _E.pinned],
            set_={"text": upsert.excluded.text, "created_at": upsert.excluded.created_at,
                  "expires_at": upsert.excluded.expires_at, "meta": upsert.excluded.meta},
        )

    # ---------------------------------------------------------------- exact
    def get(self, key: str, now: float) -> StoredAnswer | None:
        if self._sqlite is not None:
            rows = self._sqlite.query(_SQLITE_GET, (key, now))
            if not rows:
                return None
            text, created, expires, pinned, meta = rows[0]
            return StoredAnswer(key, text, created, expires, bool(pinned), json.loads(meta) if meta else {})
        try:
            with self._reader.connect() as conn:
                row = conn.execute(self._get, {"key": key, "now": now}).first()
        except Exception as exc:
            raise _down(exc) from exc
        if row is None:
            return None
        return StoredAnswer(key, row.text, row.created_at, row.expires_at, bool(row.pinned), row.meta or {})

    def put(self, entry: StoredAnswer) -> None:
        entry = stored_answer(entry)
        row = {"key": entry.key, "pinned": entry.pinned, "text": entry.text, "created_at": entry.created_at,
               "expires_at": entry.expires_at, "meta": entry.meta or None}
        try:
            with self.engine.begin() as conn:
                conn.execute(self._put, row)
        except Exception as exc:
            raise _down(exc) from exc

    def delete(self, key: str, *, pinned: bool) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(cache_entries).where(_E.key == key, _E.pinned.is_(pinned)))
        except Exception as exc:
            raise _down(exc) from exc

    # ---------------------------------------------------------------- semantic
    def add_semantic(self, scope: str, question: str, text: str, vector: np.ndarray, *, created_at: float,
                     expires_at: float | None, meta: dict[str, Any]) -> str:
        blob = np.ascontiguousarray(vector, dtype="<f4").tobytes()
        try:
            with self.engine.begin() as conn:
                result = conn.execute(insert(cache_semantic).returning(_S.id), {
                    "scope": scope, "question": scrub_secrets(question), "text": scrub_secrets(text),
                    "vector": blob,
                    "created_at": created_at, "expires_at": expires_at, "meta": meta or None})
                return str(result.scalar_one())
        except Exception as exc:
            raise _down(exc) from exc

    def semantic_since(self, scope: str, cursor: Any) -> tuple[list[VectorRow], Any]:
        # Ids come from an autoincrement; on PostgreSQL a concurrent writer can commit a lower id after a
        # higher one was read, and that entry is then never loaded by this process: a missed hit, not a wrong one.
        last = int(cursor or 0)
        if self._sqlite is not None:
            rows = self._sqlite.query(_SQLITE_SINCE, (scope, last))
        else:
            try:
                with self._reader.connect() as conn:
                    rows = conn.execute(self._since, {"scope": scope, "cursor": last}).all()
            except Exception as exc:
                raise _down(exc) from exc
        out = [VectorRow(str(r[0]), np.frombuffer(r[1], dtype="<f4"), r[2]) for r in rows]
        return out, (rows[-1][0] if rows else last)

    def semantic_entries(self, ids: list[str]) -> dict[str, SemanticEntry]:
        if not ids:
            return {}
        numbers = [int(i) for i in ids]
        if self._sqlite is not None:
            rows = self._sqlite.query(_SQLITE_ENTRIES.format(",".join("?" * len(numbers))), tuple(numbers))
            return {str(r[0]): SemanticEntry(str(r[0]), r[1], r[2], r[3], r[4], r[5], json.loads(r[6]) if r[6] else {})
                    for r in rows}
        stmt = select(_S.id, _S.scope, _S.question, _S.text, _S.created_at, _S.expires_at, _S.meta).where(
            _S.id.in_(numbers))
        try:
            with self._reader.connect() as conn:
                rows = conn.execute(stmt).all()
        except Exception as exc:
            raise _down(exc) from exc
        return {str(r.id): SemanticEntry(str(r.id), r.scope, r.question, r.text, r.created_at, r.expires_at,
                                         r.meta or {}) for r in rows}

    # ---------------------------------------------------------------- upkeep
    def log_hit(self, row: dict[str, Any]) -> None:
        self.store.writer.submit(cache_hits, hit_row(row))

    def purge_expired(self, now: float) -> int:
        try:
            with self.engine.begin() as conn:
                n = conn.execute(delete(cache_entries).where(
                    _E.pinned.is_(False), _E.expires_at.is_not(None), _E.expires_at <= now)).rowcount
                n += conn.execute(delete(cache_semantic).where(
                    _S.expires_at.is_not(None), _S.expires_at <= now)).rowcount
                return n
        except Exception as exc:
            raise _down(exc) from exc

    def clear(self, *, include_pinned: bool = False) -> None:
        with self.engine.begin() as conn:
            stmt = delete(cache_entries)
            conn.execute(stmt if include_pinned else stmt.where(_E.pinned.is_(False)))
            conn.execute(delete(cache_semantic))

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()


class StoreHitLog:
    """The hit log in the store, for a cache whose entries live elsewhere (Redis)."""

    def __init__(self, store: Any):
        self.store = store

    def log_hit(self, row: dict[str, Any]) -> None:
        self.store.writer.submit(cache_hits, hit_row(row))

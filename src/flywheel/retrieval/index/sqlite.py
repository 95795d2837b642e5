"""SQLite index: FTS5 bm25() over pre-segmented tokens, and cosine search with NumPy over float32 vectors kept
as BLOBs. The vectors of a (tenant, model) are held in memory (sqlite_vectors.py), or for a large tenant as int8
codes in memory-mapped files shared by processes (sqlite_vectors_int8.py): exact up to 200,000 chunks per
tenant, above that a sign-bit first stage picks the candidates (sqlite_vectors_binary.py), brought up to
date on each search when the tenant's write counter moved (so writes from another process are seen): new rows
are appended, a delete rebuilds; a search is a few BLAS matrix-vector products.

The statements a search runs (keyword match, document frequencies, the tenant's write counter and languages,
fetching the hits) go straight to the pooled sqlite3 connection: through SQLAlchemy each costs ~0.2 ms of
BEGIN/ROLLBACK, compilation and result wrapping, more than most of these queries take (fetching 10 chunks:
0.66 ms vs 0.03 ms). Writes and filtered queries keep using SQLAlchemy."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from sqlalchemy import column, literal_column, select, table, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from flywheel.retrieval.index import sqlite_vectors_int8 as int8
from flywheel.retrieval.index.base import FETCH_COLUMNS, Index, Scored, chunk_from_row, filter_clauses
from flywheel.retrieval.index.sqlite_vectors import Stamp, VectorMatrix
from flywheel.store.schema_retrieval import chunks
from flywheel.types import Chunk

_FETCH = f"SELECT {', '.join(FETCH_COLUMNS)} FROM chunks WHERE pk IN ({{marks}}) AND tenant || '' = ?"

_fts = table("chunks_fts", column("rowid"))


def tenant_key(tenant: str) -> str:
    """The FTS5 token naming a tenant; the migration's triggers write the same ('t' || hex(tenant))."""
    return "t" + tenant.encode("utf-8").hex().upper()


def match_expression(tokens: list[str]) -> str:
    """FTS5 query: any of the tokens, each quoted (tokens are word characters, quoting keeps them literal)."""
    unique = list(dict.fromkeys(t.replace('"', "") for t in tokens if t.strip('"')))
    return " OR ".join(f'"{t}"' for t in unique)


class SqliteIndex(Index):
    dialect = "sqlite"

    def __init__(self, store: Any):
        super().__init__(store)
        self._matrices: dict[tuple[str, str], VectorMatrix | int8.Int8Matrix] = {}
        self._lock = threading.Lock()

    def _insert_ignore(self, tbl: Any) -> Any:
        return sqlite_insert(tbl).on_conflict_do_nothing()

    def _encode_vector(self, v: np.ndarray) -> bytes:
        return np.asarray(v, dtype="<f4").tobytes()

    def _decode_vector(self, v: Any) -> np.ndarray:
        return np.frombuffer(v, dtype="<f4").copy()

    @contextmanager
    def _reader(self, snapshot: bool = False) -> Iterator[sqlite3.Connection]:
        """The pooled sqlite3 connection (autocommit: each statement sees the latest commit), or with `snapshot`
        one read transaction for several statements."""
        with self.engine.connect() as conn:
            db = conn.connection.driver_connection
            if not snapshot:
                yield db
                return
            db.execute("BEGIN")
            try:
                yield db
            finally:
                db.rollback()

    # ---------------------------------------------------------------- keyword

    def keyword(self, tenant: str, tokens: list[str], n: int, filters: dict | None = None) -> Scored:
        body = match_expression(tokens)
        if not body:
            return []
        if filters:
            with self.engine.connect() as conn, conn.begin():  # one read snapshot
                rank: Any = literal_column("chunks_fts.rank")
                q = (select(chunks.c.pk, rank.label("rank"))
                     .select_from(_fts.join(chunks, chunks.c.pk == _fts.c.rowid))
                     .where(text("chunks_fts MATCH :match").bindparams(match=self._tenant_match(tenant, body)),
                            chunks.c.tenant == tenant, *filter_clauses(filters))
                     .order_by(rank).limit(n))
                rows = conn.execute(q).all()
                return [(int(pk), -float(r)) for pk, r in rows]
        with self._reader(snapshot=True) as db:  # one read snapshot for the check and the query
            # FTS5 sorts by rank itself when nothing else is joined; the tenant is part of the MATCH, except
            # when it is the only tenant with chunks (the same snapshot guarantees no other rows exist).
            others = db.execute("SELECT count(*) FROM retrieval_tenants WHERE tenant != ? AND chunks != 0",
                                (tenant,)).fetchone()[0]
            match = f"tokens : ({body})" if not others else self._tenant_match(tenant, body)
            rows = db.execute("SELECT rowid, rank FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?",
                              (match, n)).fetchall()
        return [(int(pk), -float(r)) for pk, r in rows]

    @staticmethod
    def _tenant_match(tenant: str, body: str) -> str:
        return f'tenant_key : "{tenant_key(tenant)}" AND tokens : ({body})'

    def doc_freqs(self, tenant: str, terms: list[str]) -> tuple[int, dict[str, int]]:
        """The tenant's chunks and, per term, how many of them contain it (as PostgreSQL counts), so one tenant's
        documents never move another's idf. FTS5's own bm25() (the keyword candidates' order) stays file-wide.
        Measured at 3 × 1,039 chunks: median 0.22 → 0.39 ms per query (docs/retrieval.md, "Tenants")."""
        df: dict[str, int] = {}
        with self._reader(snapshot=True) as db:  # the count and the frequencies from one snapshot
            row = db.execute("SELECT chunks FROM retrieval_tenants WHERE tenant = ?", (tenant,)).fetchone()
            total = int(row[0] or 0) if row else 0
            others = db.execute("SELECT count(*) FROM retrieval_tenants WHERE tenant != ? AND chunks != 0",
                                (tenant,)).fetchone()[0]
            for term in dict.fromkeys(terms):
                expr = match_expression([term])
                if not expr or not total:
                    df[term] = 0
                    continue
                # the only tenant with chunks: every row is the tenant's, so the cheaper file-wide count is exact
                match = self._tenant_match(tenant, expr) if others else f"tokens : ({expr})"
                df[term] = int(db.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?",
                                          (match,)).fetchone()[0] or 0)
        return total, df

    def write_version(self, tenant: str) -> int:
        with self._reader() as db:  # a point read per search: straight to sqlite3 (see the module docstring)
            row = db.execute("SELECT version FROM retrieval_tenants WHERE tenant = ?", (tenant,)).fetchone()
        return int(row[0] or 0) if row else 0

    def languages(self, tenant: str) -> dict[str, int]:
        with self._reader() as db:
            row = db.execute("SELECT languages FROM retrieval_tenants WHERE tenant = ?", (tenant,)).fetchone()
        return dict(json.loads(row[0]) or {}) if row and row[0] else {}

    def fetch(self, pks: Iterable[int], tenant: str) -> dict[int, tuple[Chunk, str]]:
        wanted = list(pks)
        out: dict[int, tuple[Chunk, str]] = {}
        with self._reader() as db:
            for start in range(0, len(wanted), 500):
                part = wanted[start:start + 500]
                for values in db.execute(_FETCH.format(marks=",".join("?" * len(part))), (*part, tenant)):
                    row = dict(zip(FETCH_COLUMNS, values, strict=True))
                    out[row["pk"]] = chunk_from_row(row, json.loads(row["metadata"]) if row["metadata"] else None)
        return out

    # ---------------------------------------------------------------- vectors

    def _matrix(self, tenant: str, model: str) -> VectorMatrix | int8.Int8Matrix:
        """The tenant's vectors for `model`, current as of this search (appended to, or rebuilt after a delete):
        int8 side files shared by every process for a large tenant (sqlite_vectors_int8.py), else float32 in
        memory."""
        key = (tenant, model)
        cached = self._matrices.get(key)
        if cached is not None:
            with self._reader() as db:
                if cached.stamp.same(Stamp.read(db, tenant)):
                    return cached
        with self._lock, self._reader(snapshot=True) as db:  # the stamp and the rows from one snapshot
            cached = self._matrices.get(key)
            matrix = int8.current(db, int8.folder_for(self.engine.url.database), tenant, model, cached)
            self._matrices[key] = matrix
            return matrix

    def dense(self, tenant: str, model: str, vector: np.ndarray, n: int, filters: dict | None = None) -> Scored:
        m = self._matrix(tenant, model)
        if not m.size or m.dim != vector.shape[0]:
            return []
        allowed = None
        if filters:
            with self.engine.connect() as conn:
                allowed = np.fromiter((r[0] for r in conn.execute(
                    select(chunks.c.pk).where(chunks.c.tenant == tenant, *filter_clauses(filters)))), dtype=np.int64)
        if isinstance(m, int8.Int8Matrix):
            with self._reader() as db:
                return m.top(vector, n, allowed, lambda pks: int8.rescore(db, tenant, model, pks, vector))
        pks = m.pks()
        scores = m.scores(vector)
        if allowed is not None:
            keep = np.isin(pks, allowed, assume_unique=True)
            scores = np.where(keep, scores, -np.inf)
            available = int(keep.sum())
        else:
            available = len(scores)
        n = min(n, available)
        if n <= 0:
            return []
        top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(pks[i]), float(scores[i])) for i in top]

    def invalidate(self, tenant: str | None = None) -> None:
        """With no tenant (closing), free the matrices. A tenant's matrix is kept after its writes (ingest and
        the embed stage call this): the next search appends what was added, so a write never costs a reload of
        every vector, and a delete is caught there anyway."""
        if tenant is None:
            with self._lock:
                self._matrices.clear()

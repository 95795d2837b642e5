"""SQLite index: FTS5 bm25() over pre-segmented tokens, and exact cosine search with NumPy over float32
vectors kept as BLOBs. The vectors of a (tenant, model) are held in memory as one matrix, reloaded when the
tenant's write counter moves (so writes from another process are seen on the next search)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from sqlalchemy import column, func, literal_column, select, table, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from flywheel.retrieval.index.base import Index, Scored, filter_clauses
from flywheel.store.schema_retrieval import chunks, embeddings, retrieval_tenants

_fts = table("chunks_fts", column("rowid"))


def tenant_key(tenant: str) -> str:
    """The FTS5 token naming a tenant; the migration's triggers write the same ('t' || hex(tenant))."""
    return "t" + tenant.encode("utf-8").hex().upper()


def match_expression(tokens: list[str]) -> str:
    """FTS5 query: any of the tokens, each quoted (tokens are word characters, quoting keeps them literal)."""
    unique = list(dict.fromkeys(t.replace('"', "") for t in tokens if t.strip('"')))
    return " OR ".join(f'"{t}"' for t in unique)


class _Matrix:
    __slots__ = ("pks", "vectors", "version")

    def __init__(self, version: int, pks: np.ndarray, vectors: np.ndarray):
        self.version, self.pks, self.vectors = version, pks, vectors


class SqliteIndex(Index):
    dialect = "sqlite"

    def __init__(self, store: Any):
        super().__init__(store)
        self._matrices: dict[tuple[str, str], _Matrix] = {}
        self._lock = threading.Lock()

    def _insert_ignore(self, tbl: Any) -> Any:
        return sqlite_insert(tbl).on_conflict_do_nothing()

    def _encode_vector(self, v: np.ndarray) -> bytes:
        return np.asarray(v, dtype="<f4").tobytes()

    def _decode_vector(self, v: Any) -> np.ndarray:
        return np.frombuffer(v, dtype="<f4").copy()

    # ---------------------------------------------------------------- keyword

    def keyword(self, tenant: str, tokens: list[str], n: int, filters: dict | None = None) -> Scored:
        body = match_expression(tokens)
        if not body:
            return []
        with self.engine.connect() as conn, conn.begin():  # one read snapshot for the checks and the query
            if filters:
                rank = literal_column("chunks_fts.rank")
                q = (select(chunks.c.pk, rank.label("rank"))
                     .select_from(_fts.join(chunks, chunks.c.pk == _fts.c.rowid))
                     .where(text("chunks_fts MATCH :match").bindparams(match=self._tenant_match(tenant, body)),
                            chunks.c.tenant == tenant, *filter_clauses(filters))
                     .order_by(rank).limit(n))
                rows = conn.execute(q).all()
            else:
                # FTS5 sorts by rank itself when nothing else is joined; the tenant is part of the MATCH, except
                # when it is the only tenant with chunks (the same snapshot guarantees no other rows exist).
                only = self._only_tenant(conn, tenant)
                match = f"tokens : ({body})" if only else self._tenant_match(tenant, body)
                rows = conn.execute(text("SELECT rowid, rank FROM chunks_fts WHERE chunks_fts MATCH :match "
                                         "ORDER BY rank LIMIT :n"), {"match": match, "n": n}).all()
        return [(int(pk), -float(r)) for pk, r in rows]

    @staticmethod
    def _tenant_match(tenant: str, body: str) -> str:
        return f'tenant_key : "{tenant_key(tenant)}" AND tokens : ({body})'

    @staticmethod
    def _only_tenant(conn: Any, tenant: str) -> bool:
        others = conn.execute(select(func.count()).select_from(retrieval_tenants).where(
            retrieval_tenants.c.tenant != tenant, retrieval_tenants.c.chunks != 0)).scalar()
        return not others

    def doc_freqs(self, tenant: str, terms: list[str]) -> tuple[int, dict[str, int]]:
        """Chunks containing each term, over all tenants (FTS5 keeps one vocabulary; its bm25() idf is global
        too). Used for idf weights only, never to decide what a tenant can see."""
        df: dict[str, int] = {}
        with self.engine.connect() as conn:
            _, total = self.chunk_counts(conn, tenant)
            for term in dict.fromkeys(terms):
                expr = match_expression([term])
                df[term] = int(conn.execute(text("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH :m"),
                                            {"m": f"tokens : ({expr})"}).scalar() or 0) if expr else 0
        return int(total), df

    # ---------------------------------------------------------------- vectors

    def _matrix(self, tenant: str, model: str) -> _Matrix:
        with self.engine.connect() as conn:
            version = self.version(conn, tenant)
            key = (tenant, model)
            cached = self._matrices.get(key)
            if cached is not None and cached.version == version:
                return cached
            with self._lock:
                cached = self._matrices.get(key)
                if cached is not None and cached.version == version:
                    return cached
                q = (select(chunks.c.pk, embeddings.c.vector)
                     .select_from(chunks.join(embeddings, (embeddings.c.hash == chunks.c.embed_hash)
                                              & (embeddings.c.model == model)))
                     .where(chunks.c.tenant == tenant).order_by(chunks.c.pk))
                rows = conn.execute(q).all()
                pks = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                if rows:
                    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
                else:
                    vectors = np.zeros((0, 0), np.float32)
                matrix = _Matrix(version, pks, vectors)
                self._matrices[key] = matrix
                return matrix

    def dense(self, tenant: str, model: str, vector: np.ndarray, n: int, filters: dict | None = None) -> Scored:
        m = self._matrix(tenant, model)
        if not len(m.pks) or m.vectors.shape[1] != vector.shape[0]:
            return []
        scores = m.vectors @ vector.astype(np.float32)
        if filters:
            with self.engine.connect() as conn:
                allowed = np.fromiter((r[0] for r in conn.execute(
                    select(chunks.c.pk).where(chunks.c.tenant == tenant, *filter_clauses(filters)))), dtype=np.int64)
            keep = np.isin(m.pks, allowed, assume_unique=True)
            scores = np.where(keep, scores, -np.inf)
            available = int(keep.sum())
        else:
            available = len(scores)
        n = min(n, available)
        if n <= 0:
            return []
        top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(m.pks[i]), float(scores[i])) for i in top]

    def invalidate(self, tenant: str | None = None) -> None:
        with self._lock:
            if tenant is None:
                self._matrices.clear()
            else:
                for key in [k for k in self._matrices if k[0] == tenant]:
                    del self._matrices[key]

"""PostgreSQL index: BM25 computed in SQL over a tsvector of the pre-segmented tokens (GIN index for the
match), and pgvector cosine search with one HNSW index per embedding model.

The tsvector is written as a literal from our own tokens (no PostgreSQL parser or dictionary touches them), so
Chinese words segmented by jieba stay words and term frequencies are exact. Idf and average length are
computed per tenant. HNSW may return fewer rows than asked when the tenant or a filter is selective (pgvector
filters after the index scan); the query then falls back to an exact scan, so n rows come back when n exist.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

import numpy as np
from sqlalchemy import Float, and_, bindparam, cast, desc, func, select, text, true
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from flywheel.retrieval.index.base import Index, Scored, filter_clauses
from flywheel.store.schema_retrieval import chunks, embeddings
from flywheel.types import content_hash

K1, B = 1.2, 0.75  # the BM25 constants FTS5 uses, so both engines rank alike
MAX_POSITIONS = 255  # tsvector keeps at most 256 positions per lexeme, positions ≤ 16383


def _quote(term: str) -> str:
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def tsvector_literal(tokens: list[str]) -> str:
    positions: dict[str, list[int]] = defaultdict(list)
    for i, tok in enumerate(tokens, start=1):
        if len(tok.encode("utf-8")) < 2000 and len(positions[tok]) < MAX_POSITIONS:
            positions[tok].append(min(i, 16383))
    return " ".join(f"{_quote(t)}:{','.join(map(str, sorted(set(p))))}" for t, p in positions.items())


def tsquery_literal(terms: list[str]) -> str:
    return " | ".join(_quote(t) for t in terms)


class PostgresIndex(Index):
    dialect = "postgresql"

    def __init__(self, store: Any):
        super().__init__(store)
        self._hnsw: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self._dims: dict[str, int] = {}

    def _prepare_row(self, row: dict) -> dict:
        return {**row, "tsv": tsvector_literal(row["tokens"].split())}

    def _insert_ignore(self, tbl: Any) -> Any:
        return pg_insert(tbl).on_conflict_do_nothing()

    def _encode_vector(self, v: np.ndarray) -> np.ndarray:
        return np.asarray(v, dtype=np.float32)

    def _decode_vector(self, v: Any) -> np.ndarray:
        return np.asarray(v, dtype=np.float32)

    # ---------------------------------------------------------------- keyword (BM25 in SQL)

    def keyword(self, tenant: str, tokens: list[str], n: int, filters: dict | None = None) -> Scored:
        terms = list(dict.fromkeys(t for t in tokens if len(t.encode("utf-8")) < 2000))
        if not terms:
            return []
        tsq = cast(bindparam("tsq", tsquery_literal(terms)), TSQUERY)
        lex = func.unnest(chunks.c.tsv).table_valued("lexeme", "positions", "weights").lateral("u")
        matched = (select(chunks.c.pk, chunks.c.n_tokens, lex.c.lexeme.label("term"),
                          func.coalesce(func.array_length(lex.c.positions, 1), 1).label("tf"),
                          and_(true(), *filter_clauses(filters)).label("ok"))
                   .select_from(chunks.join(lex, true()))
                   .where(chunks.c.tenant == tenant, chunks.c.tsv.op("@@")(tsq), lex.c.lexeme.in_(terms))
                   ).cte("m")
        df = select(matched.c.term, cast(func.count(), Float).label("df")).group_by(matched.c.term).cte("df")
        stats = select(cast(func.count(), Float).label("n"),
                       cast(func.coalesce(func.avg(chunks.c.n_tokens), 1.0), Float).label("avgdl")
                       ).where(chunks.c.tenant == tenant).cte("stats")
        tf = cast(matched.c.tf, Float)
        idf = func.ln(1.0 + (stats.c.n - df.c.df + 0.5) / (df.c.df + 0.5))
        norm = K1 * (1.0 - B + B * cast(matched.c.n_tokens, Float) / func.greatest(stats.c.avgdl, 1.0))
        score = func.sum(idf * tf * (K1 + 1.0) / (tf + norm)).label("score")
        q = (select(matched.c.pk, score)
             .select_from(matched.join(df, df.c.term == matched.c.term).join(stats, true()))
             .where(matched.c.ok).group_by(matched.c.pk).order_by(desc("score"), matched.c.pk).limit(n))
        with self.engine.connect() as conn:
            return [(int(pk), float(s)) for pk, s in conn.execute(q)]

    def doc_freqs(self, tenant: str, terms: list[str]) -> tuple[int, dict[str, int]]:
        unique = list(dict.fromkeys(t for t in terms if len(t.encode("utf-8")) < 2000))
        df = {t: 0 for t in unique}
        with self.engine.connect() as conn:
            total, _ = self.chunk_counts(conn, tenant)
            if unique:
                lex = func.unnest(chunks.c.tsv).table_valued("lexeme", "positions", "weights").lateral("u")
                q = (select(lex.c.lexeme, func.count()).select_from(chunks.join(lex, true()))
                     .where(chunks.c.tenant == tenant,
                            chunks.c.tsv.op("@@")(cast(bindparam("tsq", tsquery_literal(unique)), TSQUERY)),
                            lex.c.lexeme.in_(unique)).group_by(lex.c.lexeme))
                for term, count in conn.execute(q):
                    df[term] = int(count)
        return total, df

    # ---------------------------------------------------------------- vectors (pgvector HNSW)

    def on_new_vectors(self, conn: Any, model: str, dim: int) -> None:
        if (model, dim) in self._hnsw:
            return
        name = f"ix_embeddings_hnsw_{content_hash(model, str(dim), n=12)}"
        model_sql = model.replace("'", "''")
        conn.execute(text(f"CREATE INDEX IF NOT EXISTS {name} ON embeddings USING hnsw "
                          f"((vector::vector({int(dim)})) vector_cosine_ops) WHERE model = '{model_sql}'"))
        self._hnsw.add((model, dim))

    def dense(self, tenant: str, model: str, vector: np.ndarray, n: int, filters: dict | None = None) -> Scored:
        from pgvector.sqlalchemy import VECTOR

        dim = int(vector.shape[0])
        column = cast(embeddings.c.vector, VECTOR(dim))
        distance = column.cosine_distance(np.asarray(vector, dtype=np.float32))
        base = (select(chunks.c.pk, (1.0 - distance).label("sim"))
                .select_from(embeddings.join(chunks, chunks.c.embed_hash == embeddings.c.hash))
                .where(embeddings.c.model == bindparam("model", model, literal_execute=True),
                       embeddings.c.dim == dim, chunks.c.tenant == tenant, *filter_clauses(filters))
                .limit(n))
        with self.engine.connect() as conn, conn.begin():
            conn.execute(text(f"SET LOCAL hnsw.ef_search = {min(1000, max(40, 2 * n))}"))
            rows = conn.execute(base.order_by(distance)).all()
            if len(rows) < n:
                # The HNSW scan was filtered below n; an ORDER BY the index cannot serve makes it exact.
                rows = conn.execute(base.order_by(distance + 0.0, chunks.c.pk)).all()
        return [(int(pk), float(sim)) for pk, sim in rows]

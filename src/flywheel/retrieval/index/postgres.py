"""PostgreSQL index: BM25 computed in SQL over a tsvector of the pre-segmented tokens (GIN index for the
match), and pgvector cosine search with one HNSW index per embedding model.

The tsvector is written as a literal from our own tokens (no PostgreSQL parser or dictionary touches them), so
Chinese words segmented by jieba stay words and term frequencies are exact. Idf and average length are
computed per tenant.

Keyword top-k without scoring every matching row (MaxScore): document frequencies are counted per term through
the GIN index (cached until the tenant's next write). Chunks containing a rare term (df ≤ CANDIDATES) are all
scored. A chunk containing only common terms scores less than the sum of those terms' upper bounds
(idf · (k1 + 1)); when the k-th best rare-term candidate already reaches that bound, the result is exact and
common-only chunks are never read. Otherwise at most CANDIDATES of them are scored too (a query made only of
words found in more than CANDIDATES chunks: the ranking is then approximate, `last_keyword["exact"]` is False).

Vectors: `embeddings` is partitioned by tenant (one partition each, attached before the tenant's first vector:
`prepare_tenants`), so a tenant's search walks an HNSW graph of its own vectors, as fast and with the same recall
as a store of one tenant (a filter on a shared graph would reject most candidates: ef_search had to grow with
every tenant's share of the store, 10x for a 10 % tenant). HNSW over `halfvec` (pgvector ≥ 0.7: half the index
memory, same recall at these dimensions), else over `vector`; one partitioned index per (model, dim), with
`m` / `ef_construction` from `retrieval.hnsw_m` / `retrieval.hnsw_ef_construction`, created at the first vector
write of a model (or `ensure_vector_indexes()` after `flywheel store copy`) and built on every partition.
Searches set `hnsw.ef_search` (`retrieval.hnsw_ef_search`, at least k) and, with pgvector ≥ 0.8,
`hnsw.iterative_scan = relaxed_order`, so a metadata filter that rejects most candidates keeps scanning until k
rows pass. When the scan still returns fewer than k rows (a selective filter; pgvector < 0.8) the query is re-run
exactly, so k rows come back whenever k exist. A tenant of at most `retrieval.hnsw_exact_below` chunks is
searched exactly (a scan of its partition beats a graph walk). `last_dense` says which path ran.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
from sqlalchemy import Float, Text, bindparam, cast, column, desc, func, literal, select, text, true, values
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.types import UserDefinedType

from flywheel.errors import UserError
from flywheel.retrieval.index.base import Index, Scored, filter_clauses
from flywheel.store.db import sqlstate
from flywheel.store.schema_retrieval import (
    attach_partition,
    chunks,
    embeddings,
    hnsw_index_ddl,
    hnsw_index_name,
    partition_name,
    pgvector_version,
    vector_kind,
)

K1, B = 1.2, 0.75  # the BM25 constants FTS5 uses, so both engines rank alike
MAX_POSITIONS = 255  # tsvector keeps at most 256 positions per lexeme, positions ≤ 16383
CANDIDATES = 2000  # a term in more chunks than this is "common" (see above)
HNSW_DEFAULTS = {"hnsw_m": 16, "hnsw_ef_construction": 128, "hnsw_ef_search": 200, "hnsw_exact_below": 2000}
# ef_search 200: at 1M chunks in 10 tenants' graphs the smallest of 40 / 64 / 100 / 200 with recall@10 ≥ 0.95 on
# both the MiniLM-like vectors (0.991, p50 4.5 ms) and the clustered mixture (0.956, 9.3 ms); at 64 one query in
# ~85 found none of its neighbours (the graph walk stopped in another region), at 200 one in 300. See
# docs/retrieval.md, "One graph per tenant".
PARTITION_LOCK_TIMEOUT_S = 30  # attaching a partition waits for index builds on `embeddings`, never for searches
LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout ran out
MAX_EF_SEARCH = 1000  # pgvector's limit


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


class _Vec(UserDefinedType):
    """pgvector's `vector(n)` / `halfvec(n)` for casts and the query parameter."""

    cache_ok = True

    def __init__(self, kind: str, dim: int):
        self.kind, self.dim = kind, dim

    def get_col_spec(self, **kw: Any) -> str:
        return f"{self.kind}({self.dim})"

    def bind_processor(self, dialect: Any) -> Any:
        return lambda v: None if v is None else "[" + ",".join(f"{float(x):.8g}" for x in v) + "]"


class PostgresIndex(Index):
    dialect = "postgresql"

    def __init__(self, store: Any, config: Any = None):
        super().__init__(store)
        self.hnsw = {k: int(d if getattr(config, k, None) is None else getattr(config, k))
                     for k, d in HNSW_DEFAULTS.items()}
        self._hnsw: set[tuple[str, int]] = set()
        self._partitions: set[str] = set()  # tenants whose `embeddings` partition is known to be attached
        self._lock = threading.Lock()
        self._pgvector: tuple[int, ...] | None = None
        self._stats: dict[str, tuple[int, float, float, dict[str, int]]] = {}  # tenant -> (version, n, avgdl, df)
        self.last_keyword: dict[str, Any] = {}
        self.last_dense: dict[str, Any] = {}  # how the last dense() ran: path, ef_search, counts

    def _prepare_row(self, row: dict) -> dict:
        return {**row, "tsv": tsvector_literal(row["tokens"].split())}

    def _insert_ignore(self, tbl: Any) -> Any:
        return pg_insert(tbl).on_conflict_do_nothing()

    def _encode_vector(self, v: np.ndarray) -> np.ndarray:
        return np.asarray(v, dtype=np.float32)

    def _decode_vector(self, v: Any) -> np.ndarray:
        return np.asarray(v, dtype=np.float32)

    def pgvector_version(self) -> tuple[int, ...]:
        if self._pgvector is None:
            with self.engine.connect() as conn:
                self._pgvector = pgvector_version(conn)
        return self._pgvector

    # ---------------------------------------------------------------- keyword (BM25 in SQL)

    def _tenant_stats(self, conn: Any, tenant: str, terms: list[str]) -> tuple[float, float, dict[str, int]]:
        """(chunks, average length, {term: chunks containing it}) of the tenant, cached until its next write."""
        version = self.version(conn, tenant)
        cached = self._stats.get(tenant)
        if cached is None or cached[0] != version or len(cached[3]) > 50_000:
            n, avgdl = conn.execute(select(cast(func.count(), Float),
                                           cast(func.coalesce(func.avg(chunks.c.n_tokens), 1.0), Float))
                                    .where(chunks.c.tenant == tenant)).one()
            cached = (version, float(n), float(avgdl), {})
        df = cached[3]
        for term in terms:
            if term not in df:  # one GIN lookup per new term
                df[term] = int(conn.execute(select(func.count()).select_from(chunks).where(
                    chunks.c.tenant == tenant, chunks.c.tsv.op("@@")(
                        cast(bindparam("tsq", tsquery_literal([term])), TSQUERY)))).scalar() or 0)
        with self._lock:
            self._stats[tenant] = cached
        return cached[1], cached[2], {t: df[t] for t in terms}

    def _score(self, conn: Any, where: list[Any], weights: dict[str, float], avgdl: float, n: int) -> Scored:
        lex = func.unnest(chunks.c.tsv).table_valued("lexeme", "positions", "weights").lateral("u")
        w = values(column("term", Text), column("idf", Float), name="w").data(list(weights.items()))
        tf = cast(func.coalesce(func.array_length(lex.c.positions, 1), 1), Float)
        norm = K1 * (1.0 - B + B * cast(chunks.c.n_tokens, Float) / max(avgdl, 1.0))
        score = func.sum(w.c.idf * tf * (K1 + 1.0) / (tf + norm)).label("score")
        q = (select(chunks.c.pk, score).select_from(chunks.join(lex, true()).join(w, w.c.term == lex.c.lexeme))
             .where(*where).group_by(chunks.c.pk).order_by(desc("score"), chunks.c.pk).limit(n))
        return [(int(pk), float(s)) for pk, s in conn.execute(q)]

    def keyword(self, tenant: str, tokens: list[str], n: int, filters: dict | None = None) -> Scored:
        terms = list(dict.fromkeys(t for t in tokens if len(t.encode("utf-8")) < 2000))
        if not terms:
            return []
        with self.engine.connect() as conn:
            total, avgdl, df = self._tenant_stats(conn, tenant, terms)
            present = [t for t in terms if df[t]]
            if not present:
                return []
            idf = {t: float(np.log(1.0 + (total - df[t] + 0.5) / (df[t] + 0.5))) for t in present}
            rare = [t for t in present if df[t] <= CANDIDATES]
            common = [t for t in present if df[t] > CANDIDATES]
            base = [chunks.c.tenant == tenant, *filter_clauses(filters)]

            def matching(words: list[str]) -> Any:
                return chunks.c.tsv.op("@@")(cast(literal(tsquery_literal(words)), TSQUERY))

            top = self._score(conn, [*base, matching(rare)], idf, avgdl, n) if rare else []
            scored, exact = sum(df[t] for t in rare), True
            bound = sum(idf[t] * (K1 + 1.0) for t in common)
            if common and (len(top) < n or top[-1][1] < bound):
                # chunks with only common words could still rank: score at most CANDIDATES of them
                where = [*base, matching(common)] + ([~matching(rare)] if rare else [])
                pks = [r[0] for r in conn.execute(select(chunks.c.pk).where(*where).limit(CANDIDATES + 1))]
                exact = len(pks) <= CANDIDATES
                extra = self._score(conn, [chunks.c.pk.in_(pks[:CANDIDATES])], idf, avgdl, n) if pks else []
                top = sorted(top + extra, key=lambda r: (-r[1], r[0]))[:n]
                scored += len(pks[:CANDIDATES])
        self.last_keyword = {"scored": scored, "exact": exact, "common_terms": len(common)}
        return top

    def doc_freqs(self, tenant: str, terms: list[str]) -> tuple[int, dict[str, int]]:
        unique = list(dict.fromkeys(t for t in terms if len(t.encode("utf-8")) < 2000))
        with self.engine.connect() as conn:
            total = self.tenant_chunks(conn, tenant)
            df = self._tenant_stats(conn, tenant, unique)[2] if unique else {}
        return total, df

    # ---------------------------------------------------------------- vectors (pgvector HNSW)

    def vector_kind(self, dim: int) -> str | None:
        """The type the HNSW index of `dim`-dimensional vectors is built over (None: too wide for HNSW)."""
        return vector_kind(self.pgvector_version(), dim)

    def hnsw_index_name(self, model: str, dim: int) -> str:
        return hnsw_index_name(model, dim, self.vector_kind(dim))

    def prepare_tenants(self, tenants: Iterable[str]) -> None:
        """Attach the `embeddings` partition of each tenant that has none yet, each in a short transaction of its
        own on another connection (the caller's write transaction must not have touched `embeddings`: ATTACH
        would wait for it). An advisory lock serialises processes attaching the same tenant."""
        new = [t for t in dict.fromkeys(tenants) if t not in self._partitions]
        if not new:
            return
        with self.engine.connect() as conn:
            for tenant in new:
                name = partition_name(tenant)
                try:
                    with conn.begin():
                        conn.execute(text(f"SET LOCAL lock_timeout = '{PARTITION_LOCK_TIMEOUT_S}s'"))
                        conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(name))))
                        attached = conn.execute(text(
                            "SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                            "WHERE c.relname = :name AND i.inhparent = 'embeddings'::regclass"),
                            {"name": name}).first()
                        if attached is None:
                            attach_partition(conn, tenant)
                except Exception as exc:
                    if sqlstate(exc) != LOCK_NOT_AVAILABLE:
                        raise
                    raise UserError(
                        f"tenant {tenant!r}: its vectors were not written, the table `embeddings` stayed locked "
                        f"by another session for {PARTITION_LOCK_TIMEOUT_S} s (an index build, a migration?)",
                        hint="run the command again once it is done; chunks already ingested are keyword-"
                             "searchable, and `flywheel embed` adds their vectors") from None
                self._partitions.add(tenant)

    def on_new_vectors(self, conn: Any, model: str, dim: int) -> None:
        """Create the HNSW index of (model, dim) unless it exists. Called before the transaction's first insert
        into `embeddings`: CREATE INDEX takes a SHARE lock on the table and every partition (even IF NOT EXISTS,
        even when the index is there), which waits for other transactions' inserts (ROW EXCLUSIVE); two writers
        that had each inserted, then both asked for it, deadlocked. So an existing index is found in the catalog
        without any lock, and creators queue on an advisory lock, holding no lock on the table meanwhile."""
        if (model, dim) in self._hnsw:
            return
        kind = self.vector_kind(dim)
        if kind is not None and not self._has_index(conn, self.hnsw_index_name(model, dim)):
            conn.execute(text(hnsw_index_ddl(model, dim, kind, self.hnsw["hnsw_m"],
                                             self.hnsw["hnsw_ef_construction"])))
        self._hnsw.add((model, dim))

    @staticmethod
    def _has_index(conn: Any, name: str) -> bool:
        """Whether the index `name` on `embeddings` exists, once no other writer is creating it (a transaction-level
        advisory lock: the creator's commit releases it)."""
        conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(name))))
        return conn.execute(text(
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = :name AND i.indrelid = 'embeddings'::regclass"), {"name": name}).first() is not None

    def ensure_vector_indexes(self) -> list[str]:
        """Create the HNSW index of every (model, dim) stored (after a bulk copy); returns their names."""
        with self.engine.connect() as conn:
            pairs = conn.execute(select(embeddings.c.model, embeddings.c.dim).distinct()).all()
        names = []
        for model, dim in pairs:
            with self.transaction() as conn:
                self.on_new_vectors(conn, model, int(dim))
            names.append(self.hnsw_index_name(model, int(dim)))
        return names

    def ensure_model_index(self, model: str) -> None:
        """The HNSW index of `model`, created if its vectors have none (dropped to rebuild it with other
        `hnsw_m` / `hnsw_ef_construction`): the embed stage checks once per process, even with nothing to embed
        (the index used to be made only by a write of new vectors)."""
        if any(m == model for m, _dim in self._hnsw):
            return
        with self.engine.connect() as conn:
            dim = conn.execute(select(embeddings.c.dim).where(embeddings.c.model == model).limit(1)).scalar()
        if dim is not None:
            with self.transaction() as conn:
                self.on_new_vectors(conn, model, int(dim))

    def dense(self, tenant: str, model: str, vector: np.ndarray, n: int, filters: dict | None = None) -> Scored:
        dim = int(vector.shape[0])
        kind = self.vector_kind(dim) or "vector"
        vtype = _Vec(kind, dim)
        distance = cast(embeddings.c.vector, vtype).op("<=>", return_type=Float)(
            bindparam("qv", np.asarray(vector, dtype=np.float32), type_=vtype))
        # the tenant as a literal: the planner prunes to its partition and walks that partition's graph
        base = (select(chunks.c.pk, (1.0 - distance).label("sim"))
                .select_from(embeddings.join(chunks, (chunks.c.embed_hash == embeddings.c.hash)
                                             & (chunks.c.tenant == embeddings.c.tenant)))
                .where(embeddings.c.tenant == bindparam("tenant", tenant, literal_execute=True),
                       embeddings.c.model == bindparam("model", model, literal_execute=True),
                       embeddings.c.dim == bindparam("dim", dim, literal_execute=True),
                       *filter_clauses(filters))
                .limit(n))
        exact_query = base.order_by(distance + 0.0, chunks.c.pk)  # an ORDER BY the index cannot serve
        with self.engine.connect() as conn, conn.begin():
            mine = self.tenant_chunks(conn, tenant)
            ef = None if mine <= self.hnsw["hnsw_exact_below"] else self.ef_search(n)
            if ef is None:
                rows, path = conn.execute(exact_query).all(), "exact"
            else:
                conn.execute(text(f"SET LOCAL hnsw.ef_search = {ef}"))
                if self.pgvector_version() >= (0, 8):
                    conn.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
                rows, path = conn.execute(base.order_by(distance)).all(), "hnsw"
                if len(rows) < n:  # the filtered scan kept fewer than n: exact over the tenant's rows
                    rows, path = conn.execute(exact_query).all(), "hnsw+exact"
        self.last_dense = {"path": path, "ef_search": ef or 0, "tenant_chunks": mine}
        # relaxed_order may return neighbours slightly out of order
        return sorted(((int(pk), float(sim)) for pk, sim in rows), key=lambda r: (-r[1], r[0]))

    def ef_search(self, n: int) -> int:
        """hnsw.ef_search for a search of `n` rows: as configured, at least n, at most pgvector's 1000. The
        tenant's own graph needs no more (its partition holds only its vectors)."""
        return min(MAX_EF_SEARCH, max(self.hnsw["hnsw_ef_search"], n))


def copy_transforms(dialect: str, index: Index | None = None) -> dict[str, Any]:
    """Per-table row fixes for `flywheel store copy` into `dialect`: the chunks' tsvector exists on PostgreSQL
    only (SQLite's FTS5 table is filled by its triggers from `tokens`), so it is rebuilt from the tokens; on
    PostgreSQL (`index`: the target's), each batch of vectors first gets its tenants' partitions."""

    def chunk_rows(rows: list[dict]) -> list[dict]:
        for row in rows:
            row["tsv"] = tsvector_literal(row["tokens"].split()) if dialect == "postgresql" else None
        return rows

    def vector_rows(rows: list[dict]) -> list[dict]:
        if index is not None:
            index.prepare_tenants(r["tenant"] for r in rows)
        return rows

    return {"chunks": chunk_rows, "embeddings": vector_rows}

"""What both index engines share: the tables, writes (one transaction per batch), the embedding cache,
metadata filters and fetching chunks. Engines add keyword search and vector search (sqlite.py, postgres.py).

Every read takes the tenant and puts it in the WHERE clause of the storage query itself, next to the filters,
so a query for tenant A can never see tenant B's rows, and a filtered query still returns n rows when n match.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from sqlalchemy import Connection, bindparam, case, delete, false, func, insert, or_, select, update

from flywheel.errors import UserError
from flywheel.store.schema_retrieval import chunks, embeddings, ingested_files, retrieval_tenants
from flywheel.types import Chunk

# Statements the ingest runs for every file, built once (constructing and cache-keying them each time cost
# more than SQLite's work for these point reads and writes).
_FILE_WHERE = (ingested_files.c.tenant == bindparam("w_tenant"), ingested_files.c.source == bindparam("w_source"))
_FILE_STATE = select(ingested_files).where(*_FILE_WHERE)
_COUNT_SOURCE = select(func.count()).select_from(chunks).where(
    chunks.c.tenant == bindparam("w_tenant"), chunks.c.source == bindparam("w_source"))
_BUMP = update(retrieval_tenants).where(retrieval_tenants.c.tenant == bindparam("w_tenant")).values(
    version=retrieval_tenants.c.version + 1, chunks=retrieval_tenants.c.chunks + bindparam("w_added"),
    updated_at=bindparam("w_now"))
_SET_FILE_STATE: dict[tuple[str, ...], Any] = {}  # update statement by the fields it sets

COLUMN_FILTERS = {"source", "doc_id", "location", "title", "lang", "id"}
Scored = list[tuple[int, float]]  # (chunk pk, score: higher is better)
FETCH_COLUMNS = ("pk", "id", "doc_id", "tenant", "source", "ordinal", "location", "text", "tokens", "metadata")


def chunk_from_row(row: Any, metadata: dict | None) -> tuple[Chunk, str]:
    """(Chunk, its keyword tokens) from a row with the FETCH_COLUMNS."""
    chunk = Chunk(id=row["id"], doc_id=row["doc_id"], text=row["text"], source=row["source"], tenant=row["tenant"],
                  location=row["location"], ordinal=row["ordinal"], metadata=dict(metadata or {}))
    return chunk, row["tokens"]


def filter_clauses(filters: dict[str, Any] | None) -> list[Any]:
    """SQL conditions for metadata filters: {key: value} is equality, {key: [a, b]} is "any of".
    Keys are chunk columns (source, doc_id, location, title, lang) or fields of the chunk metadata."""
    out: list[Any] = []
    for key, value in (filters or {}).items():
        values = list(value) if isinstance(value, (list, tuple, set)) else [value]
        if not values:
            out.append(false())
            continue
        if key in COLUMN_FILTERS:
            out.append(chunks.c[key].in_([str(v) for v in values]))
            continue
        if not isinstance(key, str) or not key or len(key) > 100:
            raise UserError(f"bad filter key {key!r}", hint="filter keys are metadata field names")
        field = chunks.c.metadata[key]
        conds = []
        for v in values:
            if isinstance(v, bool):
                conds.append(field.as_boolean() == v)
            elif isinstance(v, int):
                conds.append(field.as_integer() == v)
            elif isinstance(v, float):
                conds.append(field.as_float() == v)
            elif isinstance(v, str):
                conds.append(field.as_string() == v)
            else:
                raise UserError(f"filter {key}={v!r}: values must be strings, numbers or booleans",
                                hint="pass a scalar or a list of scalars")
        out.append(or_(*conds))
    return out


class Index(ABC):
    dialect: str

    def __init__(self, store: Any):
        self.store = store
        self.engine = store.engine

    # ---------------------------------------------------------------- transactions

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE, so concurrent writers queue instead of failing)."""
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                yield conn

    # ---------------------------------------------------------------- ingest bookkeeping

    def file_state(self, tenant: str, source: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(_FILE_STATE, {"w_tenant": tenant, "w_source": source}).mappings().first()
        return dict(row) if row else None

    def sources(self, tenant: str) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(ingested_files.c.source).where(ingested_files.c.tenant == tenant))
            return [r[0] for r in rows]

    def stale_tokenizer_files(self, tenant: str, current: str) -> tuple[int, int, list[str]]:
        """(the tenant's ingested files, how many were indexed by a keyword tokenizer version other than
        `current`, up to 3 of their sources); a file indexed before versions were recorded counts as "1"."""
        mine = ingested_files.c.tenant == tenant
        stale = func.coalesce(ingested_files.c.tokenizer, "1") != current
        with self.engine.connect() as conn:
            total, n_stale = conn.execute(select(func.count(), func.sum(case((stale, 1), else_=0)))
                                          .where(mine)).one()
            examples = [r[0] for r in conn.execute(select(ingested_files.c.source).where(mine, stale)
                                                   .order_by(ingested_files.c.source).limit(3))] if n_stale else []
        return int(total or 0), int(n_stale or 0), examples

    def doc_ids(self, tenant: str, source: str) -> set[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(chunks.c.doc_id).distinct().where(
                chunks.c.tenant == tenant, chunks.c.source == source))
            return {r[0] for r in rows}

    def count_source(self, conn: Connection, tenant: str, source: str) -> int:
        return int(conn.execute(_COUNT_SOURCE, {"w_tenant": tenant, "w_source": source}).scalar() or 0)

    def set_file_state(self, conn: Connection, tenant: str, source: str, **fields: Any) -> None:
        fields["updated_at"] = time.time()
        names = tuple(fields)
        stmt = _SET_FILE_STATE.get(names)
        if stmt is None:
            stmt = _SET_FILE_STATE[names] = update(ingested_files).where(*_FILE_WHERE).values(
                {name: bindparam(f"v_{name}") for name in names})
        done = conn.execute(stmt, {"w_tenant": tenant, "w_source": source,
                                   **{f"v_{name}": value for name, value in fields.items()}})
        if not done.rowcount:
            conn.execute(insert(ingested_files).values(tenant=tenant, source=source, **fields))

    def delete_source(self, conn: Connection, tenant: str, source: str, *, forget: bool = False) -> int:
        """Remove a file's chunks (and with `forget`, its ingest record). Returns the chunks removed."""
        n = conn.execute(delete(chunks).where(chunks.c.tenant == tenant, chunks.c.source == source)).rowcount or 0
        if forget:
            conn.execute(delete(ingested_files).where(
                ingested_files.c.tenant == tenant, ingested_files.c.source == source))
        self.bump(conn, tenant, -n)
        return n

    def insert_chunks(self, conn: Connection, rows: list[dict]) -> int:
        """Insert chunks, skipping ids already stored (ids are content hashes, so an existing row is the same
        chunk: two processes ingesting the same files end with one copy, neither fails). Returns rows added."""
        added = 0
        for tenant in dict.fromkeys(r["tenant"] for r in rows):
            part = [self._prepare_row(r) for r in rows if r["tenant"] == tenant]
            n = conn.execute(self._insert_ignore(chunks), part).rowcount
            n = len(part) if n is None or n < 0 else n  # a driver without a summed executemany rowcount
            if n:
                self.bump(conn, tenant, n)
            added += n
        return added

    def _prepare_row(self, row: dict) -> dict:
        return row

    def bump(self, conn: Connection, tenant: str, added: int = 0) -> None:
        """Advance the tenant's write counter (in-memory caches compare it to know they are stale) and keep its
        chunk count, in the same transaction as the write."""
        params = {"w_tenant": tenant, "w_added": added, "w_now": time.time()}
        if not conn.execute(_BUMP, params).rowcount:
            # a new tenant: two ingests (shards) may both get here; a plain INSERT made the second fail
            self._ensure_tenant_row(conn, tenant)
            conn.execute(_BUMP, params)

    def _ensure_tenant_row(self, conn: Connection, tenant: str) -> None:
        """The tenant's counter row, created at zero unless another writer made it first (on PostgreSQL the
        insert waits for that writer's commit, and the statement after it sees the committed row)."""
        conn.execute(self._insert_ignore(retrieval_tenants).values(tenant=tenant, version=0, chunks=0,
                                                                  updated_at=time.time()))

    def chunk_counts(self, conn: Connection, tenant: str) -> tuple[int, int]:
        """(chunks of the tenant, chunks of all tenants) from the counters, without scanning `chunks`."""
        counted = retrieval_tenants.c.chunks
        mine, everyone = conn.execute(select(func.sum(case((retrieval_tenants.c.tenant == tenant, counted), else_=0)),
                                             func.sum(counted))).one()
        return int(mine or 0), int(everyone or 0)

    def tenant_chunks(self, conn: Connection, tenant: str) -> int:
        """Chunks of the tenant, from its counter row (one primary-key read, however many tenants there are)."""
        n = conn.execute(select(retrieval_tenants.c.chunks).where(retrieval_tenants.c.tenant == tenant)).scalar()
        return int(n or 0)

    def version(self, conn: Connection, tenant: str) -> int:
        v = conn.execute(select(retrieval_tenants.c.version).where(retrieval_tenants.c.tenant == tenant)).scalar()
        return int(v or 0)

    def write_version(self, tenant: str) -> int:
        """The tenant's write counter on its own connection: what a cache kept outside the index (the
        retriever's stale-tokenizer count) compares to know a write, from any process, happened since."""
        with self.engine.connect() as conn:
            return self.version(conn, tenant)

    def refresh_languages(self, tenant: str) -> dict[str, int]:
        with self.transaction() as conn:
            rows = conn.execute(select(chunks.c.lang, func.count()).where(chunks.c.tenant == tenant)
                                .group_by(chunks.c.lang)).all()
            langs = {lang: int(n) for lang, n in rows}
            set_langs = (update(retrieval_tenants).where(retrieval_tenants.c.tenant == tenant)
                         .values(languages=langs, updated_at=time.time()))
            if not conn.execute(set_langs).rowcount:
                self._ensure_tenant_row(conn, tenant)
                conn.execute(set_langs)
        return langs

    def languages(self, tenant: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            v = conn.execute(select(retrieval_tenants.c.languages).where(retrieval_tenants.c.tenant == tenant)
                             ).scalar()
        return dict(v or {})

    def count(self, tenant: str | None = None) -> int:
        q = select(func.count()).select_from(chunks)
        if tenant is not None:
            q = q.where(chunks.c.tenant == tenant)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar() or 0)

    def tenants(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(chunks.c.tenant).distinct())]

    # ---------------------------------------------------------------- embedding cache

    def get_embeddings(self, model: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Stored vectors of `model` by text hash, whichever tenant's they are (the same text, the same vector).
        The tenants that may hold them are those with a chunk of the text (one index of `chunks`, however many
        tenants there are), plus '' (vectors no chunk used when the store was migrated): on PostgreSQL only their
        partitions are read, not every tenant's."""
        wanted = list(dict.fromkeys(hashes))
        out: dict[str, np.ndarray] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                part = wanted[start:start + 500]
                owners = {t for (t,) in conn.execute(
                    select(chunks.c.tenant).where(chunks.c.embed_hash.in_(part)).distinct())}
                rows = conn.execute(select(embeddings.c.hash, embeddings.c.vector).where(
                    embeddings.c.model == model, embeddings.c.hash.in_(part),
                    embeddings.c.tenant.in_(sorted(owners | {""}))))
                for h, vec in rows:
                    out[h] = self._decode_vector(vec)
        return out

    def prepare_tenants(self, tenants: Iterable[str]) -> None:
        """Make room for the tenants' vectors before a write transaction (PostgreSQL attaches their partitions;
        call it outside any transaction that touched `embeddings`)."""

    def put_embeddings(self, conn: Connection, model: str, vectors: dict[str, np.ndarray], tenant: str) -> None:
        """Store the tenant's vectors of `model` (by text hash); ones it already has are kept."""
        if not vectors:
            return
        self.prepare_tenants([tenant])
        # before the insert: a transaction holding its insert's lock must never wait to build the index
        self.on_new_vectors(conn, model, int(next(iter(vectors.values())).shape[0]))
        rows = [{"model": model, "hash": h, "tenant": tenant, "dim": int(v.shape[0]),
                 "vector": self._encode_vector(v)} for h, v in vectors.items()]
        conn.execute(self._insert_ignore(embeddings), rows)

    def _missing(self, q: Any, tenant: str | None, model: str, languages: Collection[str] | None) -> Any:
        have = select(embeddings.c.hash).where(embeddings.c.model == model, embeddings.c.hash == chunks.c.embed_hash,
                                               embeddings.c.tenant == chunks.c.tenant)
        q = q.where(~have.exists())
        if tenant is not None:
            q = q.where(chunks.c.tenant == tenant)
        if languages is not None:
            q = q.where(or_(chunks.c.lang.in_(sorted(languages)), chunks.c.lang == "", chunks.c.lang.is_(None)))
        return q

    def missing_embeddings(self, tenant: str | None, model: str, limit: int = 10000,
                           languages: Collection[str] | None = None, after_pk: int = 0) -> list[dict]:
        """Chunks (of the tenant, or of all tenants) without a vector for `model`, in pk order after `after_pk`;
        with `languages`, only chunks in those languages or of no language (the ones an embedder covering
        `languages` should embed). This is the embed stage's queue (embed.py)."""
        q = self._missing(select(chunks.c.pk, chunks.c.tenant, chunks.c.embed_hash, chunks.c.title,
                                 chunks.c.location, chunks.c.text).where(chunks.c.pk > after_pk),
                          tenant, model, languages)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q.order_by(chunks.c.pk).limit(limit)).mappings()]

    def count_missing_embeddings(self, tenant: str | None, model: str,
                                 languages: Collection[str] | None = None) -> int:
        q = self._missing(select(func.count()).select_from(chunks), tenant, model, languages)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar() or 0)

    def embedding_coverage(self, tenant: str, model: str, languages: Collection[str] | None
                           ) -> tuple[int, int, int]:
        """(chunks, chunks with a vector for `model`, chunks waiting for one) of the tenant."""
        with_vector = (select(func.count()).select_from(
            chunks.join(embeddings, (embeddings.c.hash == chunks.c.embed_hash) & (embeddings.c.model == model)
                        & (embeddings.c.tenant == chunks.c.tenant)))
            .where(chunks.c.tenant == tenant))
        with self.engine.connect() as conn:
            embedded = int(conn.execute(with_vector).scalar() or 0)
            total = int(conn.execute(select(func.count()).select_from(chunks).where(chunks.c.tenant == tenant)
                                     ).scalar() or 0)
        return total, embedded, self.count_missing_embeddings(tenant, model, languages)

    def other_models(self, tenant: str, model: str) -> dict[str, int]:
        """{model name: chunks of the tenant with a vector of it} for the models other than `model`: vectors from
        another embedder or precision (all-MiniLM-L6-v2 before int8 was the default), which search does not use."""
        q = (select(embeddings.c.model, func.count()).select_from(
            chunks.join(embeddings, (embeddings.c.hash == chunks.c.embed_hash)
                        & (embeddings.c.tenant == chunks.c.tenant)))
             .where(chunks.c.tenant == tenant, embeddings.c.model != model).group_by(embeddings.c.model))
        with self.engine.connect() as conn:
            return {str(name): int(n) for name, n in conn.execute(q)}

    def on_new_vectors(self, conn: Connection, model: str, dim: int) -> None:
        """Hook, called before vectors of (model, dim) are inserted in `conn`'s transaction: PostgreSQL creates the
        model's HNSW index here."""

    def ensure_vector_indexes(self) -> list[str]:
        """Build the vector indexes of every stored model (after a bulk copy); none on SQLite."""
        return []

    def ensure_model_index(self, model: str) -> None:
        """Create the vector index of `model`'s stored vectors if it is missing (PostgreSQL; none on SQLite)."""

    @abstractmethod
    def _insert_ignore(self, table: Any) -> Any: ...

    @abstractmethod
    def _encode_vector(self, v: np.ndarray) -> Any: ...

    @abstractmethod
    def _decode_vector(self, v: Any) -> np.ndarray: ...

    # ---------------------------------------------------------------- reads

    @abstractmethod
    def keyword(self, tenant: str, tokens: list[str], n: int, filters: dict | None = None) -> Scored:
        """BM25 over the pre-segmented tokens, best first."""

    @abstractmethod
    def dense(self, tenant: str, model: str, vector: np.ndarray, n: int, filters: dict | None = None) -> Scored:
        """Exact or HNSW cosine similarity, best first."""

    @abstractmethod
    def doc_freqs(self, tenant: str, terms: list[str]) -> tuple[int, dict[str, int]]:
        """(number of chunks, {term: chunks containing it}) for BM25 idf and the relevance floor."""

    def fetch(self, pks: Iterable[int], tenant: str) -> dict[int, tuple[Chunk, str]]:
        """{pk: (Chunk, its keyword tokens)} for the tenant's chunks among `pks` (others are never returned)."""
        wanted = list(pks)
        out: dict[int, tuple[Chunk, str]] = {}
        if not wanted:
            return out
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                for r in conn.execute(select(*(chunks.c[name] for name in FETCH_COLUMNS)).where(
                        chunks.c.pk.in_(wanted[start:start + 500]),
                        # `|| ''` keeps SQLite on the primary key instead of scanning the tenant index
                        (chunks.c.tenant + "") == tenant)).mappings():
                    out[r["pk"]] = chunk_from_row(r, r["metadata"])
        return out

    def invalidate(self, tenant: str | None = None) -> None:
        """Drop in-memory caches (SQLite vector matrices)."""

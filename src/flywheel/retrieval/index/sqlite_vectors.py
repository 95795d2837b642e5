"""The in-memory vectors of one (tenant, model) on SQLite, kept current incrementally.

At a million chunks the matrix is 1.5 GB of float32; reloading it after every write (the ingest of one file,
one window of the embed stage) would make search stall for seconds and, loaded through a list of BLOBs, briefly
hold it three times. So:

- Writes only append: chunk primary keys come from AUTOINCREMENT (never reused) and `embeddings` rows from
  the rowid sequence. What is new since the last look is the chunks with a larger pk (with their vectors, often
  already cached) and the vectors with a larger rowid (chunks the embed stage reached). Both are read by range
  scans and appended as a new segment; nothing already loaded is copied.
- A delete is detected by the tenant's chunk counter (kept by `Index.bump` in the writing transaction): if the
  chunks loaded plus the chunks added since do not make the counter, a row went away and the matrix is rebuilt.
  So is a vector rowid that went backwards.
- A rebuild streams rows into one preallocated array: one copy of the vectors per process, never more.
- Segments are merged when there are many small ones, so a search stays a few BLAS matrix-vector products.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

import numpy as np

MAX_SEGMENTS = 8
_FETCH_ROWS = 4096

# No ORDER BY: SQLite would sort every row, vectors included, in a temporary B-tree (1.5 GB more at 1M rows);
# the pks array keeps each row's identity whatever the order.
# Chunks and vectors of the tenant, all at once (a rebuild) or those with pk in (lo, hi] (what was added).
CHUNK_VECTORS = ("SELECT c.pk, e.vector FROM chunks c JOIN embeddings e ON e.hash = c.embed_hash AND e.model = ? "
                  "AND e.tenant = c.tenant WHERE c.pk > ? AND c.pk <= ? AND c.tenant = ?")
# Vectors added with rowid in (lo, hi] for chunks that were already loaded (pk <= the last pk seen).
_NEW_VECTORS = ("SELECT c.pk, e.vector FROM embeddings e JOIN chunks c ON c.embed_hash = e.hash "
                "AND c.tenant = e.tenant WHERE e.rowid > ? AND e.rowid <= ? AND e.model = ? AND c.tenant = ? AND c.pk <= ?")
_STAMP = ("SELECT (SELECT version FROM retrieval_tenants WHERE tenant = ?), "
          "(SELECT chunks FROM retrieval_tenants WHERE tenant = ?), "
          "(SELECT max(rowid) FROM embeddings), (SELECT max(pk) FROM chunks)")
_NEW_CHUNKS = "SELECT count(*) FROM chunks WHERE pk > ? AND pk <= ? AND tenant = ?"


@dataclass(frozen=True)
class Stamp:
    version: int  # the tenant's write counter
    chunks: int  # the tenant's chunk counter
    vector_rowid: int  # max rowid of `embeddings`
    chunk_pk: int  # max pk of `chunks`

    @classmethod
    def read(cls, db: sqlite3.Connection, tenant: str) -> Stamp:
        row = db.execute(_STAMP, (tenant, tenant)).fetchone()
        return cls(*(int(v or 0) for v in row))

    def same(self, other: Stamp) -> bool:
        return (self.version, self.vector_rowid) == (other.version, other.vector_rowid)


@dataclass
class VectorMatrix:
    """Segments of (pks, float32 vectors) and the stamp of the snapshot they reflect."""

    stamp: Stamp
    segments: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    rebuilds: int = 0  # full loads (tests and the benchmark read these)
    appends: int = 0

    @property
    def size(self) -> int:
        return sum(len(p) for p, _ in self.segments)

    @property
    def dim(self) -> int:
        return next((v.shape[1] for _, v in self.segments if len(v)), 0)

    def pks(self) -> np.ndarray:
        parts = [p for p, _ in self.segments]
        return np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.zeros(0, np.int64))

    def scores(self, vector: np.ndarray) -> np.ndarray:
        q = vector.astype(np.float32)
        parts = [v @ q for _, v in self.segments if len(v)]
        return np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.zeros(0, np.float32))


def load(db: sqlite3.Connection, tenant: str, model: str) -> VectorMatrix:
    """Everything, from one read snapshot (the caller's transaction)."""
    stamp = Stamp.read(db, tenant)
    # the chunk counter bounds the rows: pages of the array never filled are never touched (not resident)
    segment = _read(db.execute(CHUNK_VECTORS, (model, 0, stamp.chunk_pk, tenant)), stamp.chunks)
    return VectorMatrix(stamp, [segment] if len(segment[0]) else [], rebuilds=1)


def refresh(matrix: VectorMatrix, db: sqlite3.Connection, tenant: str, model: str) -> VectorMatrix:
    """`matrix` brought up to the caller's snapshot: a new matrix sharing its segments plus the rows added, or
    rebuilt after a delete. `matrix` itself is left as it was (a search running on it in another thread)."""
    old, new = matrix.stamp, Stamp.read(db, tenant)
    if old.same(new):
        return matrix
    if not appendable(db, tenant, old, new):
        rebuilt = load(db, tenant, model)  # a delete (or a vector removed): positions moved
        rebuilt.rebuilds += matrix.rebuilds
        rebuilt.appends = matrix.appends
        return rebuilt
    fresh = added_rows(db, tenant, model, old, new)
    out = VectorMatrix(new, list(matrix.segments), matrix.rebuilds, matrix.appends)
    dim = matrix.dim
    for pks, vectors in fresh:
        if not len(pks):
            continue
        if dim and vectors.shape[1] != dim:  # same model name, other dimension: start over
            return load(db, tenant, model)
        out.segments.append((pks, vectors))
        out.appends += 1
    _compact(out)
    return out


def appendable(db: sqlite3.Connection, tenant: str, old: Stamp, new: Stamp) -> bool:
    """Whether `new` only added rows to `old` (else a chunk or a vector went away: positions moved)."""
    added = int(db.execute(_NEW_CHUNKS, (old.chunk_pk, new.chunk_pk, tenant)).fetchone()[0])
    return not (new.vector_rowid < old.vector_rowid or new.chunk_pk < old.chunk_pk or old.chunks + added != new.chunks)


def added_rows(db: sqlite3.Connection, tenant: str, model: str, old: Stamp,
               new: Stamp) -> list[tuple[np.ndarray, np.ndarray]]:
    """(pks, vectors) of the chunks added since `old`, then of the vectors that older chunks got since."""
    return [_read(db.execute(CHUNK_VECTORS, (model, old.chunk_pk, new.chunk_pk, tenant))),
            _read(db.execute(_NEW_VECTORS, (old.vector_rowid, new.vector_rowid, model, tenant, old.chunk_pk)))]


def _compact(matrix: VectorMatrix) -> None:
    """Merge the small segments (everything after the largest) once there are too many."""
    if len(matrix.segments) <= MAX_SEGMENTS:
        return
    big = max(range(len(matrix.segments)), key=lambda i: len(matrix.segments[i][0]))
    rest = [s for i, s in enumerate(matrix.segments) if i != big]
    merged = (np.concatenate([p for p, _ in rest]), np.concatenate([v for _, v in rest]))
    matrix.segments = [matrix.segments[big], merged]


def _read(cursor: sqlite3.Cursor, expected: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(pks, vectors) from rows of (pk, float32 BLOB), copied straight into one array (no list of BLOBs)."""
    pks: list[int] = []
    capacity = expected or 0
    vectors: np.ndarray | None = None
    n = 0
    while True:
        rows = cursor.fetchmany(_FETCH_ROWS)
        if not rows:
            break
        if vectors is None:
            dim = len(rows[0][1]) // 4
            vectors = np.empty((max(capacity, len(rows)), dim), np.float32)
        if n + len(rows) > len(vectors):
            vectors = np.resize(vectors, (max(n + len(rows), len(vectors) * 2), vectors.shape[1]))
        for pk, blob in rows:
            vectors[n] = np.frombuffer(blob, dtype="<f4")
            pks.append(pk)
            n += 1
    if vectors is None:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    if n < len(vectors):
        vectors = vectors[:n].copy() if n < len(vectors) // 2 else vectors[:n]
    return np.asarray(pks, dtype=np.int64), vectors

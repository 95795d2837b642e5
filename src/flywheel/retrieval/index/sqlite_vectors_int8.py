"""Large corpora on SQLite: the vectors of a (tenant, model) as int8 codes in memory-mapped files beside the
database (`<db>-vectors/`), searched exactly (approximately above `binary.COARSE_MIN_ROWS`, see below).

Why: at a million 384-d chunks the float32 matrix is 1.5 GB in every process that searches, and a BLAS pass over
it reads all of that per query. Int8 codes (one scale per row) are 384 MB, live in the page cache shared by every
process that maps them, and a SIMD int8 kernel (the optional `simsimd` package) scans them in a fraction of the
time. Results stay exact: the int8 scores pick candidates, the candidates are re-scored from their float32 rows in
SQLite, and a bound on the quantisation error says whether a row outside the candidates could still beat the
k-th hit; if so, more candidates are taken (rarely needed).

From `binary.COARSE_MIN_ROWS` rows a coarse stage comes first (sqlite_vectors_binary.py): sign bits of the codes,
an eighth of their size, pick a few thousand candidates by Hamming distance, and the int8 stage above runs on
those only. That stage has no error bound, so search is exact within the candidates but approximate overall
(its recall is measured). A filter that keeps no more rows than the candidates skips it: the int8 stage scores
exactly the rows the filter keeps.

The files: immutable segment files (codes, pks, scales) plus one manifest per (tenant, model) naming the segments
and the SQLite stamp they reflect. Writes append a segment (the rows since the manifest's stamp), a delete
rebuilds, many small segments are merged; every change writes new files and swaps the manifest with an atomic
rename, under a lock file, so processes reading while one refreshes never see half a file. A manifest or segment
that is unreadable, truncated, or does not match the rows it claims (spot-checked against SQLite on first use in
a process) is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.retrieval.index import sqlite_vectors_binary as binary
from flywheel.retrieval.index.sqlite_vectors import (
    CHUNK_VECTORS,
    MAX_SEGMENTS,
    Stamp,
    VectorMatrix,
    added_rows,
    appendable,
    load,
    refresh,
)

try:  # the int8 kernel; without it search keeps the float32 matrix in memory
    import simsimd
except ImportError:  # pragma: no cover - depends on the installed extras
    simsimd = None  # type: ignore[assignment]
try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no side files
    fcntl = None  # type: ignore[assignment]

MIN_ROWS = 50_000  # below this the float32 matrix in memory is small and fast enough
THREADS = 1  # threads per scan: on a busy machine more made it slower (2 cores: 175 vs 220-236 ms at 1M)
FORMAT = 2  # 2: a `.b1` file of sign bits beside each segment
_MAGIC = b"FWI8VEC1"
_HEADER = 64
_BLOCK = 8192  # rows per read while writing the files: bounds the transient memory of a rebuild
_SPOT_CHECKS = 4
# CROSS JOIN and `tenant || ''` pin the plan to pk lookups: left to itself (no ANALYZE) SQLite walks the tenant's
# index or every embedding of the model (120 ms and 50 s for 256 rows out of 200k, against 2 ms)
_RESCORE = ("SELECT c.pk, e.vector FROM chunks c CROSS JOIN embeddings e ON e.hash = c.embed_hash AND e.model = ? "
            "AND e.tenant = c.tenant WHERE c.pk IN ({marks}) AND c.tenant || '' = ?")


def available() -> bool:
    return simsimd is not None and fcntl is not None


def folder_for(database: str | None) -> Path | None:
    """Where a database's side files go, or None when it has no file (or the int8 path is unavailable)."""
    if not available() or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(f"{database}-vectors")


def quantize(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes int8, scales, bounds): row ≈ scale * codes, |codes| ≤ 127; bound = scale * (|codes|₁/2 + dim/4)
    (see `Int8Matrix.top` for the error bound it enters)."""
    v = np.asarray(vectors, dtype=np.float32)
    scales = (np.abs(v).max(axis=1) / 127).astype(np.float32) if len(v) else np.zeros(0, np.float32)
    safe = np.where(scales > 0, scales, 1).astype(np.float32)
    codes = np.clip(np.rint(v / safe[:, None]), -127, 127).astype(np.int8)
    l1 = np.abs(codes.astype(np.int32)).sum(axis=1)
    bounds = (scales * (l1 / 2 + v.shape[1] / 4)).astype(np.float32)
    return codes, scales, bounds


@dataclass(frozen=True)
class Segment:
    name: str
    pks: np.ndarray  # int64
    scales: np.ndarray  # float32
    codes: np.ndarray  # int8 (rows, dim), memory-mapped
    bits: np.ndarray  # uint8 (rows, ceil(dim / 8)): the codes' sign bits, memory-mapped from `<name>.b1`
    max_scale: float
    max_bound: float


@dataclass
class Int8Matrix:
    """The mapped segments of one manifest and the stamp it reflects."""

    stamp: Stamp
    manifest: dict[str, Any]
    segments: list[Segment] = field(default_factory=list)
    rebuilds: int = 0  # full reads of the tenant's rows by this process
    appends: int = 0  # segments this process appended
    rows_read: int = 0  # rows this process read from SQLite to write segments

    @property
    def size(self) -> int:
        return sum(len(s.pks) for s in self.segments)

    @property
    def dim(self) -> int:
        return int(self.manifest.get("dim", 0))

    def pks(self) -> np.ndarray:
        parts = [s.pks for s in self.segments]
        return np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.zeros(0, np.int64))

    def approx(self, codes: np.ndarray, scale: float, positions: np.ndarray | None = None) -> np.ndarray:
        """Int8 scores of every row, or of the rows at `positions` (sorted, counted over all segments)."""
        parts = []
        lo = 0
        for s in self.segments:
            block, scales = s.codes, s.scales
            if positions is not None:
                a, b = np.searchsorted(positions, [lo, lo + len(s.pks)])
                local = positions[a:b] - lo
                block, scales = s.codes[local], s.scales[local]
            lo += len(s.pks)
            if len(block):
                dots = np.asarray(simsimd.cdist(codes[None], block, metric="dot", dtype="int8",
                                                out_dtype="float32", threads=THREADS))[0]
                parts.append(dots * scales * np.float32(scale))
        return np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.zeros(0, np.float32))

    def distances(self, query_bits: np.ndarray) -> np.ndarray:
        parts = [binary.distances(query_bits, s.bits) for s in self.segments if len(s.pks)]
        return np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.zeros(0, np.uint32))

    def scanned(self, codes: np.ndarray, n: int, keep: np.ndarray | None, available: int) -> np.ndarray | None:
        """Positions of the rows the int8 stage scores, None for all: those a filter keeps when they are no
        more than the coarse stage's candidates (exact), else, for a large tenant, the coarse candidates."""
        want = binary.candidates_for(n)
        if keep is not None and available <= want:
            return np.flatnonzero(keep)
        if self.size >= binary.COARSE_MIN_ROWS and available > want:
            return binary.closest(self.distances(binary.pack(codes[None])[0]), keep, want)
        return None

    def top(self, vector: np.ndarray, n: int, allowed: np.ndarray | None,
            rescore: Callable[[np.ndarray], dict[int, float]]) -> list[tuple[int, float]]:
        """The exact top `n` by inner product among the rows scanned (all of them, the rows a filter keeps, or
        the coarse stage's candidates: see `scanned`). With q ≈ s_q·c_q and row ≈ s·c (rounding errors ≤ half
        a step per component), |exact − approx| ≤ s_q·s·(|c|₁/2 + |c_q|₁/2 + dim/4) = s_q·(bound + s·|c_q|₁/2)
        ≤ err. Every row outside the candidates has approx ≤ the candidates' lowest approx, so once the n-th
        exact score is ≥ that + err, no other row can enter the top n."""
        q = np.asarray(vector, dtype=np.float32)
        codes, scales, _ = quantize(q[None])
        s_q = float(scales[0])
        pks = self.pks()
        keep = np.isin(pks, allowed) if allowed is not None else None
        available = int(keep.sum()) if keep is not None else len(pks)
        n = min(n, available)
        if n <= 0:
            return []
        positions = self.scanned(codes[0], n, keep, available)
        approx = self.approx(codes[0], s_q, positions)
        if positions is not None:
            pks, available = pks[positions], len(positions)
        elif keep is not None:
            approx = np.where(keep, approx, np.float32(-np.inf))
        l1_q = float(np.abs(codes[0].astype(np.int32)).sum())
        max_scale = max(s.max_scale for s in self.segments)
        max_bound = max(s.max_bound for s in self.segments)
        err = s_q * (max_bound + max_scale * l1_q / 2) * 1.001 + 1e-6 if s_q else 0.0  # slack: float32 rounding
        want = min(available, max(8 * n, 256))
        exact: dict[int, float] = {}
        scored: set[int] = set()
        while True:
            cand = _best(approx, want)
            cand = cand[np.isfinite(approx[cand])]
            fresh = [int(pk) for pk in pks[cand].tolist() if pk not in scored]
            exact.update(rescore(np.asarray(fresh, dtype=np.int64)))
            scored.update(fresh)
            ranked = sorted(exact.items(), key=lambda kv: -kv[1])[:n]
            if want >= available:
                return ranked
            if len(ranked) == n and ranked[-1][1] >= float(approx[cand].min()) + err:
                return ranked
            want = min(available, want * 4)


def _best(scores: np.ndarray, want: int) -> np.ndarray:
    """Positions of the `want` highest scores (unordered). A threshold from a sample first keeps the partition
    to a few thousand rows: argpartition over a million scores costs 8-40 ms, the sample and the mask ~1 ms."""
    if want >= len(scores):
        return np.arange(len(scores))
    step = len(scores) // (want * 32)
    if step >= 2:
        sample = scores[::step]
        k = min(len(sample), 2 * -(-want // step))  # about twice `want` rows are expected above it
        above = np.flatnonzero(scores >= np.partition(sample, -k)[-k])
        if len(above) >= want:
            return above[np.argpartition(-scores[above], want - 1)[:want]]
    return np.argpartition(-scores, want - 1)[:want]


def rescore(db: sqlite3.Connection, tenant: str, model: str, pks: np.ndarray,
            vector: np.ndarray) -> dict[int, float]:
    """Exact float32 scores of the rows of `pks` that still exist (a deleted chunk drops out)."""
    q = np.asarray(vector, dtype=np.float32)
    out: dict[int, float] = {}
    wanted = [int(p) for p in dict.fromkeys(pks.tolist())]
    for start in range(0, len(wanted), 500):
        part = wanted[start:start + 500]
        rows = db.execute(_RESCORE.format(marks=",".join("?" * len(part))), (model, *part, tenant)).fetchall()
        rows = [(pk, blob) for pk, blob in rows if len(blob) == 4 * len(q)]
        if rows:
            m = np.frombuffer(b"".join(blob for _, blob in rows), dtype="<f4").reshape(len(rows), len(q))
            out.update(zip((int(pk) for pk, _ in rows), (m @ q).tolist(), strict=True))
    return out


# ------------------------------------------------------------------------------------------ choosing a path


def current(db: sqlite3.Connection, folder: Path | None, tenant: str, model: str,
            cached: VectorMatrix | Int8Matrix | None) -> VectorMatrix | Int8Matrix:
    """The matrix for this snapshot: the int8 side files for a large tenant (when available), else the float32
    matrix in memory, brought up to date from `cached`."""
    if folder is not None and isinstance(cached, Int8Matrix):
        try:
            return _open(db, folder, tenant, model, cached)
        except OSError:  # the folder went away or became read-only: keep searching, in memory
            pass
    elif folder is not None and Stamp.read(db, tenant).chunks >= MIN_ROWS:
        try:
            return _open(db, folder, tenant, model, None)
        except OSError:
            pass
    if isinstance(cached, VectorMatrix):
        return refresh(cached, db, tenant, model)
    return load(db, tenant, model)


def manifest_path(folder: Path, tenant: str, model: str) -> Path:
    key = hashlib.sha256(f"{tenant}\x00{model}".encode()).hexdigest()[:24]
    return folder / f"{key}.json"


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _open(db: sqlite3.Connection, folder: Path, tenant: str, model: str,
          cached: Int8Matrix | None) -> Int8Matrix:
    stamp = Stamp.read(db, tenant)
    path = manifest_path(folder, tenant, model)
    with _locked(folder):
        manifest = _read_manifest(path, tenant, model)
        matrix = _mapped(folder, manifest, cached) if manifest is not None else None
        if matrix is not None and cached is None and not _spot_check(db, tenant, model, matrix):
            matrix = None
        if matrix is not None and not _newer(stamp, matrix.stamp):
            return _carry(matrix, cached)
        if matrix is not None and appendable(db, tenant, matrix.stamp, stamp):
            matrix = _append(db, folder, path, tenant, model, _carry(matrix, cached), stamp)
        else:
            matrix = _rebuild(db, folder, path, tenant, model, stamp, cached)
        _sweep(folder)
        return matrix


def _newer(db_stamp: Stamp, file_stamp: Stamp) -> bool:
    """Whether the database moved past the files (not the case when another process refreshed them from a
    later snapshot than ours, nor when nothing changed)."""
    if db_stamp.same(file_stamp):
        return False
    return not (file_stamp.version >= db_stamp.version and file_stamp.vector_rowid >= db_stamp.vector_rowid)


def _carry(matrix: Int8Matrix, cached: Int8Matrix | None) -> Int8Matrix:
    if cached is not None:
        matrix.rebuilds, matrix.appends, matrix.rows_read = cached.rebuilds, cached.appends, cached.rows_read
    return matrix


def _read_manifest(path: Path, tenant: str, model: str) -> dict[str, Any] | None:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = (isinstance(manifest, dict) and manifest.get("format") == FORMAT and manifest.get("tenant") == tenant
          and manifest.get("model") == model and isinstance(manifest.get("segments"), list)
          and isinstance(manifest.get("stamp"), list) and len(manifest["stamp"]) == 4)
    return manifest if ok else None


def _mapped(folder: Path, manifest: dict[str, Any], cached: Int8Matrix | None) -> Int8Matrix | None:
    """The manifest's segments, mapped (those `cached` already maps are reused); None if any is unusable."""
    known = {s.name: s for s in cached.segments} if cached is not None else {}
    segments = []
    for name in manifest["segments"]:
        segment = known.get(name) or _map_segment(folder / str(name), int(manifest.get("dim", 0)))
        if segment is None:
            return None
        segments.append(segment)
    if sum(len(s.pks) for s in segments) != manifest.get("rows"):
        return None
    return Int8Matrix(Stamp(*(int(v) for v in manifest["stamp"])), manifest, segments)


def _layout(rows: int, dim: int) -> tuple[int, int, int]:
    """Offsets of pks, scales and the end of the file (codes start at the header)."""
    pks = -(-(_HEADER + rows * dim) // 64) * 64
    scales = pks + 8 * rows
    return pks, scales, scales + 4 * rows


def _map_segment(path: Path, dim: int) -> Segment | None:
    """The segment at `path` with its bits (written from the codes when their file is missing or unusable:
    OSError when it cannot be), None when the segment file itself is unusable."""
    found = binary.read_header(path, _MAGIC, _HEADER)
    if found is None:
        return None
    size, header = found
    file_dim, _, max_scale, max_bound = np.frombuffer(header[8:24], dtype="<u4,<u4,<f4,<f4")[0].tolist()
    rows = int(np.frombuffer(header[24:32], dtype="<u8")[0])
    if file_dim != dim or size != _layout(rows, dim)[2] or rows == 0:
        return None
    pks_at, scales_at, _ = _layout(rows, dim)
    whole = np.memmap(path, dtype=np.uint8, mode="r")
    codes = whole[_HEADER:_HEADER + rows * dim].reshape(rows, dim).view(np.int8)
    return Segment(path.name, whole[pks_at:scales_at].view("<i8"), whole[scales_at:].view("<f4"), codes,
                   binary.mapped(path, codes), max_scale, max_bound)


Block = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # pks, codes, scales, bounds


def _quantized(blocks: Iterator[tuple[np.ndarray, np.ndarray]]) -> Iterator[Block]:
    for pks, vectors in blocks:
        if len(pks):
            yield (pks, *quantize(vectors))


def _write_segment(folder: Path, blocks: Iterator[Block]) -> tuple[Segment | None, int]:
    """A segment file (and its bits) from blocks of quantised rows, written under temporary names and renamed.
    Returns the mapped segment (None when there were no rows) and the rows written."""
    tmp = folder / f".tmp-{uuid.uuid4().hex}"
    pks: list[np.ndarray] = []
    scales: list[np.ndarray] = []
    dim, rows, max_scale, max_bound = 0, 0, 0.0, 0.0
    try:
        with open(tmp, "wb") as f, binary.Writer(folder) as bits:
            f.write(b"\0" * _HEADER)
            for block_pks, codes, s, b in blocks:
                dim = dim or codes.shape[1]
                if codes.shape[1] != dim:
                    continue
                f.write(codes.tobytes())
                bits.add(codes)
                pks.append(np.asarray(block_pks, dtype="<i8"))
                scales.append(s)
                rows += len(block_pks)
                max_scale, max_bound = max(max_scale, float(s.max())), max(max_bound, float(b.max()))
            if not rows:
                return None, 0
            pks_at, _, _ = _layout(rows, dim)
            f.write(b"\0" * (pks_at - f.tell()))
            f.writelines(part.tobytes() for part in pks)
            f.writelines(part.astype("<f4").tobytes() for part in scales)
            f.seek(0)
            f.write(_MAGIC + np.array([(dim, 0, max_scale, max_bound)], dtype="<u4,<u4,<f4,<f4").tobytes()
                    + np.array([rows], dtype="<u8").tobytes())
            name = f"{uuid.uuid4().hex}.i8"
            bits.publish(binary.path_for(folder / name))
        os.replace(tmp, folder / name)
    finally:
        tmp.unlink(missing_ok=True)
    return _map_segment(folder / name, dim), rows


def _blocks(cursor: sqlite3.Cursor) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    while True:
        rows = cursor.fetchmany(_BLOCK)
        if not rows:
            return
        dim = len(rows[0][1]) // 4
        rows = [r for r in rows if len(r[1]) == 4 * dim]
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), dim)
        yield np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)), vectors


def _save(folder: Path, path: Path, tenant: str, model: str, stamp: Stamp, segments: list[Segment],
          dim: int) -> dict[str, Any]:
    manifest = {"format": FORMAT, "tenant": tenant, "model": model, "dim": dim, "rows": sum(len(s.pks) for s in
                segments), "stamp": [stamp.version, stamp.chunks, stamp.vector_rowid, stamp.chunk_pk],
                "segments": [s.name for s in segments]}
    tmp = folder / f".tmp-{uuid.uuid4().hex}"
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, path)
    return manifest


def _rebuild(db: sqlite3.Connection, folder: Path, path: Path, tenant: str, model: str, stamp: Stamp,
             cached: Int8Matrix | None) -> Int8Matrix:
    segment, rows = _write_segment(folder, _quantized(_blocks(
        db.execute(CHUNK_VECTORS, (model, 0, stamp.chunk_pk, tenant)))))
    segments = [segment] if segment is not None else []
    manifest = _save(folder, path, tenant, model, stamp, segments, segment.codes.shape[1] if segment else 0)
    matrix = _carry(Int8Matrix(stamp, manifest, segments), cached)
    matrix.rebuilds += 1
    matrix.rows_read += rows
    return matrix


def _append(db: sqlite3.Connection, folder: Path, path: Path, tenant: str, model: str, matrix: Int8Matrix,
            stamp: Stamp) -> Int8Matrix:
    segments = list(matrix.segments)
    for pks, vectors in added_rows(db, tenant, model, matrix.stamp, stamp):
        if not len(pks):
            continue
        if matrix.dim and vectors.shape[1] != matrix.dim:  # same model name, other dimension: start over
            return _rebuild(db, folder, path, tenant, model, stamp, matrix)
        segment, rows = _write_segment(folder, _quantized(iter([(pks, vectors)])))
        if segment is not None:
            segments.append(segment)
            matrix.appends += 1
            matrix.rows_read += rows
    if len(segments) > MAX_SEGMENTS:  # merge everything after the largest
        big = max(range(len(segments)), key=lambda i: len(segments[i].pks))
        rest = [s for i, s in enumerate(segments) if i != big]
        merged, _ = _write_segment(folder, (_requantized(s) for s in rest))  # the codes as they are
        segments = [segments[big]] + ([merged] if merged is not None else [])
    dim = matrix.dim or (segments[0].codes.shape[1] if segments else 0)
    manifest = _save(folder, path, tenant, model, stamp, segments, dim)
    return Int8Matrix(stamp, manifest, segments, matrix.rebuilds, matrix.appends, matrix.rows_read)


def _requantized(segment: Segment) -> Block:
    l1 = np.abs(segment.codes.astype(np.int32)).sum(axis=1)
    bounds = (segment.scales * (l1 / 2 + segment.codes.shape[1] / 4)).astype(np.float32)
    return segment.pks, segment.codes, segment.scales, bounds


def _spot_check(db: sqlite3.Connection, tenant: str, model: str, matrix: Int8Matrix) -> bool:
    """A few rows of the files, re-quantised from SQLite, must give the same codes, and their bits those of the
    codes (catches files of another database at the same path and overwritten contents)."""
    if not matrix.segments:
        return True
    rng = np.random.default_rng()
    for segment in matrix.segments:
        rows = len(segment.pks)
        for i in {0, rows - 1, *rng.integers(0, rows, _SPOT_CHECKS).tolist()}:
            found = db.execute(_RESCORE.format(marks="?"), (model, int(segment.pks[i]), tenant)).fetchone()
            if found is None or len(found[1]) != 4 * matrix.dim:
                return False
            codes, scales, _ = quantize(np.frombuffer(found[1], dtype="<f4")[None])
            if not (np.array_equal(codes[0], segment.codes[i]) and scales[0] == segment.scales[i]
                    and np.array_equal(binary.pack(codes)[0], segment.bits[i])):
                return False
    return True


def _sweep(folder: Path) -> None:
    """Delete segment files (and their bits) no manifest names (processes that mapped them keep their mapping) and temporary
    files a writer killed midway left (writers hold the lock, so none is being written now)."""
    named: set[str] = set()
    for manifest in folder.glob("*.json"):
        try:
            named.update(json.loads(manifest.read_text()).get("segments", []))
        except (OSError, ValueError, AttributeError):
            continue
    for segment in [*folder.glob("*.i8"), *folder.glob(f"*{binary.SUFFIX}")]:
        if segment.with_suffix(".i8").name not in named:
            segment.unlink(missing_ok=True)
    for tmp in folder.glob(".tmp-*"):
        tmp.unlink(missing_ok=True)

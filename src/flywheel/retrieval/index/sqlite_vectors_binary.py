"""The coarse first stage of SQLite search over a large tenant: one sign bit per dimension of every vector (48
bytes per 384-d vector, 48 MB per million), compared with the query's by Hamming distance (popcount).

Why: the exact int8 pass reads all the codes (384 MB per million vectors, ~35 ms per core idle, 90-130 ms on a
busy one); the bits are an eighth of that and their kernel is simpler. The bits only choose candidates: the
closest few thousand rows by Hamming distance go on to the int8 stage and the float32 re-score
(sqlite_vectors_int8.py). Unlike the int8 stage this one has no error bound: a true neighbour whose bits happen to
disagree with the query's is missed, so above `COARSE_MIN_ROWS` search is approximate (recall@10 measured by
`flywheel bench scale`, `sqlite_recall_at_10_1m`, and in docs/retrieval.md).

The bits are those of the int8 codes (code > 0), a pure function of them: each segment file `<name>.i8` has a
`<name>.b1` beside it, written with it, and rewritten from the codes alone (SQLite is not read) when a segment
is mapped without one, or with one that is unreadable or of the wrong size.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Self

import numpy as np

try:
    import simsimd
except ImportError:  # pragma: no cover - sqlite_vectors_int8 only maps segments when simsimd is installed
    simsimd = None  # type: ignore[assignment]

COARSE_MIN_ROWS = 200_000  # below this the exact int8 pass costs under ~10 ms a core: search stays exact
# Candidates the bits pass on: max(n * OVERSAMPLE, MIN_CANDIDATES) for n hits (chosen by measured recall@10,
# docs/retrieval.md "SQLite at a million chunks")
OVERSAMPLE = 100
MIN_CANDIDATES = 2000
THREADS = 1
SUFFIX = ".b1"
_MAGIC = b"FWB1VEC1"
_HEADER = 64
_BLOCK = 65536  # rows packed at a time while writing: bounds the transient memory


def candidates_for(n: int) -> int:
    return max(n * OVERSAMPLE, MIN_CANDIDATES)


def pack(codes: np.ndarray) -> np.ndarray:
    """Sign bits of int8 codes (rows, dim) as packed uint8 (rows, ceil(dim / 8)); padding bits are 0 for rows
    and queries alike, so they never count."""
    return np.packbits(np.asarray(codes) > 0, axis=1)


def path_for(segment: Path) -> Path:
    return segment.with_suffix(SUFFIX)


def _size(rows: int, dim: int) -> int:
    return _HEADER + rows * ((dim + 7) // 8)


def mapped(segment: Path, codes: np.ndarray) -> np.ndarray:
    """The bits of a segment whose int8 `codes` are mapped from `segment`: its `.b1` file, (re)written from the
    codes first when missing or unusable. OSError when the folder cannot be written."""
    rows, dim = codes.shape
    bits = _map(path_for(segment), rows, dim)
    if bits is None:
        _write(path_for(segment), codes)
        bits = _map(path_for(segment), rows, dim)
        if bits is None:  # pragma: no cover - written just now; only a concurrent writer ignoring the lock
            raise OSError(f"{path_for(segment)}: unreadable right after writing it")
    return bits


def read_header(path: Path, magic: bytes, length: int = _HEADER) -> tuple[int, bytes] | None:
    """(file size, header) of a side file that starts with `magic`; None when it is missing or unreadable."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            header = f.read(length)
    except OSError:
        return None
    return (size, header) if len(header) == length and header[:len(magic)] == magic else None


def _map(path: Path, rows: int, dim: int) -> np.ndarray | None:
    found = read_header(path, _MAGIC)
    if found is None or found[0] != _size(rows, dim):
        return None
    header = found[1]
    file_dim, file_rows = np.frombuffer(header[8:24], dtype="<u8").tolist()
    if (file_dim, file_rows) != (dim, rows):
        return None
    whole = np.memmap(path, dtype=np.uint8, mode="r")
    return whole[_HEADER:].reshape(rows, (dim + 7) // 8)


def _write(path: Path, codes: np.ndarray) -> None:
    with Writer(path.parent) as writer:
        for lo in range(0, len(codes), _BLOCK):
            writer.add(codes[lo:lo + _BLOCK])
        writer.publish(path)


class Writer:
    """Bits written block by block (as the segment's codes are) under a temporary name; `publish` renames the
    file into place, so a reader never maps half of one. Leaving the `with` block removes what was not
    published."""

    def __init__(self, folder: Path):
        self._tmp = folder / f".tmp-{uuid.uuid4().hex}"
        self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed by publish or __exit__
        self._file.write(b"\0" * _HEADER)
        self._rows, self._dim = 0, 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def add(self, codes: np.ndarray) -> None:
        self._file.write(pack(codes).tobytes())
        self._rows += len(codes)
        self._dim = codes.shape[1]

    def publish(self, path: Path) -> None:
        self._file.seek(0)
        self._file.write(_MAGIC + np.array([self._dim, self._rows], dtype="<u8").tobytes())
        self._file.close()
        os.replace(self._tmp, path)


def distances(query_bits: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Hamming distance (uint32) from the query's bits to every row of `bits`."""
    # uint32 out works (simsimd 6.5) though the stubs list float types only; float64 made the pass 50 % slower
    return np.asarray(simsimd.cdist(query_bits[None], bits, metric="hamming", dtype="bin8",
                                    out_dtype="uint32", threads=THREADS))[0]  # type: ignore[arg-type]


def closest(dist: np.ndarray, keep: np.ndarray | None, want: int) -> np.ndarray:
    """Sorted positions of the `want` smallest distances among the rows `keep` allows (unordered by distance):
    a threshold from a sample first, so the partition sees a few thousand rows, not a million."""
    if keep is not None:
        dist = np.where(keep, dist, np.uint32(np.iinfo(np.uint32).max))
    if want >= len(dist):
        return np.arange(len(dist))
    step = len(dist) // (want * 32)
    chosen: np.ndarray | None = None
    if step >= 2:
        sample = dist[::step]
        k = min(len(sample), 2 * -(-want // step))  # about twice `want` rows are expected at or below it
        below = np.flatnonzero(dist <= np.partition(sample, k - 1)[k - 1])
        if len(below) >= want:
            chosen = below[np.argpartition(dist[below], want - 1)[:want]]
    if chosen is None:
        chosen = np.argpartition(dist, want - 1)[:want]
    return np.sort(chosen)

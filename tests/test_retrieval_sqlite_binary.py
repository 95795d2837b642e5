"""SQLite search over a large tenant with the coarse sign-bit stage (sqlite_vectors_binary.py): recall against
exact search stays above a floor, scores are the exact float32 ones, filters still return k hits (exactly, when
they keep few rows), and the `.b1` files follow the segments: written with them, rebuilt when damaged, swept
with them, and side files of the previous format are rebuilt."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_retrieval_sqlite_scale import exact

from flywheel.retrieval.index import sqlite_vectors_binary as binary
from flywheel.retrieval.index import sqlite_vectors_int8 as int8
from flywheel.retrieval.retriever import open_index
from flywheel.retrieval.synthetic import MODEL, add_chunks, clustered_vectors, mixture, unit_vectors
from flywheel.store import Store

pytest.importorskip("simsimd")  # the `local` extra; without it search keeps the float32 matrix

DIM = 384


@pytest.fixture
def coarse(tmp_path, monkeypatch):
    """Every tenant on the side files with the coarse stage, and few candidates (so it has to choose)."""
    monkeypatch.setattr(int8, "MIN_ROWS", 0)
    monkeypatch.setattr(binary, "COARSE_MIN_ROWS", 0)
    monkeypatch.setattr(binary, "OVERSAMPLE", 10)
    monkeypatch.setattr(binary, "MIN_CANDIDATES", 100)
    path = tmp_path / "coarse.db"
    with Store.open(f"sqlite:///{path}") as store:
        yield open_index(store), store, path


@pytest.fixture
def chosen(monkeypatch):
    """The rows the coarse stage passed on, per search."""
    calls: list[np.ndarray] = []
    real = binary.closest

    def spy(dist, keep, want):
        calls.append(real(dist, keep, want))
        return calls[-1]

    monkeypatch.setattr(binary, "closest", spy)
    return calls


def clustered(rng: np.random.Generator, n: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    centres, basis = mixture(rng, DIM, n_centres=50)
    return clustered_vectors(rng, n, DIM, centres, basis), clustered_vectors(rng, queries, DIM, centres, basis)


def hits(index, query: np.ndarray, k: int, filters: dict | None = None) -> list[tuple[int, float]]:
    return index.dense("t", MODEL, query, k, filters)


def test_recall_stays_above_the_floor_and_scores_are_exact(coarse, chosen):
    index, store, _ = coarse
    rng = np.random.default_rng(0)
    vectors, queries = clustered(rng, 4000, 20)
    add_chunks(index, "t", "a.md", vectors)
    recalls = []
    for q in queries:
        got = hits(index, q, 10)
        truth = exact(store, "t", q, 10)
        recalls.append(len({pk for pk, _ in got} & set(truth)) / 10)
        by_pk = {pk: float(vectors[pk - 1] @ q) for pk, _ in got}  # pks are 1.. in insertion order
        assert [s for _, s in got] == pytest.approx([by_pk[pk] for pk, _ in got], abs=1e-5)
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
    assert len(chosen) == len(queries) and all(len(c) == 100 for c in chosen)  # 100 of 4000 rows went on
    assert np.mean(recalls) >= 0.9


def test_below_the_threshold_search_stays_exact(coarse, chosen, monkeypatch):
    index, store, _ = coarse
    monkeypatch.setattr(binary, "COARSE_MIN_ROWS", 5000)
    rng = np.random.default_rng(1)
    add_chunks(index, "t", "a.md", unit_vectors(rng, 3000, DIM))  # uniform: the bits' worst case
    for q in unit_vectors(rng, 5, DIM):
        assert [pk for pk, _ in hits(index, q, 10)] == exact(store, "t", q, 10)
    assert not chosen


def test_the_coarse_stage_is_approximate_where_bits_say_little(coarse):
    """Uniform random vectors have no neighbourhoods: with 100 candidates out of 4000 some true neighbours are
    missed. The recall floor above is a property of the data, not of the test."""
    index, store, _ = coarse
    rng = np.random.default_rng(2)
    add_chunks(index, "t", "a.md", unit_vectors(rng, 4000, DIM))
    found = [len({pk for pk, _ in hits(index, q, 10)} & set(exact(store, "t", q, 10))) / 10
             for q in unit_vectors(rng, 10, DIM)]
    assert np.mean(found) < 1.0


def test_filters_keep_k_hits_and_selective_ones_are_exact(coarse, chosen):
    index, store, _ = coarse
    rng = np.random.default_rng(3)
    vectors, queries = clustered(rng, 3030, 3)
    add_chunks(index, "t", "a.md", vectors[:1500])
    add_chunks(index, "t", "b.md", vectors[1500:3000])
    add_chunks(index, "t", "c.md", vectors[3000:])  # 30 rows: fewer than the 100 candidates
    for q in queries:
        got = hits(index, q, 10, {"source": "b.md"})  # 1500 rows: the coarse stage, limited to b.md
        assert len(got) == 10 and all(1500 < pk <= 3000 for pk, _ in got)
        assert len(chosen) == 1 and all(1500 <= p < 3000 for p in chosen.pop().tolist())
        few = hits(index, q, 10, {"source": "c.md"})  # exact over the rows the filter keeps
        scores = vectors[3000:] @ q
        assert [pk for pk, _ in few] == (np.argsort(-scores)[:10] + 3001).tolist() and not chosen
        assert len(hits(index, q, 50, {"source": "c.md"})) == 30
    assert next(pk for pk, _ in hits(index, queries[0], 10)) == exact(store, "t", queries[0], 1)[0]


def files(path: Path, suffix: str) -> list[Path]:
    return sorted(Path(f"{path}-vectors").glob(f"*{suffix}"))


def matrix(index) -> int8.Int8Matrix:
    m = index._matrices[("t", MODEL)]
    assert isinstance(m, int8.Int8Matrix)
    return m


def test_bits_follow_the_segments_through_appends_and_merges(coarse):
    index, _store, path = coarse
    rng = np.random.default_rng(4)
    q = unit_vectors(rng, 1, DIM)[0]
    for i in range(int8.MAX_SEGMENTS + 2):
        add_chunks(index, "t", f"f{i}.md", unit_vectors(rng, 150, DIM))
        hits(index, q, 10)
        assert [f.stem for f in files(path, ".b1")] == [f.stem for f in files(path, ".i8")]
    m = matrix(index)
    assert m.rebuilds == 1 and len(m.segments) <= int8.MAX_SEGMENTS
    for segment in m.segments:
        assert np.array_equal(segment.bits, binary.pack(segment.codes))


def test_side_files_of_the_previous_format_are_rebuilt(coarse):
    index, _store, path = coarse
    rng = np.random.default_rng(5)
    add_chunks(index, "t", "a.md", unit_vectors(rng, 600, DIM))
    q = unit_vectors(rng, 1, DIM)[0]
    hits(index, q, 10)
    manifest = int8.manifest_path(Path(f"{path}-vectors"), "t", MODEL)
    old = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**old, "format": 1}))  # as format 1 wrote it: segments without bits
    for bits in files(path, ".b1"):
        bits.unlink()
    with Store.open(f"sqlite:///{path}") as fresh:
        reader = open_index(fresh)
        assert len(hits(reader, q, 10)) == 10
        assert (matrix(reader).rebuilds, matrix(reader).rows_read) == (1, 600)
    assert json.loads(manifest.read_text())["format"] == int8.FORMAT == 2
    assert len(files(path, ".b1")) == len(files(path, ".i8")) == 1  # the old segment swept


@pytest.mark.parametrize("damage", ["missing", "truncated", "other header", "zeroed bits"])
def test_damaged_bits_are_rebuilt(coarse, damage):
    index, _store, path = coarse
    rng = np.random.default_rng(6)
    vectors, queries = clustered(rng, 600, 3)
    add_chunks(index, "t", "a.md", vectors)
    before = [hits(index, q, 10) for q in queries]
    (bits,) = files(path, ".b1")
    data = bits.read_bytes()
    if damage == "missing":
        bits.unlink()
    elif damage == "truncated":
        bits.write_bytes(data[:-48])
    elif damage == "other header":
        bits.write_bytes(b"garbage!" + data[8:])
    else:  # a well-formed file with the wrong contents: the spot check compares bits with the codes
        bits.write_bytes(data[:64] + bytes(len(data) - 64))
    with Store.open(f"sqlite:///{path}") as fresh:
        reader = open_index(fresh)
        assert [hits(reader, q, 10) for q in queries] == before
        # a file that cannot be the segment's is rewritten from the codes, without reading SQLite; wrong
        # contents in a well-formed file fail the spot check, which rebuilds from the database
        assert matrix(reader).rows_read == (600 if damage == "zeroed bits" else 0)
        for segment in matrix(reader).segments:
            assert np.array_equal(segment.bits, binary.pack(segment.codes))


@pytest.mark.parametrize("masked", [0.0, 0.5, 0.99])
def test_closest_picks_the_same_rows_as_a_full_partition(masked):
    rng = np.random.default_rng(8)
    dist = rng.integers(0, 385, 200_000).astype(np.uint32)
    keep = rng.random(len(dist)) >= masked
    for want in (100, 1000, 1500):
        got = binary.closest(dist, keep if masked else None, want)
        allowed = np.where(keep, dist, 10**6) if masked else dist.astype(np.int64)
        full = np.sort(allowed)[:want]
        assert len(got) == want and np.all(np.diff(got) > 0)
        assert np.array_equal(np.sort(allowed[got]), full)

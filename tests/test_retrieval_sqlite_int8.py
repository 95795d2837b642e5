"""SQLite dense search at scale: int8 codes in memory-mapped side files (sqlite_vectors_int8.py) give exactly the
results of a float32 search over the table, stay current by appending (no reload of what was written before),
are shared by another process through the files, and are rebuilt when stale or corrupt."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_retrieval_sqlite_scale import exact

from flywheel.retrieval.index import sqlite_vectors_int8 as int8
from flywheel.retrieval.retriever import open_index
from flywheel.retrieval.synthetic import (
    MODEL,
    add_chunks,
    add_chunks_without_vectors,
    add_vectors,
    unit_vectors,
)
from flywheel.store import Store

pytest.importorskip("simsimd")  # the `local` extra; without it search keeps the float32 matrix


@pytest.fixture
def side(tmp_path, monkeypatch):
    monkeypatch.setattr(int8, "MIN_ROWS", 0)  # every tenant takes the int8 path
    path = tmp_path / "scale.db"
    main, other = Store.open(f"sqlite:///{path}"), Store.open(f"sqlite:///{path}")
    yield open_index(main), open_index(other), main, path
    main.close()
    other.close()


def searched(index, tenant: str, query: np.ndarray, k: int, filters: dict | None = None) -> list[int]:
    return [pk for pk, _ in index.dense(tenant, MODEL, query, k, filters)]


def matrix(index, tenant: str = "t") -> int8.Int8Matrix:
    m = index._matrices[(tenant, MODEL)]
    assert isinstance(m, int8.Int8Matrix)
    return m


@pytest.mark.parametrize("dim", [8, 384])
def test_results_equal_exact_search(side, dim):
    index, _, store, _ = side
    rng = np.random.default_rng(dim)
    add_chunks(index, "t", "a.md", unit_vectors(rng, 3000, dim))
    add_chunks(index, "u", "a.md", unit_vectors(rng, 200, dim))  # another tenant
    for q in unit_vectors(rng, 10, dim):
        assert searched(index, "t", q, 10) == exact(store, "t", q, 10)
    assert searched(index, "t", -3 * q, 50) == exact(store, "t", -3 * q, 50)  # not a unit query
    assert len(searched(index, "t", np.zeros(dim, np.float32), 5)) == 5
    assert matrix(index).size == 3000 and matrix(index).rebuilds == 1


def test_near_duplicates_below_the_int8_step_are_still_ranked_exactly(side):
    """Rows differing by less than a quantisation step tie in int8: the error bound has the search take more
    candidates than the first guess until no row outside them could rank higher."""
    index, _, store, _ = side
    rng = np.random.default_rng(9)
    base = unit_vectors(rng, 1, 64)[0]
    near = base + 1e-3 * rng.standard_normal((2000, 64)).astype(np.float32)
    add_chunks(index, "t", "a.md", near / np.linalg.norm(near, axis=1, keepdims=True))
    add_chunks(index, "t", "b.md", unit_vectors(rng, 500, 64))
    q = base + 1e-2 * rng.standard_normal(64).astype(np.float32)
    assert searched(index, "t", q, 10) == exact(store, "t", q, 10)
    hits = index.dense("t", MODEL, q, 300)  # deeper down, float32 rounding may swap rows a few ulps apart
    best = exact(store, "t", q, 2500)
    assert len(hits) == 300 and {pk for pk, _ in hits} - set(best[:300]) <= set(best[290:310])


def test_writes_are_appended_without_rereading_and_deletes_rebuild(side):
    index, other, store, _ = side
    rng = np.random.default_rng(1)
    add_chunks(index, "t", "a.md", unit_vectors(rng, 500, 16))
    q = unit_vectors(rng, 1, 16)[0]
    assert searched(index, "t", q, 10) == exact(store, "t", q, 10)
    assert matrix(index).rows_read == 500

    add_chunks(other, "t", "b.md", np.vstack([q, unit_vectors(rng, 9, 16)]))  # the best hit, written elsewhere
    waiting = add_chunks_without_vectors(other, "t", "c.md", 5)
    got = searched(index, "t", q, 10)
    assert got == exact(store, "t", q, 10) and got[0] > 500
    add_vectors(other, waiting, unit_vectors(rng, 5, 16))
    assert searched(index, "t", q, 600) == exact(store, "t", q, 600)
    m = matrix(index)
    assert (m.rebuilds, m.rows_read, m.size) == (1, 515, 515)  # only the 15 new rows were read

    with other.transaction() as conn:
        other.delete_source(conn, "t", "b.md", forget=True)
    got = searched(index, "t", q, 10)
    assert got == exact(store, "t", q, 10) and all(pk <= 500 or pk > 510 for pk in got)
    assert (matrix(index).rebuilds, matrix(index).size) == (2, 505)


def test_many_appends_are_merged_and_stay_exact(side):
    index, other, store, path = side
    rng = np.random.default_rng(2)
    q = unit_vectors(rng, 1, 16)[0]
    for i in range(3 * int8.MAX_SEGMENTS):
        add_chunks(other, "t", f"f{i}.md", unit_vectors(rng, 20, 16))
        assert searched(index, "t", q, 30) == exact(store, "t", q, 30)
    m = matrix(index)
    assert m.rebuilds == 1 and len(m.segments) <= int8.MAX_SEGMENTS and m.size == 60 * int8.MAX_SEGMENTS
    # merged files hold the codes as first written: a new reader accepts them (its spot check passes)
    again = open_index(Store.open(f"sqlite:///{path}"))
    assert searched(again, "t", q, 30) == exact(store, "t", q, 30) and matrix(again).rows_read == 0
    assert len(list(Path(f"{path}-vectors").glob("*.i8"))) == len(m.segments)  # merged-away files deleted


def test_filters_still_return_k_hits(side):
    index = side[0]
    rng = np.random.default_rng(3)
    add_chunks(index, "t", "a.md", unit_vectors(rng, 400, 16))
    add_chunks(index, "t", "b.md", unit_vectors(rng, 12, 16))
    q = unit_vectors(rng, 1, 16)[0]
    hits = index.dense("t", MODEL, q, 10, {"source": "b.md"})
    assert len(hits) == 10
    assert {c.source for c, _ in index.fetch([pk for pk, _ in hits], "t").values()} == {"b.md"}
    every = index.dense("t", MODEL, q, 1000, {"source": "b.md"})
    assert [pk for pk, _ in every][:10] == [pk for pk, _ in hits] and len(every) == 12


def test_another_process_uses_the_same_files(side):
    index, _, store, path = side
    rng = np.random.default_rng(4)
    add_chunks(index, "t", "a.md", unit_vectors(rng, 800, 16))
    q = unit_vectors(rng, 1, 16)[0]
    assert searched(index, "t", q, 10) == exact(store, "t", q, 10)
    script = (
        "import json, sys, numpy as np\n"
        "from flywheel.retrieval.index import sqlite_vectors_int8 as int8\n"
        "from flywheel.retrieval.retriever import open_index\n"
        "from flywheel.retrieval.synthetic import MODEL\n"
        "from flywheel.store import Store\n"
        "int8.MIN_ROWS = 0\n"
        "index = open_index(Store.open(sys.argv[1]))\n"
        "hits = index.dense('t', MODEL, np.array(json.loads(sys.argv[2]), np.float32), 10)\n"
        "m = index._matrices[('t', MODEL)]\n"
        "print(json.dumps({'hits': [pk for pk, _ in hits], 'kind': type(m).__name__, 'read': m.rows_read}))\n")
    out = subprocess.run([sys.executable, "-c", script, f"sqlite:///{path}", json.dumps(q.tolist())],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"hits": exact(store, "t", q, 10), "kind": "Int8Matrix", "read": 0}


def test_a_reader_keeps_searching_while_another_rewrites_the_files(side):
    index, other, store, _ = side
    rng = np.random.default_rng(5)
    add_chunks(index, "t", "a.md", unit_vectors(rng, 300, 16))
    q = unit_vectors(rng, 1, 16)[0]
    searched(index, "t", q, 10)
    first = matrix(index)
    add_chunks(other, "t", "b.md", unit_vectors(rng, 30, 16))
    assert searched(other, "t", q, 10) == exact(store, "t", q, 10)  # the other appends, writes a new manifest
    with other.transaction() as conn:
        other.delete_source(conn, "t", "b.md", forget=True)
    searched(other, "t", q, 10)  # ... and rebuilds: the files `first` maps are deleted
    assert not Path(first.segments[0].codes.filename).exists()
    assert [pk for pk, _ in first.top(q, 5, None, lambda pks: {int(p): 0.0 for p in pks})]  # still mapped
    assert searched(index, "t", q, 10) == exact(store, "t", q, 10)
    assert matrix(index).rows_read == 300  # it took the other's files, reading nothing


@pytest.mark.parametrize("damage", ["garbage manifest", "truncated segment", "zeroed codes", "other database"])
def test_stale_or_corrupt_side_files_are_rebuilt(side, tmp_path, damage):
    index, _, _, path = side
    rng = np.random.default_rng(6)
    vectors = unit_vectors(rng, 600, 16)
    add_chunks(index, "t", "a.md", vectors)
    q = unit_vectors(rng, 1, 16)[0]
    searched(index, "t", q, 10)
    folder = Path(f"{path}-vectors")
    manifest = int8.manifest_path(folder, "t", MODEL)
    segment = folder / json.loads(manifest.read_text())["segments"][0]
    target = path
    if damage == "garbage manifest":
        manifest.write_text("{not json")
    elif damage == "truncated segment":
        segment.write_bytes(segment.read_bytes()[:-100])
    elif damage == "zeroed codes":
        data = bytearray(segment.read_bytes())
        data[64:64 + 600 * 16] = bytes(600 * 16)
        segment.write_bytes(bytes(data))
    else:  # the side files of this database, found next to another one with other vectors
        target = tmp_path / "second.db"
        with Store.open(f"sqlite:///{target}") as second:
            add_chunks(open_index(second), "t", "a.md", unit_vectors(rng, 600, 16))
        import shutil
        shutil.copytree(folder, f"{target}-vectors")
    with Store.open(f"sqlite:///{target}") as fresh:
        reader = open_index(fresh)
        assert searched(reader, "t", q, 10) == exact(fresh, "t", q, 10)
        assert matrix(reader).rebuilds == 1 and matrix(reader).rows_read == 600


@pytest.mark.parametrize("masked", [0.0, 0.5, 0.999])
def test_the_candidate_shortcut_picks_the_same_rows_as_a_full_partition(masked):
    rng = np.random.default_rng(8)
    scores = rng.standard_normal(200_000).astype(np.float32)
    scores[rng.random(len(scores)) < masked] = -np.inf  # rows a filter left out
    for want in (10, 256, 3000):
        full = np.argpartition(-scores, want - 1)[:want]
        assert set(scores[int8._best(scores, want)]) == set(scores[full])


def test_small_tenants_keep_the_float32_matrix(tmp_path):
    from flywheel.retrieval.index.sqlite_vectors import VectorMatrix

    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        index = open_index(store)
        rng = np.random.default_rng(7)
        add_chunks(index, "t", "a.md", unit_vectors(rng, 50, 16))
        index.dense("t", MODEL, unit_vectors(rng, 1, 16)[0], 5)
        assert isinstance(index._matrices[("t", MODEL)], VectorMatrix)
        assert not Path(f"{tmp_path / 's.db'}-vectors").exists()

"""SQLite dense search keeps its in-memory vectors current incrementally: new chunks and new vectors (also
written by another process) are appended and found, deleted chunks are never returned, and only a delete
rebuilds. Results always equal an exact search over what the table holds."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from flywheel.retrieval.index import sqlite_vectors
from flywheel.retrieval.retriever import open_index
from flywheel.retrieval.synthetic import (
    MODEL,
    add_chunks,
    add_chunks_without_vectors,
    add_vectors,
    unit_vectors,
)
from flywheel.store import Store
from flywheel.store.schema_retrieval import chunks, embeddings

DIM = 16


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'scale.db'}"
    main, other = Store.open(url), Store.open(url)  # `other` stands for another process writing the same file
    yield open_index(main), open_index(other), main
    main.close()
    other.close()


def exact(store, tenant: str, query: np.ndarray, k: int) -> list[int]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(chunks.c.pk, embeddings.c.vector).join(
            embeddings, (embeddings.c.hash == chunks.c.embed_hash) & (embeddings.c.model == MODEL))
            .where(chunks.c.tenant == tenant)).all()
    scores = {pk: float(np.frombuffer(v, dtype="<f4") @ query) for pk, v in rows}
    return sorted(scores, key=lambda pk: -scores[pk])[:k]


def searched(index, tenant: str, query: np.ndarray, k: int) -> list[int]:
    return [pk for pk, _ in index.dense(tenant, MODEL, query, k)]


def matrix(index, tenant: str = "t") -> sqlite_vectors.VectorMatrix:
    return index._matrices[(tenant, MODEL)]


def test_appends_are_seen_without_a_rebuild_and_deletes_rebuild(db):
    index, other, store = db
    rng = np.random.default_rng(7)
    add_chunks(index, "t", "a.md", unit_vectors(rng, 50, DIM))
    add_chunks(index, "u", "a.md", unit_vectors(rng, 20, DIM))  # another tenant: never in t's results
    q = unit_vectors(rng, 1, DIM)[0]
    assert searched(index, "t", q, 10) == exact(store, "t", q, 10)
    assert (matrix(index).rebuilds, matrix(index).size) == (1, 50)

    # another process adds chunks with vectors, and chunks whose vectors come later (the embed stage)
    target = q * 0.99 + unit_vectors(rng, 1, DIM)[0] * 0.01
    add_chunks(other, "t", "b.md", np.vstack([target / np.linalg.norm(target), unit_vectors(rng, 9, DIM)]))
    waiting = add_chunks_without_vectors(other, "t", "c.md", 5)
    got = searched(index, "t", q, 10)
    assert got == exact(store, "t", q, 10) and matrix(index).size == 60
    pks = matrix(index).pks()
    assert got[0] == pks[pks > 70].min()  # b.md's first chunk, the closest one, written after the load
    add_vectors(other, waiting, unit_vectors(rng, 5, DIM))
    assert searched(index, "t", q, 70) == exact(store, "t", q, 70)
    m = matrix(index)
    assert (m.rebuilds, m.size, m.appends) == (1, 65, 2)  # b.md, then c.md's late vectors

    # a delete: its chunks are gone from the results, and the matrix was rebuilt
    with store.engine.connect() as c:
        deleted = {r[0] for r in c.execute(select(chunks.c.pk).where(chunks.c.source == "b.md",
                                                                     chunks.c.tenant == "t"))}
    with other.transaction() as conn:
        other.delete_source(conn, "t", "b.md", forget=True)
    got = searched(index, "t", q, 100)
    assert got == exact(store, "t", q, 100) and not deleted & set(got) and len(got) == 55
    assert matrix(index).rebuilds == 2

    # the same hash under another tenant (a cached vector) is appended for t too
    add_chunks(other, "t", "d.md", unit_vectors(rng, 3, DIM))
    assert searched(index, "t", q, 100) == exact(store, "t", q, 100)
    assert matrix(index).rebuilds == 2 and matrix(index).size == 58


def test_many_small_appends_are_compacted_and_stay_exact(db):
    index, other, store = db
    rng = np.random.default_rng(3)
    q = unit_vectors(rng, 1, DIM)[0]
    for i in range(3 * sqlite_vectors.MAX_SEGMENTS):
        add_chunks(other, "t", f"f{i}.md", unit_vectors(rng, 4, DIM))
        assert searched(index, "t", q, 200) == exact(store, "t", q, 200)
    m = matrix(index)
    assert m.rebuilds == 1 and m.size == 12 * sqlite_vectors.MAX_SEGMENTS
    assert len(m.segments) <= sqlite_vectors.MAX_SEGMENTS


def test_filters_and_an_unknown_dimension_still_work(db):
    index = db[0]
    rng = np.random.default_rng(5)
    add_chunks(index, "t", "a.md", unit_vectors(rng, 10, DIM))
    add_chunks(index, "t", "b.md", unit_vectors(rng, 10, DIM))
    q = unit_vectors(rng, 1, DIM)[0]
    hits = index.dense("t", MODEL, q, 5, {"source": "b.md"})
    assert len(hits) == 5 and set(index.fetch([pk for pk, _ in hits], "t")) == {pk for pk, _ in hits}
    assert {c.source for c, _ in index.fetch([pk for pk, _ in hits], "t").values()} == {"b.md"}
    assert index.dense("t", MODEL, unit_vectors(rng, 1, DIM + 1)[0], 5) == []
    assert index.dense("nobody", MODEL, q, 5) == []


def test_an_ingest_in_the_same_process_appends_instead_of_reloading(db, tmp_path):
    from flywheel.config import RetrievalConfig
    from flywheel.retrieval.ingest import Ingestor

    index, _, store = db
    rng = np.random.default_rng(11)
    add_chunks(index, "default", "a.md", unit_vectors(rng, 30, DIM))
    q = unit_vectors(rng, 1, DIM)[0]
    assert len(searched(index, "default", q, 100)) == 30
    loaded = matrix(index, "default").segments[0][1]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "new.md").write_text("# New\nA new file about gateways.\n")
    config = RetrievalConfig(embedder="none")
    Ingestor(index, None, config, root=tmp_path).run([docs], "default", False, None)  # invalidate(tenant)
    add_chunks(index, "default", "b.md", unit_vectors(rng, 5, DIM))
    assert searched(index, "default", q, 100) == exact(store, "default", q, 100)
    assert matrix(index, "default").segments[0][1] is loaded  # the vectors loaded first were never reloaded
    assert matrix(index, "default").size == 35

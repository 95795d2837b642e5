"""`flywheel store copy`: SQLite → PostgreSQL → SQLite gives back every row of every table; the PostgreSQL copy
searches (tsvector rebuilt, vectors converted, HNSW built) and takes new rows (sequences moved on); a non-empty
target is refused unless --append, which finishes an interrupted copy without duplicates; passwords are masked."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select

import flywheel.cli.store  # noqa: F401 - registers `flywheel store` until the CLI lists it
from flywheel.cli import main
from flywheel.config import RetrievalConfig
from flywheel.retrieval import embedders
from flywheel.retrieval.index.postgres import copy_transforms
from flywheel.retrieval.ingest import ingest
from flywheel.retrieval.retriever import Retriever, open_index
from flywheel.store import Store
from flywheel.store.copy import copy_store, non_empty_tables
from flywheel.store.db import load_schemas
from flywheel.store.schema import spans, traces
from flywheel.store.schema_feedback import feedback

pytestmark = pytest.mark.postgres


class Hashing(embedders.Embedder):
    name = "hashing"

    def embed(self, texts):
        out = np.zeros((len(texts), 32), np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, sum(w.encode()) % 32] += 1.0
        return embedders._normalise(out + 1e-3)


def dump(store) -> dict[str, list[dict]]:
    out = {}
    with store.engine.connect() as conn:
        for table in load_schemas().sorted_tables:
            keys = list(table.primary_key.columns)
            rows = []
            for r in conn.execute(select(table).order_by(*keys)).mappings():
                row = dict(r)
                row.pop("tsv", None) if table.name == "chunks" else None
                for k, v in row.items():
                    if isinstance(v, (bytes, memoryview)):
                        row[k] = bytes(v)
                rows.append(row)
            out[table.name] = rows
    return out


@pytest.fixture
def source(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'src.db'}")
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(30):
        (docs / f"d{i}.md").write_text(f"# Part {i}\nThe gateway retries call {i} with fallback {i % 4}.\n\n"
                                       f"# More {i}\nTenants keep their own chunks, note {i}.\n")
    ingest([docs], store, RetrievalConfig(), embedder=Hashing(), root=tmp_path)
    ingest([docs / "d1.md"], store, RetrievalConfig(), tenant="acme", embedder=Hashing(), root=tmp_path)
    with store.engine.begin() as conn:
        conn.execute(insert(traces), [{"trace_id": f"{i:032x}", "name": "ask", "started_at": 1.5 + i,
                                       "tenant": "acme", "input_preview": "héllo 你好"} for i in range(5)])
        conn.execute(insert(spans), [{"span_id": f"{i:016x}", "trace_id": f"{i:032x}", "name": "llm",
                                      "start_ns": 10**18 + i, "inputs": {"q": [1, 2, {"x": None}]},
                                      "attributes": None} for i in range(5)])
        conn.execute(insert(feedback), [{"trace_id": f"{i:032x}", "source": "user", "name": "thumbs",
                                         "value": i % 2 == 0, "created_at": 3.25} for i in range(5)])
    yield store
    store.close()


def test_round_trip_sqlite_postgres_sqlite_is_equal_and_postgres_searches(source, pg_fresh_url, tmp_path):
    before = dump(source)
    assert len(before["chunks"]) == 62 and before["embeddings"] and before["feedback"]
    runner = CliRunner()
    res = runner.invoke(main, ["store", "copy", source.url, pg_fresh_url, "--batch", "7", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["tables"]["chunks"] == 62 and summary["skipped"] == 0
    back_url = f"sqlite:///{tmp_path / 'back.db'}"
    res = runner.invoke(main, ["store", "copy", pg_fresh_url, back_url])
    assert res.exit_code == 0, res.output
    assert "copied" in res.output and "chunks: 62/62 rows" in res.output
    back = Store.open(back_url)
    assert dump(back) == before
    # the SQLite copy searches (FTS5 filled by its triggers) like the source
    r = Retriever(open_index(back), Hashing(), RetrievalConfig(min_relevance=None))
    assert r.search("fallback", k=3, mode="bm25") and len(r.search("gateway", k=3, mode="dense")) == 3
    back.close()

    pg = Store.open(pg_fresh_url)
    try:
        index = open_index(pg)
        r = Retriever(index, Hashing(), RetrievalConfig(min_relevance=None))
        hits = r.search("retries call 7", k=3, mode="bm25")
        assert hits and hits[0].chunk.text.startswith("The gateway retries call 7")
        assert len(r.search("tenants chunks", k=4, mode="dense", tenant="acme")) == 2
        with pg.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM pg_indexes WHERE indexname = %s",
                                        (index.hnsw_index_name("hashing", 32),)).scalar() == 1
        # new rows after the copy get fresh ids (the sequences moved past the copied ones)
        extra = tmp_path / "new.md"
        extra.write_text("# New\nA document written after the copy.\n")
        assert ingest([extra], pg, RetrievalConfig(), embedder=Hashing(), root=tmp_path).chunks_added == 1
        with pg.engine.begin() as conn:
            conn.execute(insert(feedback).values(trace_id="0" * 32, source="user", name="thumbs", created_at=1.0))
    finally:
        pg.close()


def test_non_empty_target_is_refused_and_append_finishes_an_interrupted_copy(source, tmp_path):
    dst_url = f"sqlite:///{tmp_path / 'dst.db'}"
    dst = Store.open(dst_url)
    seen = []

    def interrupt(table, done, total):
        seen.append((table, done))
        if table == "chunks" and done >= 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        copy_store(source, dst, batch_rows=10, progress=interrupt, transforms=copy_transforms("sqlite"))
    assert "chunks" in non_empty_tables(dst)
    dst.close()
    res = CliRunner().invoke(main, ["store", "copy", source.url, dst_url])
    assert res.exit_code == 2 and "not empty" in res.output and "--append" in res.output
    res = CliRunner().invoke(main, ["store", "copy", source.url, dst_url, "--append", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["skipped"] >= 20
    dst = Store.open(dst_url)
    assert dump(dst) == dump(source)
    again = copy_store(source, dst, append=True)  # idempotent: nothing new, nothing duplicated
    assert again.copied == 0 and again.skipped == sum(again.tables.values())
    assert dump(dst) == dump(source)
    dst.close()


def test_passwords_never_printed_and_same_store_refused(source):
    res = CliRunner().invoke(main, ["store", "copy", source.url, "postgresql://fly:s3cr3t-pw@127.0.0.1:9/db"])
    assert res.exit_code == 2 and "s3cr3t-pw" not in res.output and "***" in res.output
    res = CliRunner().invoke(main, ["store", "copy", source.url, source.url])
    assert res.exit_code == 2 and "same store" in res.output

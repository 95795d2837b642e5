"""`flywheel ingest --shard i/N`: N shard runs (in any order, repeated, concurrent) write exactly what one
single-process ingest writes, chunk for chunk, on SQLite and PostgreSQL; bad specs are one clear line, exit 2."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

import flywheel.cli.retrieval  # noqa: F401  (registers `ingest` on main until the integrator does)
from flywheel.cli import main
from flywheel.config import RetrievalConfig
from flywheel.errors import UserError
from flywheel.retrieval.ingest import in_shard, ingest, parse_shard
from flywheel.store import Store
from flywheel.store.schema_retrieval import chunks, ingested_files

KEYWORD_ONLY = RetrievalConfig(embedder="none")


def corpus(root: Path, files: int = 12) -> Path:
    docs = root / "docs"
    (docs / "sub").mkdir(parents=True)
    for i in range(files):
        folder = docs / "sub" if i % 3 == 0 else docs
        body = "\n\n".join(f"## Part {j}\nFile {i} part {j} explains topic{i}x{j} in detail." for j in range(3))
        (folder / f"f{i}.md").write_text(f"# File {i}\n{body}\n")
    return docs


def rows(store: Store) -> list[tuple]:
    with store.engine.connect() as conn:
        got = conn.execute(select(chunks.c.id, chunks.c.doc_id, chunks.c.source, chunks.c.ordinal, chunks.c.text,
                                  chunks.c.tokens, chunks.c.embed_hash)).all()
        files = conn.execute(select(ingested_files.c.source, ingested_files.c.status, ingested_files.c.chunks)).all()
    return sorted(map(tuple, got)) + sorted(map(tuple, files))


@pytest.fixture
def stores(store_url, tmp_path):
    """The shared store under test (SQLite or PostgreSQL) and a SQLite reference for the single-process run."""
    sharded = Store.open(store_url)
    single = Store.open(f"sqlite:///{tmp_path / 'single.db'}")
    yield sharded, single
    sharded.close()
    single.close()


def test_n_shards_equal_a_single_ingest_even_repeated_and_concurrent(stores, tmp_path):
    sharded, single = stores
    docs = corpus(tmp_path)
    whole = ingest([docs], single, KEYWORD_ONLY, root=tmp_path)
    parts = [ingest([docs], sharded, KEYWORD_ONLY, root=tmp_path, shard=(i, 2)) for i in (1, 0)]
    assert sum(p.files for p in parts) == whole.files == 12
    assert all(p.files for p in parts)  # both shards got work: the partition is not degenerate
    assert sum(p.chunks_added for p in parts) == whole.chunks_added
    assert rows(sharded) == rows(single)

    again = [ingest([docs], sharded, KEYWORD_ONLY, root=tmp_path, shard=(i, 2)) for i in (0, 1)]
    assert sum(a.chunks_added for a in again) == 0 and sum(a.unchanged for a in again) == 12
    assert rows(sharded) == rows(single)

    # a changed file, re-ingested concurrently by both shards (and by a third run of the whole thing)
    (docs / "f1.md").write_text("# File 1\nFile 1 was rewritten about vaults.\n")
    ingest([docs], single, KEYWORD_ONLY, root=tmp_path)
    errors: list[BaseException] = []

    def run(shard: tuple[int, int] | None) -> None:
        try:
            ingest([docs], sharded, KEYWORD_ONLY, root=tmp_path, shard=shard)
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in ((0, 2), (1, 2), (1, 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert rows(sharded) == rows(single)


def test_shard_sync_only_removes_its_own_files(store, tmp_path):
    docs = corpus(tmp_path, files=6)
    ingest([docs], store, KEYWORD_ONLY, root=tmp_path)
    gone = next(s for s in (f"docs/f{i}.md" for i in (1, 2, 4, 5)) if in_shard(s, (0, 2)))
    (tmp_path / gone).unlink()
    summary = ingest([docs], store, KEYWORD_ONLY, root=tmp_path, sync=True, shard=(0, 2))
    assert summary.removed_files == [gone]  # the other shard's files were not "missing" from this run


def test_partition_is_deterministic_and_covers_every_file():
    sources = [f"docs/{i}/file{i}.md" for i in range(200)]
    owners = [[i for i in range(4) if in_shard(s, (i, 4))] for s in sources]
    assert all(len(o) == 1 for o in owners)
    assert {o[0] for o in owners} == {0, 1, 2, 3}
    assert parse_shard("2/4") == (2, 4) and parse_shard("0/1") == (0, 1)


@pytest.mark.parametrize("spec", ["3/2", "2/2", "a/b", "-1/2", "1", "0/0", "1/2/3"])
def test_bad_shard_spec_is_one_line_and_exit_2(spec, tmp_path):
    with pytest.raises(UserError, match="--shard"):
        parse_shard(spec)
    docs = corpus(tmp_path, files=1)
    res = CliRunner().invoke(main, ["--project", str(tmp_path), "ingest", str(docs), "--shard", spec])
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error: bad --shard") and "Traceback" not in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs"]  # nothing written: no store was opened

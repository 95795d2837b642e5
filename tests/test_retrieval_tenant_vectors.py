"""Vectors stored per tenant (migration 0016_retrieval_tenant_vectors), on SQLite and PostgreSQL (where each
tenant's vectors are a partition of `embeddings` with an HNSW graph of its own): a store written before migrates
with every vector kept for each tenant that uses it; the same text in two tenants is embedded once and searched
in each; one tenant's deletes never touch another's vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import event, select, text
from store_revisions import embeddings_before_tenant_vectors
from test_retrieval_embed import Hashing

from flywheel.config import RetrievalConfig
from flywheel.retrieval.embed import embed_pending
from flywheel.retrieval.ingest import ingest
from flywheel.retrieval.retriever import Retriever, open_index
from flywheel.retrieval.synthetic import chunk_row
from flywheel.store import Store
from flywheel.store.schema_retrieval import embeddings, partition_name

MODEL = "synthetic"


def _vector_rows(store: Store) -> set[tuple[str, str]]:
    with store.engine.connect() as conn:
        return {(h, t) for h, t in conn.execute(select(embeddings.c.hash, embeddings.c.tenant))}


def test_a_store_written_before_migrates_with_each_vector_kept_for_every_tenant_using_it(store_url):
    store = Store.open(store_url)
    index = open_index(store)
    shared_a, shared_b = chunk_row("acme", "a.md", 0, "same text"), chunk_row("beta", "b.md", 0, "same text")
    shared_b["embed_hash"] = shared_a["embed_hash"]  # the same text: one vector before this revision
    own = chunk_row("beta", "b.md", 1, "other text")
    with index.transaction() as conn:
        index.insert_chunks(conn, [shared_a, shared_b, own])
    rng = np.random.default_rng(0)
    raw = rng.standard_normal((3, 8))
    unit = (raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(np.float32)
    vecs = dict(zip((shared_a["embed_hash"], own["embed_hash"], "f" * 32), unit, strict=True))  # the last: unused
    pg = store.dialect == "postgresql"
    rows = [{"model": MODEL, "hash": h, "dim": 8,
             "vector": ("[" + ",".join(map(str, v.tolist())) + "]") if pg else v.astype("<f4").tobytes()}
            for h, v in vecs.items()]
    with store.engine.begin() as conn:
        embeddings_before_tenant_vectors(conn, rows=rows)
    store.close()

    store = Store.open(store_url)  # migrates
    try:
        assert _vector_rows(store) == {(shared_a["embed_hash"], "acme"), (shared_a["embed_hash"], "beta"),
                                       (own["embed_hash"], "beta"), ("f" * 32, "")}
        index = open_index(store)
        for tenant, expected in (("acme", {shared_a["id"]}), ("beta", {shared_b["id"], own["id"]})):
            hits = index.dense(tenant, MODEL, vecs[shared_a["embed_hash"]], 5)
            assert len(hits) == len(expected)  # each chunk once, never a copy per tenant holding its text
            assert set(index.fetch([pk for pk, _ in hits], tenant)) == {pk for pk, _ in hits}
        assert index.dense("acme", MODEL, vecs[shared_a["embed_hash"]], 1)[0][1] == pytest.approx(1.0, abs=1e-3)
        # a re-ingest finds every kept vector: a tenant's, another tenant's, one no chunk uses any more
        found = index.get_embeddings(MODEL, [shared_a["embed_hash"], own["embed_hash"], "f" * 32, "0" * 32])
        assert sorted(found) == sorted([shared_a["embed_hash"], own["embed_hash"], "f" * 32])
        assert np.allclose(found["f" * 32], vecs["f" * 32], atol=1e-3)
        if pg:
            with store.engine.connect() as conn:
                parts = {r[0] for r in conn.execute(text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'embeddings'::regclass"))}
                assert parts == {partition_name("acme"), partition_name("beta"), partition_name("")}
                names = {r[0] for r in conn.execute(text(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'embeddings'"))}
            assert index.hnsw_index_name(MODEL, 8) in names
    finally:
        store.close()


def _docs(root: Path, name: str, extra: str = "") -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "guide.md").write_text("# Retries\nThe gateway retries a failed call with backoff.\n\n"
                                     "# Fallback\nA fallback model answers when the primary is down.\n" + extra,
                                     encoding="utf-8")
    return folder


def test_the_same_text_in_two_tenants_is_embedded_once_and_searched_in_each(store_url, tmp_path):
    store = Store.open(store_url)
    try:
        emb = Hashing()
        ingest([_docs(tmp_path, "a")], store, RetrievalConfig(), embedder=emb, tenant="acme", root=tmp_path / "a")
        computed = sum(emb.calls)
        assert computed == 2
        ingest([_docs(tmp_path, "b")], store, RetrievalConfig(), embedder=emb, tenant="beta", root=tmp_path / "b")
        assert sum(emb.calls) == computed  # beta's texts were acme's: copied, not embedded again
        index = open_index(store)
        assert len([t for _h, t in _vector_rows(store)]) == 4  # two texts, each stored for both tenants
        config = RetrievalConfig(min_relevance=None)
        for tenant in ("acme", "beta"):
            hits = Retriever(index, emb, config).search("fallback model primary down", k=2, tenant=tenant)
            assert hits[0].ranks["dense"] == 1 and hits[0].chunk.tenant == tenant
            assert len({h.chunk.id for h in hits}) == 2

        # acme deletes its file (the re-ingest of an emptied folder): beta's vectors and answers stay
        (tmp_path / "a" / "guide.md").unlink()
        ingest([tmp_path / "a"], store, RetrievalConfig(), embedder=emb, tenant="acme", root=tmp_path / "a",
               sync=True)
        hits = Retriever(open_index(store), emb, config).search("fallback model primary down", k=2, tenant="beta")
        assert hits and hits[0].ranks["dense"] == 1
        assert not Retriever(open_index(store), emb, config).search("fallback model", k=2, tenant="acme")
    finally:
        store.close()


def test_the_embed_stage_over_every_tenant_gives_each_its_own_rows(store_url, tmp_path):
    store = Store.open(store_url)
    try:
        emb = Hashing()
        for tenant in ("acme", "beta", "o'brien: 50%"):
            ingest([_docs(tmp_path, tenant.replace("'", "").replace(":", "").replace("%", "").replace(" ", "_"),
                          extra=f"\n# {tenant}\nOnly in this tenant: {tenant}.\n")],
                   store, RetrievalConfig(), embedder=emb, tenant=tenant, root=tmp_path, embed=False)
        index = open_index(store)
        summary = embed_pending(index, emb, None, window=4)  # windows mixing tenants
        assert summary.embedded == 2 + 3  # the two shared texts once, one text of each tenant
        rows = _vector_rows(store)
        assert len(rows) == 3 * 3 and {t for _h, t in rows} == {"acme", "beta", "o'brien: 50%"}
        assert index.count_missing_embeddings(None, emb.name) == 0
    finally:
        store.close()


@pytest.mark.parametrize("target", ["docs", "."])
def test_ingest_sync_removes_the_files_deleted_from_a_folder_even_when_none_is_left(tmp_path, target):
    """`flywheel ingest FOLDER --sync` after deleting the folder's files (was: "has no files to ingest", and the
    deleted pages stayed searchable), and on the project root itself (was: nothing ever removed)."""
    from click.testing import CliRunner

    from flywheel.cli import main

    (tmp_path / "flywheel.yaml").write_text("retrieval: {embedder: none}\n", encoding="utf-8")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Refunds\nRefunds take five days.\n", encoding="utf-8")
    (docs / "b.md").write_text("# Invoices\nInvoices are sent monthly.\n", encoding="utf-8")
    run = CliRunner().invoke
    project = ["--project", str(tmp_path)]
    path = str(docs) if target == "docs" else str(tmp_path)
    assert run(main, [*project, "ingest", path]).exit_code == 0
    (docs / "a.md").unlink()
    if target == "docs":
        (docs / "b.md").unlink()  # the folder is empty now
    result = run(main, [*project, "ingest", path, "--sync", "--json"])
    assert result.exit_code == 0, result.output
    found = run(main, [*project, "search", "refunds", "--json"])
    assert "a.md" not in found.output
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(main, [*project, "ingest", str(empty)]).exit_code == 2  # without --sync: still a mistake


@pytest.mark.postgres
def test_the_reuse_look_up_reads_only_the_partitions_of_tenants_holding_the_text(pg_fresh_url, tmp_path):
    """A tenant's embed stage asks whether another tenant already has a text's vector: the tenants holding the text
    are found through `chunks`, so a partition of an unrelated tenant is never read (proved with a lock on it that
    would block any reader), however many tenants the database holds."""
    import psycopg

    store = Store.open(pg_fresh_url)
    try:
        emb = Hashing()
        for tenant in ("acme", "beta", "unrelated"):
            extra = "" if tenant != "unrelated" else "\n# Other\nNothing in common with the others.\n"
            folder = _docs(tmp_path, tenant) if tenant != "unrelated" else tmp_path / tenant
            if tenant == "unrelated":
                folder.mkdir()
                (folder / "u.md").write_text("# Unrelated\nA page no other tenant has." + extra, encoding="utf-8")
            ingest([folder], store, RetrievalConfig(), embedder=emb, tenant=tenant, root=folder)
        index = open_index(store)
        hashes = [h for h, t in _vector_rows(store) if t == "acme"]

        @event.listens_for(store.engine, "connect")
        def _short_waits(dbapi_conn, _record):  # fail in 2 s instead of waiting, if the partition were read
            with dbapi_conn.cursor() as cur:
                cur.execute("SET lock_timeout = '2s'")
            dbapi_conn.commit()

        store.engine.dispose()
        with psycopg.connect(pg_fresh_url) as locker:
            locker.execute(f"LOCK TABLE {partition_name('unrelated')} IN ACCESS EXCLUSIVE MODE")
            found = index.get_embeddings(emb.name, hashes)
            locker.rollback()
        assert sorted(found) == sorted(hashes)
    finally:
        store.close()

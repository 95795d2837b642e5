"""The retriever's count of files indexed by another keyword tokenizer version follows re-ingests made while it
runs (a long-lived `flywheel serve`): it is kept per tenant under the tenant's write counter, so the warning
appears for files written by an old tokenizer after the retriever started, and the count (and the search
span's `flywheel.retrieval.stale_tokenizer_files`) drops to 0 once they are re-indexed, on SQLite and
PostgreSQL."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from sqlalchemy import update

from flywheel.config import RetrievalConfig
from flywheel.retrieval.ingest import ingest
from flywheel.retrieval.retriever import Retriever, open_index
from flywheel.store import Store
from flywheel.store.schema_retrieval import ingested_files

KEYWORD_ONLY = RetrievalConfig(embedder="none")
PAGES = {
    "invoice.md": "# 发票\n\n订单完成后可以在订单详情页申请电子发票。\n",
    "shipping.md": "# 运费\n\n订单满 99 元包邮，不满 99 元收取 8 元运费。\n",
    "refund.md": "# 退款\n\n自签收之日起 7 天内可以申请无理由退款。\n",
}


def write(root: Path, names: list[str]) -> list[Path]:
    paths = []
    for name in names:
        path = root / "docs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(PAGES[name], encoding="utf-8")
        paths.append(path)
    return paths


def stale_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "tokenizer" in r.getMessage()]


def stale_on_span(spans: list) -> int | None:
    searches = [s for s in spans if s.name == "retrieval.search"]
    return searches[-1].attributes.get("flywheel.retrieval.stale_tokenizer_files")


def test_a_reingest_in_the_same_process_clears_the_count_and_the_warning(store_url, tmp_path, caplog, spans):
    paths = write(tmp_path, list(PAGES))
    store = Store.open(store_url)
    try:
        ingest(paths, store, KEYWORD_ONLY, tenant="shop", root=tmp_path)
        with store.engine.begin() as conn:  # a store as TOKENIZER_VERSION 1 left it (migrated, never re-indexed)
            conn.execute(update(ingested_files).values(tokenizer=None, settings="indexed-by-version-1"))
        retriever = Retriever(open_index(store), None, KEYWORD_ONLY)  # the one a running `serve` keeps
        with caplog.at_level(logging.WARNING, logger="flywheel.retrieval"):
            assert retriever.search("发票", tenant="shop")
            assert retriever.search("运费", tenant="shop")
            assert len(stale_warnings(caplog)) == 1 and "3 of 3 indexed files" in stale_warnings(caplog)[0]
            assert stale_on_span(spans) == 3

            caplog.clear()
            ingest(paths[:1], store, KEYWORD_ONLY, tenant="shop", root=tmp_path)  # one file re-indexed
            assert retriever.stale_tokenizer_files("shop") == 2
            assert ["2 of 3 indexed files" in m for m in stale_warnings(caplog)] == [True]

            caplog.clear()
            ingest(paths, store, KEYWORD_ONLY, tenant="shop", root=tmp_path)  # the rest
            assert retriever.search("发票", tenant="shop")
            assert retriever.stale_tokenizer_files("shop") == 0
            assert stale_on_span(spans) is None and stale_warnings(caplog) == []
    finally:
        store.close()


def test_files_an_old_tokenizer_writes_after_the_retriever_started_are_warned_about(tmp_path, caplog,
                                                                                    monkeypatch):
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        ingest(write(tmp_path, ["invoice.md"]), store, KEYWORD_ONLY, tenant="shop", root=tmp_path)
        retriever = Retriever(open_index(store), None, KEYWORD_ONLY)
        with caplog.at_level(logging.WARNING, logger="flywheel.retrieval"):
            assert retriever.search("发票", tenant="shop") and retriever.stale_tokenizer_files("shop") == 0
            # another process with an older flywheel ingests into the same store
            monkeypatch.setattr(sys.modules["flywheel.retrieval.ingest"], "TOKENIZER_VERSION", "1")
            ingest(write(tmp_path, ["shipping.md"]), store, KEYWORD_ONLY, tenant="shop", root=tmp_path)
            assert retriever.search("运费", tenant="shop")
            assert retriever.stale_tokenizer_files("shop") == 1
            warned = stale_warnings(caplog)
            assert len(warned) == 1 and "1 of 2 indexed files of tenant 'shop' (docs/shipping.md)" in warned[0]
            # a write that leaves the count as it was (a new file, this tokenizer) does not repeat the warning
            monkeypatch.undo()
            ingest(write(tmp_path, ["refund.md"]), store, KEYWORD_ONLY, tenant="shop", root=tmp_path)
            assert retriever.search("退款", tenant="shop") and retriever.stale_tokenizer_files("shop") == 1
            assert len(stale_warnings(caplog)) == 1
    finally:
        store.close()

"""Two writers creating the same new tenant at once (`flywheel ingest --shard 0/2` and `--shard 1/2` into a new
tenant, on PostgreSQL): the second one's counter row used to be a plain INSERT that failed with a unique
violation once the first committed, killing that shard's ingest."""

from __future__ import annotations

import threading

import pytest

from flywheel.retrieval.retriever import open_index
from flywheel.store import Store

pytestmark = pytest.mark.postgres


def test_two_transactions_bumping_a_new_tenant_both_commit(pg_fresh_url):
    with Store.open(pg_fresh_url) as store:
        index = open_index(store)
        errors: list[BaseException] = []
        with index.engine.connect() as first:
            first.begin()
            index.bump(first, "fresh", 5)  # the row is inserted, not committed yet

            def second() -> None:
                try:
                    with index.engine.connect() as conn, conn.begin():
                        index.bump(conn, "fresh", 7)  # waits on the first one's row, then counts on top of it
                        index.refresh_languages("fresh2")  # and a new tenant's languages alone
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            worker = threading.Thread(target=second)
            worker.start()
            worker.join(1.0)  # gives the second writer time to block on the uncommitted row
            first.commit()
        worker.join(30)
        assert not worker.is_alive()
        assert errors == []
        with index.engine.connect() as conn:
            assert index.chunk_counts(conn, "fresh") == (12, 12)
            assert index.version(conn, "fresh") == 2

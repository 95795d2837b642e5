"""`flywheel store copy --append` finishes an interrupted copy; into a target that holds OTHER rows under the same
integer ids (two stores merged), those source rows cannot be copied. They used to be counted as "already in the
target, skipped", as if copied before: now they are counted as `conflicts` per table and the command warns, on
both engines as the target."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import insert, select

import flywheel.cli.store  # noqa: F401 - registers `flywheel store`
from flywheel.cli import main
from flywheel.store import Store
from flywheel.store.copy import copy_store
from flywheel.store.schema_feedback import feedback


def _feedback(url: str, trace_ids: list[str]) -> None:
    with Store.open(url) as store, store.begin() as conn:
        for tid in trace_ids:
            conn.execute(insert(feedback).values(trace_id=tid, source="user", name="thumbs", value="up",
                                                 comment="好", created_at=1.0))


def test_rows_whose_ids_another_row_holds_are_conflicts_not_skips(tmp_path: Path, store_url: str):
    src = f"sqlite:///{tmp_path / 'src.db'}"
    _feedback(src, ["a" * 32, "b" * 32])
    _feedback(store_url, ["c" * 32])  # the target's own row 1
    with Store.open(src) as s, Store.open(store_url) as d:
        summary = copy_store(s, d, append=True)
        with d.connect() as conn:
            trace_ids = sorted(r[0] for r in conn.execute(select(feedback.c.trace_id)))
    assert trace_ids == ["b" * 32, "c" * 32]  # source row 1 could not be copied
    assert summary.skipped == 1 and summary.conflicts == {"feedback": 1}
    result = CliRunner().invoke(main, ["store", "copy", src, store_url, "--append", "--json"])
    assert result.exit_code == 0, result.output
    assert "rows were not copied: their ids are taken in the target by other rows (feedback 1)" in result.output


def test_finishing_an_interrupted_copy_has_no_conflicts(tmp_path: Path, store_url: str):
    src = f"sqlite:///{tmp_path / 'src.db'}"
    _feedback(src, ["a" * 32, "b" * 32])
    with Store.open(src) as s, Store.open(store_url) as d:
        first = copy_store(s, d)
        again = copy_store(s, d, append=True)
    assert first.copied == 2 and again.skipped == 2 and again.copied == 0 and again.conflicts == {}

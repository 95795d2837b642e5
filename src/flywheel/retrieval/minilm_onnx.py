"""all-MiniLM-L6-v2 on ONNX Runtime: the fastest CPU backend measured here, with the NumPy reference's vectors
(fp32; max |Δ| ≈ 1e-6, so the embedding cache key stays `all-MiniLM-L6-v2`; checked in
tests/test_retrieval_onnx.py).

The ONNX graph is built once per machine from the weights shipped in the package (minilm.py), with the `onnx`
helper API, no torch: embeddings + LayerNorm, 6 BERT layers (attention as MatMul/Softmax, exact-erf GELU),
mean pooling and L2 normalisation inside the graph (exactly the model's modules.json). ONNX Runtime fuses it
at load (LayerNorm, BiasGelu, FusedMatMul); the fused Attention/SkipLayerNorm kernels of the earlier torch
export were measured at the same CPU time per chunk here. Building takes ~2 s and needs `onnx`; running needs
only onnxruntime. The file lives in the user cache, shared by every project:

    $FLYWHEEL_CACHE_DIR/onnx/<model>-<key>/model.onnx   (default ~/.cache/flywheel, or $XDG_CACHE_HOME/flywheel)

where <key> hashes the weights' config and size, EXPORT_VERSION and onnxruntime's major.minor version. The
file is written under a temporary name, checked against the NumPy forward pass on a few sentences, then
renamed into place (atomic), so a reader never sees half a file; processes building at the same time queue on
a lock file and the later ones find it ready. int8 quantisation was measured and rejected: dynamic int8 gave
cosine 0.75-0.95 to the reference vectors on mixed English/Chinese text (the gate is 0.99); see docs/retrieval.md.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from flywheel.retrieval.minilm import WEIGHTS, NumpyMiniLM, length_batches, load_weights

log = logging.getLogger("flywheel.retrieval")
EXPORT_VERSION = "2"  # bump when the build recipe changes: a new key, so a new file (1: torch.onnx.export)
OPSET = 17
PARITY_TOLERANCE = 1e-4  # max |Δ| to the NumPy forward pass on the probe sentences, or the build is discarded
PROBES = ["How do I pin a model version?", "模型版本在配置文件中固定。", "a",
          "Retrieval-augmented generation combines BM25 and dense vectors. " * 40]  # the last one is truncated
def cache_root() -> Path:
    """The user-level cache shared by every flywheel project on this machine."""
    if os.environ.get("FLYWHEEL_CACHE_DIR"):
        return Path(os.environ["FLYWHEEL_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "flywheel"


def runtime_available() -> bool:
    return find_spec("onnxruntime") is not None


def export_available() -> bool:
    """Whether this machine can build the ONNX file (the `onnx` package, part of the `local` extra)."""
    return all(find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def _runtime_version() -> str:
    """onnxruntime's major.minor: its fused operators are what the file holds, so a new runtime re-exports."""
    try:
        return ".".join(metadata.version("onnxruntime").split(".")[:2])
    except metadata.PackageNotFoundError:
        return "none"


@functools.lru_cache(maxsize=8)
def _key(model_dir: Path, recipe: str) -> str:
    digest = hashlib.sha256()
    digest.update((model_dir / "config.json").read_bytes())
    digest.update(str((model_dir / WEIGHTS).stat().st_size).encode())
    digest.update(f"{recipe} onnxruntime {_runtime_version()}".encode())
    return digest.hexdigest()[:12]


def model_path(model_dir: Path, name: str) -> Path:
    """Where the exported model of `model_dir` lives (whether or not it exists yet)."""
    key = _key(model_dir, f"export {EXPORT_VERSION} opset {OPSET}")
    return cache_root() / "onnx" / f"{name}-{key}" / "model.onnx"


def cached_model(model_dir: Path, name: str) -> Path | None:
    path = model_path(model_dir, name)
    return path if path.is_file() else None


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (POSIX); elsewhere no lock, and concurrent exports just repeat the work."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_model(model_dir: Path, name: str, max_seq_length: int) -> Path:
    """The ONNX model, building it first when this machine has none (about two seconds, once)."""
    target = model_path(model_dir, name)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / ".lock"):
        if target.is_file():  # another process finished it while we waited
            return target
        started = time.perf_counter()
        log.info("building the ONNX model of %s once: %s", name, target)
        fd, tmp = tempfile.mkstemp(prefix=".export-", suffix=".onnx", dir=target.parent)
        os.close(fd)
        try:
            tensors, cfg = load_weights(model_dir)
            _export(tensors, cfg, Path(tmp))
            err = _parity(Path(tmp), model_dir, max_seq_length)
            if err > PARITY_TOLERANCE:
                raise RuntimeError(f"the ONNX model differs from the NumPy one by {err:.2e} (> {PARITY_TOLERANCE})")
            meta = {"model": name, "export_version": EXPORT_VERSION, "opset": OPSET, "max_abs_diff": err,
                    "reference": "numpy", "seconds": round(time.perf_counter() - started, 2)}
            (target.parent / "export.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
            os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache may be shared (FLYWHEEL_CACHE_DIR)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        log.info("exported %s to ONNX in %.1f s (max |Δ| to numpy %.1e)", name, meta["seconds"], err)
    return target


def _export(w: dict[str, np.ndarray], cfg: dict, out: Path) -> None:
    """Write the graph: input_ids, attention_mask (B, T) int64 → embedding (B, dim) float32, L2-normalised."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    d, heads, eps = int(cfg["hidden_size"]), int(cfg["num_attention_heads"]), float(cfg["layer_norm_eps"])
    inits: list = []
    nodes: list = []

    def const(name: str, value: np.ndarray | float) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(kind: str, inputs: list[str], name: str, **attrs: object) -> str:
        nodes.append(helper.make_node(kind, inputs, [name], name=name, **attrs))
        return name

    def linear(x: str, prefix: str, name: str) -> str:
        weight = const(prefix + ".weight", np.ascontiguousarray(w[prefix + ".weight"].T))
        return op("Add", [op("MatMul", [x, weight], name + "_mm"), const(prefix + ".bias", w[prefix + ".bias"])], name)

    def norm(x: str, prefix: str, name: str) -> str:
        scale, bias = const(prefix + ".weight", w[prefix + ".weight"]), const(prefix + ".bias", w[prefix + ".bias"])
        return op("LayerNormalization", [x, scale, bias], name, axis=-1, epsilon=eps)

    f32 = np.float32
    for name, value in (("i0", [0]), ("i1", [1]), ("i2", [2]), ("i12", [1, 2]),
                        ("heads_shape", [0, 0, heads, d // heads]), ("flat_shape", [0, 0, d])):
        const(name, np.array(value, np.int64))
    for name, scalar in (("one", 1.0), ("neg", -1e9), ("scale", 1.0 / np.sqrt(d // heads)), ("sqrt2", np.sqrt(2.0)),
                         ("half", 0.5), ("tiny", 1e-9), ("tiny2", 1e-12)):
        const(name, np.array(scalar, f32))
    const("word", w["embeddings.word_embeddings.weight"])
    # token type is always 0: its row is folded into the position table
    const("pos", w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0])
    tokens = op("Slice", [op("Shape", ["input_ids"], "ids_shape"), "i1", "i2"], "tokens")
    x = op("Add", [op("Gather", ["word", "input_ids"], "word_rows"), op("Slice", ["pos", "i0", tokens, "i0"],
                                                                        "pos_rows")], "emb_sum")
    x = norm(x, "embeddings.LayerNorm", "emb")
    maskf = op("Cast", ["attention_mask"], "maskf", to=TensorProto.FLOAT)
    bias = op("Unsqueeze", [op("Mul", [op("Sub", ["one", maskf], "inv_mask"), "neg"], "mask_add"), "i12"],
              "mask_bias")  # (B, 1, 1, T)
    for i in range(int(cfg["num_hidden_layers"])):
        p, n = f"encoder.layer.{i}.", f"l{i}_"

        def split(which: str, perm: list[int], p: str = p, n: str = n, x: str = x) -> str:
            flat = linear(x, p + f"attention.self.{which}", n + which)
            return op("Transpose", [op("Reshape", [flat, "heads_shape"], n + which + "_h")], n + which + "_t",
                      perm=perm)

        q, k, v = split("query", [0, 2, 1, 3]), split("key", [0, 2, 3, 1]), split("value", [0, 2, 1, 3])
        scores = op("Add", [op("Mul", [op("MatMul", [q, k], n + "qk"), "scale"], n + "scaled"), bias], n + "scores")
        ctx = op("MatMul", [op("Softmax", [scores], n + "probs", axis=-1), v], n + "ctx")
        ctx = op("Reshape", [op("Transpose", [ctx], n + "ctx_t", perm=[0, 2, 1, 3]), "flat_shape"], n + "ctx_flat")
        x = norm(op("Add", [x, linear(ctx, p + "attention.output.dense", n + "att")], n + "res1"),
                 p + "attention.output.LayerNorm", n + "norm1")
        up = linear(x, p + "intermediate.dense", n + "up")
        erf = op("Erf", [op("Div", [up, "sqrt2"], n + "up_s")], n + "erf")
        gelu = op("Mul", [op("Mul", [up, op("Add", [erf, "one"], n + "erf1")], n + "g0"), "half"], n + "gelu")
        x = norm(op("Add", [x, linear(gelu, p + "output.dense", n + "down")], n + "res2"),
                 p + "output.LayerNorm", n + "norm2")
    mask3 = op("Unsqueeze", [maskf, "i2"], "mask3")
    summed = op("ReduceSum", [op("Mul", [x, mask3], "masked"), "i1"], "summed", keepdims=0)
    count = op("Max", [op("ReduceSum", [mask3, "i1"], "count", keepdims=0), "tiny"], "count_min")
    pooled = op("Div", [summed, count], "pooled")
    length = op("Max", [op("ReduceL2", [pooled], "l2", axes=[1], keepdims=1), "tiny2"], "l2_min")
    nodes.append(helper.make_node("Div", [pooled, length], ["embedding"], name="embedding"))
    graph = helper.make_graph(
        nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "tokens"]) for n in ("input_ids",
                                                                                             "attention_mask")],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", d])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="flywheel")
    model.ir_version = 8  # readable by every onnxruntime that supports opset 17
    onnx.checker.check_model(model)
    onnx.save(model, str(out))


def _probe_batch(model_dir: Path, max_seq_length: int) -> tuple[np.ndarray, np.ndarray]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_seq_length)
    encodings = [e.ids for e in tok.encode_batch(PROBES)]
    _, ids, mask = next(length_batches(encodings, token_budget=10**9))
    return ids, mask


def _parity(path: Path, model_dir: Path, max_seq_length: int) -> float:
    ids, mask = _probe_batch(model_dir, max_seq_length)
    reference = NumpyMiniLM(model_dir, max_seq_length).forward(ids, mask.astype(np.float32))
    got = OnnxMiniLM(path, threads=1).run(ids, mask)
    return float(np.abs(got - reference).max())


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class OnnxMiniLM:
    """An onnxruntime session over the exported model; `encode` takes already-tokenised inputs."""

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_count()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        # Idle worker threads would otherwise spin after each run, taking the cores from what follows (the
        # NumPy vector scan right after a query embedding ran 2x slower; SQLite writes during ingest).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = path
        self.threads = options.intra_op_num_threads
        self.version = ort.__version__
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        width = self.session.get_outputs()[0].shape[-1]
        self.dim = width if isinstance(width, int) else 384

    def run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]

    def encode(self, encodings: list[list[int]], token_budget: int = 1024) -> np.ndarray:
        out = np.zeros((len(encodings), self.dim), np.float32)
        for idx, ids, mask in length_batches(encodings, token_budget):
            out[idx] = self.run(ids, mask)
        return out

"""all-MiniLM-L6-v2 on ONNX Runtime: the fastest CPU backend measured here, with sentence-transformers' vectors
(fp32; max |Δ| ≈ 3e-7, so the embedding cache key stays `all-MiniLM-L6-v2`; checked in
tests/test_retrieval_onnx.py).

The ONNX file is made once per machine from the packaged weights: torch.onnx.export of the BERT encoder with
mean pooling and L2 normalisation inside the graph (exactly the model's modules.json), then onnxruntime's BERT
fusions (Attention, SkipLayerNorm, BiasGelu). Making it needs torch, transformers and onnx (the `local` extra);
running it needs only onnxruntime. It lives in the user cache, shared by every project:

    $FLYWHEEL_CACHE_DIR/onnx/<model>-<key>/model.onnx   (default ~/.cache/flywheel, or $XDG_CACHE_HOME/flywheel)

where <key> hashes the weights' config and size, EXPORT_VERSION and onnxruntime's major.minor version. The
file is written under a temporary name, checked against the torch model on a few sentences, then renamed into
place (atomic), so a reader never sees half a file; processes exporting at the same time queue on a lock file
and the later ones find it ready. int8 quantisation was measured and rejected: dynamic int8 gave cosine
0.75-0.95 to the reference vectors on mixed English/Chinese text (the gate is 0.99); see docs/retrieval.md.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from flywheel.retrieval.minilm import length_batches

log = logging.getLogger("flywheel.retrieval")
EXPORT_VERSION = "1"  # bump when the export recipe changes: a new key, so a new file
OPSET = 17
PARITY_TOLERANCE = 1e-4  # max |Δ| to the torch model on the probe sentences, or the export is discarded
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
    return all(find_spec(m) is not None for m in ("torch", "transformers", "onnx", "onnxruntime"))


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
    digest.update(str((model_dir / "model.safetensors").stat().st_size).encode())
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
    """The exported model, exporting it first when this machine has none (a few seconds, once)."""
    target = model_path(model_dir, name)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / ".lock"):
        if target.is_file():  # another process finished it while we waited
            return target
        started = time.perf_counter()
        log.info("exporting %s to ONNX once: %s", name, target)
        fd, tmp = tempfile.mkstemp(prefix=".export-", suffix=".onnx", dir=target.parent)
        os.close(fd)
        raw = Path(tmp).with_suffix(".raw.onnx")
        try:
            reference = _export(model_dir, raw, max_seq_length)
            _fuse(raw, Path(tmp), model_dir)
            err = _parity(Path(tmp), model_dir, max_seq_length, reference)
            if err > PARITY_TOLERANCE:
                raise RuntimeError(f"exported model differs from torch by {err:.2e} (> {PARITY_TOLERANCE})")
            meta = {"model": name, "export_version": EXPORT_VERSION, "opset": OPSET, "max_abs_diff": err,
                    "seconds": round(time.perf_counter() - started, 2)}
            (target.parent / "export.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
            os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache may be shared (FLYWHEEL_CACHE_DIR)
            os.replace(tmp, target)
        finally:
            for leftover in (Path(tmp), raw):
                leftover.unlink(missing_ok=True)
        log.info("exported %s to ONNX in %.1f s (max |Δ| to torch %.1e)", name, meta["seconds"], err)
    return target


def _export(model_dir: Path, out: Path, max_seq_length: int) -> np.ndarray:
    """torch.onnx.export of encoder + mean pooling + normalisation; returns the torch vectors of PROBES."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    # Eager attention exports as plain MatMul/Softmax, which onnxruntime fuses into its Attention kernel.
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class Pooled(torch.nn.Module):
        def __init__(self, encoder: torch.nn.Module):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    pooled = Pooled(model).eval()
    ids, mask = _probe_batch(model_dir, max_seq_length)
    with torch.inference_mode():
        reference = pooled(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    dynamic = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
               "embedding": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings about the TorchScript exporter
        torch.onnx.export(pooled, (torch.from_numpy(ids[:2, :16]), torch.from_numpy(mask[:2, :16])), str(out),
                          input_names=["input_ids", "attention_mask"], output_names=["embedding"],
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
    return reference


def _fuse(raw: Path, out: Path, model_dir: Path) -> None:
    from onnxruntime.transformers import optimizer

    cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    # The optimizer's modules log every fusion at INFO under their bare module names (fusion_base, …).
    folder = str(Path(optimizer.__file__).parent)
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(folder):
            logging.getLogger(name).setLevel(logging.WARNING)
            logging.getLogger(name.rsplit(".", 1)[-1]).setLevel(logging.WARNING)
    fused = optimizer.optimize_model(str(raw), model_type="bert", num_heads=int(cfg["num_attention_heads"]),
                                     hidden_size=int(cfg["hidden_size"]), opt_level=1)
    fused.save_model_to_file(str(out))


def _probe_batch(model_dir: Path, max_seq_length: int) -> tuple[np.ndarray, np.ndarray]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_seq_length)
    encodings = [e.ids for e in tok.encode_batch(PROBES)]
    _, ids, mask = next(length_batches(encodings, token_budget=10**9))
    return ids, mask


def _parity(path: Path, model_dir: Path, max_seq_length: int, reference: np.ndarray) -> float:
    ids, mask = _probe_batch(model_dir, max_seq_length)
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

"""all-MiniLM-L6-v2 on ONNX Runtime: the fastest CPU backend measured here, with the NumPy forward pass's
vectors (max |Δ| ≈ 1e-6, so the embedding cache key stays `all-MiniLM-L6-v2`; tests/test_retrieval_onnx.py).

The graph ships in the package (models/all-MiniLM-L6-v2/model.onnx, ~50 KB, written by scripts/minilm_onnx.py):
its weights are not a copy but references into model.fp16.safetensors (ONNX external data), cast to float32
and transposed by nodes that ONNX Runtime folds when the session is created. So there is nothing to export or
download at first use, no torch and no `onnx` package at run time, and no per-machine cache. int8 quantisation
was measured and rejected: dynamic int8 gave cosine 0.75-0.95 to the reference vectors on mixed
English/Chinese text (the gate is 0.99); see docs/retrieval.md.
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from flywheel.retrieval.minilm import MODEL_DIR, length_batches

MODEL_FILE = MODEL_DIR / "model.onnx"


def runtime_available() -> bool:
    return find_spec("onnxruntime") is not None


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

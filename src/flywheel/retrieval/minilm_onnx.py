"""all-MiniLM-L6-v2 on ONNX Runtime: the fastest CPU backend measured here, with the NumPy forward pass's
vectors (max |Δ| ≈ 1e-6, so the embedding cache key stays `all-MiniLM-L6-v2`; tests/test_retrieval_onnx.py).

The graph ships in the package (models/all-MiniLM-L6-v2/model.onnx, ~50 KB, written by scripts/minilm_onnx.py
with bert_onnx.py, the builder that also makes the graph of a user's model folder in memory):
its weights are not a copy but references into model.fp16.safetensors (ONNX external data), cast to float32
and transposed by nodes that ONNX Runtime folds when the session is created. So there is nothing to export or
download at first use, no torch and no `onnx` package at run time, and no per-machine cache. Whole-model dynamic
int8 gave cosine 0.75-0.95 to the reference vectors (the gate is 0.99). model.int8.onnx (the default since
2026-12-05, its own cache key INT8_NAME; FLYWHEEL_EMBED_INT8=0 for fp32) runs the feed-forward input and attention
output MatMuls in int8 with 7-bit weights, one text per run: cosine ≥ 0.993 to fp32, about 1.3x the fp32 graph on
AVX2, the same retrieval quality; see docs/retrieval.md.
"""

from __future__ import annotations

import os
import queue
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.retrieval.minilm import MAX_ROWS, MODEL_DIR, length_batches

MODEL_FILE = MODEL_DIR / "model.onnx"
# FFN-input and attention-output MatMuls in int8, 7-bit weights (scripts/minilm_onnx.py INT8_LAYERS): ~1.3x faster
# on AVX2, cosine ≥ 0.99 to fp32 but not the same vectors, so it has its own embedder name (the default)
INT8_MODEL_FILE = MODEL_DIR / "model.int8.onnx"
INT8_NAME = "all-MiniLM-L6-v2-int8"


def runtime_available() -> bool:
    return find_spec("onnxruntime") is not None


THREADS_PER_SESSION = 4  # MiniLM's matrices are small: past ~4 threads one run stops getting faster
# On 2 cores, two single-threaded sessions each running its own batch are as fast as one session of 2 threads
# on an idle machine and ~35 % faster on a busy one: no thread waits at each of the graph's ~100 operators for
# another that was descheduled (worker threads do not spin, see _session). docs/retrieval.md has the figures.
SINGLE_THREADED_BELOW = 3


def cpu_count() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (a container given
    `--cpus 2` on a 64-core host must not start 64 threads that then take turns) and by OMP_NUM_THREADS when
    set (the usual knob; a Ray worker gets its task's CPUs there, so two tasks on a node don't each take all)."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        cores = max(1, os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    if limit.isdigit() and int(limit) > 0:
        cores = min(cores, int(limit))
    return cores


def session_layout(cores: int) -> tuple[int, int]:
    """(sessions, intra-op threads each): batches run side by side on several sessions when there are more
    cores than one run can use, and below SINGLE_THREADED_BELOW cores on one single-threaded session per core
    (FLYWHEEL_EMBED_SESSIONS overrides the count)."""
    wanted = os.environ.get("FLYWHEEL_EMBED_SESSIONS", "")
    if wanted.isdigit() and int(wanted) > 0:
        sessions = int(wanted)
    elif cores < SINGLE_THREADED_BELOW:
        sessions = cores
    else:
        sessions = max(1, cores // THREADS_PER_SESSION)
    sessions = min(sessions, cores)
    return sessions, max(1, cores // sessions)


class OnnxBert:
    """onnxruntime sessions over a BERT graph (bert_onnx.py: the file shipped for MiniLM, or the serialized bytes
    built from a user's model folder); `encode` takes already-tokenised inputs. Inputs are cut into batches of
    similar length (minilm.length_batches); with several sessions, batches run concurrently (onnxruntime
    releases the GIL), each session on its own share of the cores."""

    def __init__(self, path: Path | bytes, threads: int | None = None, sessions: int | None = None,
                 per_text: bool = False):
        import onnxruntime as ort

        # the int8 graph quantises its whole input at once: run one text at a time, so each text's vector comes
        # from its own range and never from what it was batched with (batched, cosine to itself alone ≥ 0.992)
        self.max_rows = 1 if per_text else MAX_ROWS

        cores = threads or cpu_count()
        n_sessions, per_session = (sessions, max(1, cores // sessions)) if sessions else session_layout(cores)
        self.path = path
        self.threads = per_session
        self.version = ort.__version__
        self.sessions = [self._session(ort, path, per_session) for _ in range(n_sessions)]
        self.session = self.sessions[0]
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for session in self.sessions:
            self._free.put(session)
        self._pool = ThreadPoolExecutor(n_sessions, thread_name_prefix="flywheel-onnx") if n_sessions > 1 else None
        width = self.session.get_outputs()[0].shape[-1]
        self.dim = width if isinstance(width, int) else 384

    @staticmethod
    def _session(ort: Any, path: Path | bytes, threads: int) -> Any:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        # Idle worker threads would otherwise spin after each run, taking the cores from what follows (the
        # NumPy vector scan right after a query embedding ran 2x slower; SQLite writes during ingest).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model = path if isinstance(path, bytes) else str(path)
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def describe(self) -> str:
        n = len(self.sessions)
        return f"{n} sessions × {self.threads} threads" if n > 1 else f"{self.threads} threads"

    def run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        session = self._free.get()
        try:
            return session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        finally:
            self._free.put(session)

    def encode(self, encodings: list[list[int]], token_budget: int = 1024) -> np.ndarray:
        out = np.zeros((len(encodings), self.dim), np.float32)
        batches = list(length_batches(encodings, token_budget, self.max_rows))
        if self._pool is None or len(batches) < 2:
            for idx, ids, mask in batches:
                out[idx] = self.run(ids, mask)
            return out
        for (idx, _, _), vectors in zip(batches, self._pool.map(lambda b: self.run(b[1], b[2]), batches),
                                        strict=True):
            out[idx] = vectors
        return out


OnnxMiniLM = OnnxBert  # the shipped model's name for it

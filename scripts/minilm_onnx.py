"""Write src/flywheel/retrieval/models/all-MiniLM-L6-v2/model.onnx: the graph of all-MiniLM-L6-v2 for ONNX
Runtime, and model.int8.onnx, its int8 variant (INT8_LAYERS below). Their weights are not copied but referenced
inside model.fp16.safetensors (ONNX external data: file, offset, length), so the package ships the 45 MB of weights once and the graph is a few kilobytes. Needs `onnx` (a
development tool only; running the graph needs onnxruntime alone).

    python scripts/minilm_onnx.py          # after scripts/minilm_fp16.py, or when the recipe below changes

The graph: embeddings + LayerNorm, 6 BERT layers, mean pooling over real tokens and L2 normalisation (exactly
the model's modules.json). Self-attention is ONNX Runtime's fused `Attention` (com.microsoft; CPU kernel: one
GEMM for Q, K and V, per-head softmax with the padding mask), which measured 1-2 % less CPU time than
MatMul/Softmax/Transpose nodes (vectors within 1.5e-7); the rest stays plain (MatMul, Add, LayerNormalization,
exact-erf GELU that ORT fuses into BiasGelu itself). `SkipLayerNormalization` was measured too and was slower
than Add + LayerNormalization on this CPU. Each float16 weight goes through Cast (and Transpose for the dense
layers, and Concat for the Q/K/V matrix); ONNX Runtime folds those at session creation, so the weights are
float32 in memory, stored once in the package, and each run costs what an fp32 export costs.
tests/test_retrieval_onnx.py checks the vectors against the NumPy forward pass and that this script still
writes the shipped file byte for byte.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parents[1] / "src/flywheel/retrieval/models/all-MiniLM-L6-v2"
WEIGHTS = "model.fp16.safetensors"
OPSET = 17
# Not shipped, kept to reproduce docs/retrieval.md's int8 table: `graph_bytes(int8=FFN_INT8_LAYERS)` runs the six
# feed-forward input MatMuls in int8 (u8u8). It passes the 0.99 cosine gate (min 0.993) but was no faster than fp32
# on an idle AVX2 machine (0.95-1.04x); int8 in the feed-forward output MatMuls too fails the gate (min 0.975).
FFN_INT8_LAYERS = frozenset(f"l{i}_up" for i in range(6))
# Shipped as model.int8.onnx: the feed-forward input and attention output MatMuls in int8 with 7-bit weights (u8s8,
# `reduce_range`), so AVX2's fast u8s8 kernel cannot saturate. Cosine to fp32 ≥ 0.9926 on 3,500 en/zh texts and
# 1.15-1.23x the fp32 graph's speed (docs/retrieval.md). Adding the Q/K/V product (l*_qkv) fails the gate (0.989).
INT8_LAYERS = frozenset(f"l{i}_{k}" for i in range(6) for k in ("up", "att"))
INT8_FILE = "model.int8.onnx"


def graph_bytes(model_dir: Path = MODEL_DIR, int8: frozenset[str] = frozenset(), reduce_range: bool = False) -> bytes:
    """The serialized model (deterministic: the same bytes for the same weights file and recipe). `int8` names
    the dense layers (`l0_up` … `l5_up`, `l0_down` …, `l0_att`, `l0_qkv`) that run in int8, `reduce_range` with
    7-bit weights (u8s8) instead of u8u8. The builder is the package's
    (flywheel.retrieval.bert_onnx, also used for models in a user's folder)."""
    from flywheel.retrieval.bert_onnx import ExternalFloat16
    from flywheel.retrieval.bert_onnx import graph_bytes as build

    cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return build(cfg, ExternalFloat16(model_dir / WEIGHTS), "all-MiniLM-L6-v2", int8=int8,
                 reduce_range=reduce_range)


def main(model_dir: Path = MODEL_DIR) -> None:
    import onnx

    for out, graph in ((model_dir / "model.onnx", graph_bytes(model_dir)),
                       (model_dir / INT8_FILE, graph_bytes(model_dir, INT8_LAYERS, reduce_range=True))):
        out.write_bytes(graph)
        onnx.checker.check_model(str(out))  # by path: it resolves the external data next to the file
        print(f"{out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else MODEL_DIR)

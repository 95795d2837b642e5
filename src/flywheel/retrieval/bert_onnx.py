"""The one ONNX graph builder for BERT-family sentence encoders (all-MiniLM-L6-v2 shipped with flywheel, and any
BERT / XLM-R folder given as `retrieval.embedder_model`), written with onnx_proto.py so it needs no `onnx`.

The graph: embeddings + LayerNorm, the encoder layers, pooling (mean over real tokens, or the first token) and
L2 normalisation. Self-attention is ONNX Runtime's fused `Attention` (com.microsoft; CPU kernel: one GEMM for Q,
K and V, per-head softmax with the padding mask), which measured 1-2 % less CPU time than
MatMul/Softmax/Transpose nodes (vectors within 1.5e-7); the rest stays plain (MatMul, Add, LayerNormalization,
exact-erf GELU that ORT fuses into BiasGelu itself). `SkipLayerNormalization` was measured too and was slower
than Add + LayerNormalization on this CPU. Dense weights go through Transpose (and Concat for the Q/K/V matrix),
which ONNX Runtime folds at session creation, so a run costs what a pre-transposed export costs.

Weights come from a WeightSource: `ExternalFloat16` references float16 tensors inside a safetensors file (ONNX
external data, each cast to float32 by a Cast node that ORT folds too: the shipped MiniLM graph is ~50 KB);
`InlineFloat32` puts float32 arrays into the graph itself (a user's model folder, built in memory at load).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Protocol

import numpy as np

from flywheel.retrieval import onnx_proto as pb

OPSET = 17
INT8 = 3  # TensorProto.INT8 (only the experimental int8 graphs use it)


class WeightSource(Protocol):
    def shape(self, key: str) -> list[int]: ...

    def initializer(self, key: str) -> tuple[bytes, str, bool]:
        """(TensorProto, its name, whether it needs a Cast to float32)."""
        ...


class ExternalFloat16:
    """Float16 tensors of a safetensors file, referenced by (file, offset, length), not copied."""

    def __init__(self, path: Path):
        with path.open("rb") as f:
            size = struct.unpack("<Q", f.read(8))[0]
            self.header = json.loads(f.read(size))
        self.base = 8 + size
        self.location = path.name

    def shape(self, key: str) -> list[int]:
        return list(self.header[key]["shape"])

    def initializer(self, key: str) -> tuple[bytes, str, bool]:
        info = self.header[key]
        if info["dtype"] != "F16":
            raise ValueError(f"{key} is {info['dtype']}, expected F16")
        begin, end = info["data_offsets"]
        name = key + ".f16"
        return pb.external_tensor(name, pb.FLOAT16, info["shape"], self.location, self.base + begin,
                                  end - begin), name, True


class InlineFloat32:
    """Float32 arrays (keys without `bert.` / `roberta.` prefixes) stored in the graph."""

    def __init__(self, tensors: dict[str, np.ndarray]):
        self.tensors = tensors

    def shape(self, key: str) -> list[int]:
        return list(self.tensors[key].shape)

    def initializer(self, key: str) -> tuple[bytes, str, bool]:
        return pb.tensor(key, self.tensors[key].astype(np.float32)), key, False


def graph_bytes(cfg: dict, weights: WeightSource, name: str, pooling: str = "mean", position_offset: int = 0,
                int8: frozenset[str] = frozenset(), reduce_range: bool = False) -> bytes:
    """The serialized model (deterministic: the same bytes for the same weights and recipe). Inputs input_ids
    and attention_mask (int64, (batch, tokens)), output `embedding` (float32, (batch, hidden), L2-normalised).
    `position_offset`: the first position id (XLM-R/RoBERTa count from padding_idx + 1). `int8` names dense
    layers (`l0_up` … `l5_up`, `l0_down` …, `l0_att`, and `l0_qkv` for the fused attention's Q/K/V product) that
    run in int8 (see int8_linear; not shipped). `reduce_range`: 7-bit int8 weights (u8s8) instead of u8u8."""
    d, heads, eps = int(cfg["hidden_size"]), int(cfg["num_attention_heads"]), float(cfg["layer_norm_eps"])
    inits: list[bytes] = []
    nodes: list[bytes] = []

    def op(kind: str, inputs: list[str], out: str, domain: str | None = None, **attrs: object) -> str:
        nodes.append(pb.node(kind, inputs, [out], out, domain, **attrs))  # type: ignore[arg-type]
        return out

    def const(cname: str, value: np.ndarray) -> str:
        inits.append(pb.tensor(cname, np.asarray(value)))
        return cname

    def weight(key: str, transpose: bool = False) -> str:
        init, tname, cast = weights.initializer(key)
        inits.append(init)
        out = op("Cast", [tname], key + ".f32", to=pb.FLOAT) if cast else tname
        return op("Transpose", [out], key + ".t", perm=[1, 0]) if transpose else out

    def linear(x: str, prefix: str, lname: str) -> str:
        if lname in int8:
            return int8_linear(x, prefix, lname)
        mm = op("MatMul", [x, weight(prefix + ".weight", transpose=True)], lname + "_mm")
        return op("Add", [mm, weight(prefix + ".bias")], lname)

    def s7_weights(w: str, lname: str, columns: int) -> tuple[str, str, str]:
        """(int8 weights in ±63, per-column scale, int8 zero points) of a (in, out) float32 weight: 7 bits, so
        that AVX2's u8s8 kernel (vpmaddubsw adds u8×s8 product pairs in saturating int16) cannot saturate:
        2 × 255 × 63 < 32767. ONNX Runtime's `reduce_range` recipe for CPUs without VNNI."""
        peak = op("Max", [op("ReduceMax", [op("Abs", [w], lname + "_wabs")], lname + "_wmax", axes=[0],
                             keepdims=0), "tiny"], lname + "_wpeak")
        scale = op("Div", [peak, "q63"], lname + "_wscale")
        q = op("Clip", [op("Round", [op("Div", [w, scale], lname + "_wdiv")], lname + "_wround"), "qmin63", "q63"],
               lname + "_wclip")
        qt = op("Cast", [q], lname + "_wq", to=INT8)
        zero = op("Cast", [const(lname + "_wzero_f", np.zeros(columns, np.float32))], lname + "_wzero", to=INT8)
        return qt, scale, zero

    def int8_linear(x: str, prefix: str, lname: str) -> str:
        if reduce_range:
            w = weight(prefix + ".weight", transpose=True)
            qt, scale, zero = s7_weights(w, lname, int(weights.shape(prefix + ".weight")[0]))
            return op("DynamicQuantizeMatMul", [x, qt, scale, zero, weight(prefix + ".bias")], lname,
                      domain="com.microsoft")
        return u8u8_linear(x, prefix, lname)

    def u8u8_linear(x: str, prefix: str, lname: str) -> str:
        """com.microsoft DynamicQuantizeMatMul: x quantised to uint8 on each run (over the whole tensor), the
        weights per output column, symmetric (±127), derived from the weights by nodes that ONNX Runtime folds at
        session creation. The weights are stored as uint8 around a zero point of 128 (u8u8), not int8: on AVX2
        without VNNI the u8s8 kernel adds pairs of products in saturating int16 (vpmaddubsw), which moved vectors
        by up to 0.01 and would make them depend on the CPU. Superseded by reduce_range (s7_weights), which keeps u8s8
        exact and is faster; kept to reproduce docs/retrieval.md's u8u8 row."""
        w = weight(prefix + ".weight", transpose=True)  # (in, out) float32
        peak = op("Max", [op("ReduceMax", [op("Abs", [w], lname + "_wabs")], lname + "_wmax", axes=[0],
                             keepdims=0), "tiny"], lname + "_wpeak")
        scale = op("Div", [peak, "q127"], lname + "_wscale")
        q = op("Clip", [op("Round", [op("Div", [w, scale], lname + "_wdiv")], lname + "_wround"), "qmin", "q127"],
               lname + "_wclip")
        qt = op("Cast", [op("Add", [q, "q128"], lname + "_wshift")], lname + "_wq", to=pb.UINT8)
        zero = const(lname + "_wzero", np.full(int(weights.shape(prefix + ".weight")[0]), 128, np.uint8))
        return op("DynamicQuantizeMatMul", [x, qt, scale, zero, weight(prefix + ".bias")], lname,
                  domain="com.microsoft")

    def norm(x: str, prefix: str, nname: str) -> str:
        return op("LayerNormalization", [x, weight(prefix + ".weight"), weight(prefix + ".bias")], nname,
                  axis=-1, epsilon=eps)

    for cname, value in (("i0", [0]), ("i1", [1]), ("i2", [2])):
        const(cname, np.array(value, np.int64))
    for cname, scalar in (("one", 1.0), ("sqrt2", np.sqrt(2.0)), ("half", 0.5), ("tiny", 1e-9),
                          ("tiny2", 1e-12)):
        const(cname, np.array(scalar, np.float32))
    if int8:
        for cname, scalar in (("q127", 127.0), ("qmin", -127.0), ("q128", 128.0), ("q63", 63.0), ("qmin63", -63.0)):
            const(cname, np.array(scalar, np.float32))
    if position_offset:
        const("first_pos", np.array([position_offset], np.int64))
    # token type is always 0: its first row is added to every position
    type0 = op("Gather", [weight("embeddings.token_type_embeddings.weight"), "i0"], "type0")
    positions = op("Add", [weight("embeddings.position_embeddings.weight"), type0], "pos")
    tokens = op("Slice", [op("Shape", ["input_ids"], "ids_shape"), "i1", "i2"], "tokens")
    word = op("Gather", [weight("embeddings.word_embeddings.weight"), "input_ids"], "word_rows")
    if position_offset:
        rows = op("Slice", [positions, "first_pos", op("Add", [tokens, "first_pos"], "last_pos"), "i0"], "pos_rows")
    else:
        rows = op("Slice", [positions, "i0", tokens, "i0"], "pos_rows")
    x = op("Add", [word, rows], "emb_sum")
    x = norm(x, "embeddings.LayerNorm", "emb")
    maskf = op("Cast", ["attention_mask"], "maskf", to=pb.FLOAT)
    mask32 = op("Cast", ["attention_mask"], "mask32", to=pb.INT32)  # (B, T) 1 = token, 0 = padding
    for i in range(int(cfg["num_hidden_layers"])):
        p, n = f"encoder.layer.{i}.", f"l{i}_"
        qkv_w, qkv_b = (op("Concat", [weight(p + f"attention.self.{which}.{part}", transpose=part == "weight")
                                      for which in ("query", "key", "value")], n + f"qkv_{part}", axis=axis)
                        for part, axis in (("weight", 1), ("bias", 0)))
        # softmax(QKᵀ/√d_head + mask) V per head, heads concatenated: (B, T, d)
        if n + "qkv" in int8:  # x quantised to uint8 on each run, Q/K/V weights 7-bit per column (QAttention)
            xq, xs, xz = (n + "xq", n + "xs", n + "xz")
            nodes.append(pb.node("DynamicQuantizeLinear", [x], [xq, xs, xz], n + "xquant"))
            qt, scale, zero = s7_weights(qkv_w, n + "qkv", 3 * d)
            ctx = op("QAttention", [xq, qt, qkv_b, xs, scale, mask32, xz, zero], n + "ctx", domain="com.microsoft",
                     num_heads=heads)
        else:
            ctx = op("Attention", [x, qkv_w, qkv_b, mask32], n + "ctx", domain="com.microsoft", num_heads=heads)
        x = norm(op("Add", [x, linear(ctx, p + "attention.output.dense", n + "att")], n + "res1"),
                 p + "attention.output.LayerNorm", n + "norm1")
        up = linear(x, p + "intermediate.dense", n + "up")
        erf = op("Erf", [op("Div", [up, "sqrt2"], n + "up_s")], n + "erf")
        gelu = op("Mul", [op("Mul", [up, op("Add", [erf, "one"], n + "erf1")], n + "g0"), "half"], n + "gelu")
        x = norm(op("Add", [x, linear(gelu, p + "output.dense", n + "down")], n + "res2"),
                 p + "output.LayerNorm", n + "norm2")
    if pooling == "cls":
        const("first", np.array(0, np.int64))
        pooled = op("Gather", [x, "first"], "pooled", axis=1)
    else:
        mask3 = op("Unsqueeze", [maskf, "i2"], "mask3")
        summed = op("ReduceSum", [op("Mul", [x, mask3], "masked"), "i1"], "summed", keepdims=0)
        count = op("Max", [op("ReduceSum", [mask3, "i1"], "count", keepdims=0), "tiny"], "count_min")
        pooled = op("Div", [summed, count], "pooled")
    length = op("Max", [op("ReduceL2", [pooled], "l2", axes=[1], keepdims=1), "tiny2"], "l2_min")
    op("Div", [pooled, length], "embedding")
    inputs = [pb.value_info(i, pb.INT64, ["batch", "tokens"]) for i in ("input_ids", "attention_mask")]
    outputs = [pb.value_info("embedding", pb.FLOAT, ["batch", d])]
    # Attention is a contrib op; ir_version 8: readable by every onnxruntime that runs opset 17
    return pb.model(nodes, name, inits, inputs, outputs, [("", OPSET), ("com.microsoft", 1)], "flywheel", 8)

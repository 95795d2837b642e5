"""Write src/flywheel/retrieval/models/all-MiniLM-L6-v2/model.onnx: the graph of all-MiniLM-L6-v2 for ONNX
Runtime, its weights not copied but referenced inside model.fp16.safetensors (ONNX external data: file, offset,
length), so the package ships the 45 MB of weights once and the graph is a few kilobytes. Needs `onnx` (a
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
import struct
import sys
from pathlib import Path

import numpy as np

MODEL_DIR = Path(__file__).resolve().parents[1] / "src/flywheel/retrieval/models/all-MiniLM-L6-v2"
WEIGHTS = "model.fp16.safetensors"
OPSET = 17
# Not shipped, kept to reproduce docs/retrieval.md's int8 table: `graph_bytes(int8=FFN_INT8_LAYERS)` runs the six
# feed-forward input MatMuls in int8. It passes the 0.99 cosine gate (min 0.993) but was no faster than fp32 on
# an idle AVX2 machine (0.95-1.04x); int8 in the feed-forward output MatMuls too fails the gate (min 0.975).
FFN_INT8_LAYERS = frozenset(f"l{i}_up" for i in range(6))


def graph_bytes(model_dir: Path = MODEL_DIR, int8: frozenset[str] = frozenset()) -> bytes:
    """The serialized model (deterministic: the same bytes for the same weights file and recipe). `int8` names
    the dense layers (`l0_up` … `l5_up`, `l0_down` …) whose MatMul runs in int8 (see int8_linear)."""
    from onnx import TensorProto, helper, numpy_helper

    cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    with (model_dir / WEIGHTS).open("rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
    base = 8 + size
    d, heads, eps = int(cfg["hidden_size"]), int(cfg["num_attention_heads"]), float(cfg["layer_norm_eps"])
    inits: list = []
    nodes: list = []

    def op(kind: str, inputs: list[str], name: str, **attrs: object) -> str:
        nodes.append(helper.make_node(kind, inputs, [name], name=name, **attrs))
        return name

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(key: str, transpose: bool = False) -> str:
        """A float16 tensor of the safetensors file, by reference, cast (and transposed) to float32."""
        info = header[key]
        assert info["dtype"] == "F16", key
        t = TensorProto(name=key + ".f16", data_type=TensorProto.FLOAT16, dims=info["shape"],
                        data_location=TensorProto.EXTERNAL)
        begin, end = info["data_offsets"]
        for k, v in (("location", WEIGHTS), ("offset", str(base + begin)), ("length", str(end - begin))):
            t.external_data.add(key=k, value=v)
        inits.append(t)
        out = op("Cast", [t.name], key + ".f32", to=TensorProto.FLOAT)
        return op("Transpose", [out], key + ".t", perm=[1, 0]) if transpose else out

    def linear(x: str, prefix: str, name: str) -> str:
        if name in int8:
            return int8_linear(x, prefix, name)
        mm = op("MatMul", [x, weight(prefix + ".weight", transpose=True)], name + "_mm")
        return op("Add", [mm, weight(prefix + ".bias")], name)

    def int8_linear(x: str, prefix: str, name: str) -> str:
        """com.microsoft DynamicQuantizeMatMul: x quantised to uint8 on each run (over the whole tensor), the
        weights per output column, symmetric (±127), derived from the float16 weights by nodes that ONNX Runtime
        folds at session creation. The weights are stored as uint8 around a zero point of 128 (u8u8), not int8:
        on AVX2 without VNNI the u8s8 kernel adds pairs of products in saturating int16 (vpmaddubsw), which
        moved vectors by up to 0.01 and would make them depend on the CPU; u8u8 is exact and as fast here."""
        w = weight(prefix + ".weight", transpose=True)  # (in, out) float32
        peak = op("Max", [op("ReduceMax", [op("Abs", [w], name + "_wabs")], name + "_wmax", axes=[0], keepdims=0),
                          "tiny"], name + "_wpeak")
        scale = op("Div", [peak, "q127"], name + "_wscale")
        q = op("Clip", [op("Round", [op("Div", [w, scale], name + "_wdiv")], name + "_wround"), "qmin", "q127"],
               name + "_wclip")
        qt = op("Cast", [op("Add", [q, "q128"], name + "_wshift")], name + "_wq", to=TensorProto.UINT8)
        zero = const(name + "_wzero", np.full(int(header[prefix + ".weight"]["shape"][0]), 128, np.uint8))
        nodes.append(helper.make_node("DynamicQuantizeMatMul", [x, qt, scale, zero, weight(prefix + ".bias")],
                                      [name], name=name, domain="com.microsoft"))
        return name

    def norm(x: str, prefix: str, name: str) -> str:
        return op("LayerNormalization", [x, weight(prefix + ".weight"), weight(prefix + ".bias")], name,
                  axis=-1, epsilon=eps)

    for name, value in (("i0", [0]), ("i1", [1]), ("i2", [2])):
        const(name, np.array(value, np.int64))
    for name, scalar in (("one", 1.0), ("sqrt2", np.sqrt(2.0)), ("half", 0.5), ("tiny", 1e-9),
                         ("tiny2", 1e-12)):
        const(name, np.array(scalar, np.float32))
    if int8:
        for name, scalar in (("q127", 127.0), ("qmin", -127.0), ("q128", 128.0)):
            const(name, np.array(scalar, np.float32))
    # token type is always 0: its first row is added to every position
    type0 = op("Gather", [weight("embeddings.token_type_embeddings.weight"), "i0"], "type0")
    positions = op("Add", [weight("embeddings.position_embeddings.weight"), type0], "pos")
    tokens = op("Slice", [op("Shape", ["input_ids"], "ids_shape"), "i1", "i2"], "tokens")
    x = op("Add", [op("Gather", [weight("embeddings.word_embeddings.weight"), "input_ids"], "word_rows"),
                   op("Slice", [positions, "i0", tokens, "i0"], "pos_rows")], "emb_sum")
    x = norm(x, "embeddings.LayerNorm", "emb")
    maskf = op("Cast", ["attention_mask"], "maskf", to=TensorProto.FLOAT)
    mask32 = op("Cast", ["attention_mask"], "mask32", to=TensorProto.INT32)  # (B, T) 1 = token, 0 = padding
    for i in range(int(cfg["num_hidden_layers"])):
        p, n = f"encoder.layer.{i}.", f"l{i}_"
        qkv_w, qkv_b = (op("Concat", [weight(p + f"attention.self.{which}.{part}", transpose=part == "weight")
                                      for which in ("query", "key", "value")], n + f"qkv_{part}", axis=axis)
                        for part, axis in (("weight", 1), ("bias", 0)))
        ctx = n + "ctx"  # softmax(QKᵀ/√d_head + mask) V per head, heads concatenated: (B, T, d)
        nodes.append(helper.make_node("Attention", [x, qkv_w, qkv_b, mask32], [ctx], name=ctx,
                                      domain="com.microsoft", num_heads=heads))
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
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "tokens"])
         for n in ("input_ids", "attention_mask")],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", d])], initializer=inits)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]  # Attention: contrib op
    model = helper.make_model(graph, opset_imports=opsets, producer_name="flywheel")
    model.ir_version = 8  # readable by every onnxruntime that runs opset 17
    return model.SerializeToString(deterministic=True)


def main(model_dir: Path = MODEL_DIR) -> None:
    import onnx

    out = model_dir / "model.onnx"
    out.write_bytes(graph_bytes(model_dir))
    onnx.checker.check_model(str(out))  # by path: it resolves the external data next to the file
    print(f"{out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else MODEL_DIR)

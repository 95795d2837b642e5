"""all-MiniLM-L6-v2 in NumPy: the weights shipped with flywheel, their loader, and a forward pass that gives
sentence-transformers' vectors (cosine ≥ 0.99999, see models/all-MiniLM-L6-v2/NOTICE.md) without torch.

The weights live in the package (models/all-MiniLM-L6-v2/, Apache-2.0): float16 safetensors (45 MB, half the
original), upcast to float32 when loaded, with the model's tokenizer.json (read by wordpiece.py), config.json
and the ONNX graph (minilm_onnx.py). So the `local` extra needs only onnxruntime, and nothing is downloaded.

BERT encoder (6 layers, 384 wide, 12 heads, exact-erf GELU) → mean pooling over real tokens → L2 normalisation,
exactly what the model's modules.json (Transformer → Pooling(mean) → Normalize) prescribes. The forward pass
(NumpyBert) is the one for every BERT-family model: a user's folder (model_folder.py) runs through it too, with
CLS pooling and XLM-R position ids where its files say so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

MODEL_DIR = Path(__file__).resolve().parent / "models" / "all-MiniLM-L6-v2"
WEIGHTS = "model.fp16.safetensors"


_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file (an 8-byte header length, a JSON header, then the raw little-endian
    data): the format is simple enough that reading it needs no package."""
    with path.open("rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        if info["dtype"] == "BF16":  # NumPy has no bfloat16: it is the top half of a float32
            half = np.frombuffer(data, "<u2", count=(end - begin) // 2, offset=begin)
            out[name] = (half.astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])
            continue
        if info["dtype"] not in _DTYPES:
            continue  # e.g. a bool buffer; not a weight the encoder reads
        dtype = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
        out[name] = np.frombuffer(data, dtype, count=(end - begin) // dtype.itemsize, offset=begin
                                  ).reshape(info["shape"])
    return out


def load_weights(model_dir: Path) -> tuple[dict[str, np.ndarray], dict]:
    """(tensors upcast to float32, config.json) of the model in `model_dir`."""
    cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    tensors = {k: v.astype(np.float32) for k, v in read_safetensors(model_dir / WEIGHTS).items()}
    return tensors, cfg


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to within 4e-7 in float32 (Numerical Recipes' erfc, fractional error < 1.2e-7): NumPy has no erf and
    scipy is not a dependency of the `local` extra."""
    z = np.abs(x)
    t = np.float32(1.0) / (np.float32(1.0) + np.float32(0.5) * z)
    poly = np.float32(0.17087277)
    for c in (-0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806, 0.09678418, 0.37409196,
              1.00002368, -1.26551223):
        poly = np.float32(c) + t * poly
    tail = t * np.exp(poly - z * z)
    return np.where(x >= 0, np.float32(1.0) - tail, tail - np.float32(1.0)).astype(np.float32)


MAX_ROWS = 256  # texts in one batch at most (length_batches)
INT8_KINDS = ("up", "att")  # the int8 graph's layers (scripts/minilm_onnx.py INT8_LAYERS): FFN input, attention output


def s7_weights(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(weights rounded to ±63 as float32, per-column scale) of an (in, out) float32 matrix: the int8 graph's
    7-bit symmetric weights (bert_onnx.s7_weights), computed the same way in float32."""
    scale = (np.maximum(np.abs(w).max(0), np.float32(1e-9)) / np.float32(63)).astype(np.float32)
    return np.clip(np.round(w / scale), -63, 63).astype(np.float32), scale


def int8_matmul(x: np.ndarray, mask: np.ndarray, w_q: np.ndarray, w_scale: np.ndarray, bias: np.ndarray
                ) -> np.ndarray:
    """onnxruntime's DynamicQuantizeMatMul run on one text at a time, in float32: each text's activations
    `x` (B, T, in) quantised to uint8 over its own real tokens (range widened to include 0, scale
    (max - min) / 255, zero point rounded half to even), times the 7-bit weights. The integer sums stay below
    2^24 (in × 255 × 63 for in ≤ 1024), so float32 holds them exactly whatever order BLAS adds them in."""
    real = mask[:, :, None] > 0
    lo = np.minimum(np.where(real, x, np.inf).min((1, 2)), 0).astype(np.float32)
    hi = np.maximum(np.where(real, x, -np.inf).max((1, 2)), 0).astype(np.float32)
    scale = np.where(hi > lo, (hi - lo) / np.float32(255), np.float32(1)).astype(np.float32)
    zero = np.round(np.clip(-lo / scale, 0, 255)).astype(np.float32)
    q = np.clip(np.round(x / scale[:, None, None]) + zero[:, None, None], 0, 255) - zero[:, None, None]
    b, t, d = x.shape
    acc = (q.reshape(b * t, d) @ w_q).reshape(b, t, -1)
    return acc * (scale[:, None, None] * w_scale) + bias


class NumpyBert:
    """The one NumPy forward pass of a BERT-family encoder (BERT, XLM-R/RoBERTa) with sentence-transformers'
    pooling: `w` holds float32 tensors named without a `bert.`/`roberta.` prefix, `cfg` is the config.json.
    `pooling` is `mean` (over real tokens) or `cls` (the first token); `position_offset` is the first position id
    (XLM-R/RoBERTa count positions from padding_idx + 1, BERT from 0). `int8`: the feed-forward input and attention
    output products run as the int8 graph runs them (int8_matmul), giving its vectors."""

    def __init__(self, w: dict[str, np.ndarray], cfg: dict, max_seq_length: int, pooling: str = "mean",
                 position_offset: int = 0, int8: bool = False):
        self.int8 = int8
        self.heads = int(cfg["num_attention_heads"])
        self.eps = np.float32(cfg["layer_norm_eps"])
        self.max_seq_length = max_seq_length
        self.pooling = pooling
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"][position_offset:]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.embed_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.dim = int(self.word.shape[1])
        self.layers: list[dict[str, Any]] = []
        for i in range(int(cfg["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            qkv = [w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")]
            self.layers.append({
                "qkv_w": np.ascontiguousarray(np.concatenate(qkv).T),
                "qkv_b": np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")]),
                "out_w": np.ascontiguousarray(w[p + "attention.output.dense.weight"].T),
                "out_b": w[p + "attention.output.dense.bias"],
                "norm1": (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
                "up_w": np.ascontiguousarray(w[p + "intermediate.dense.weight"].T),
                "up_b": w[p + "intermediate.dense.bias"],
                "down_w": np.ascontiguousarray(w[p + "output.dense.weight"].T),
                "down_b": w[p + "output.dense.bias"],
                "norm2": (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
            })
            if int8:
                for kind, key in zip(INT8_KINDS, ("up_w", "out_w"), strict=True):
                    self.layers[-1][kind + "_q"] = s7_weights(self.layers[-1][key])

    def _norm(self, x: np.ndarray, params: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(-1, keepdims=True)
        return centered / np.sqrt(var + self.eps) * params[0] + params[1]

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Sentence embeddings (B, dim) for token ids (B, T) with attention mask (B, T) of 0/1 float32."""
        b, t = ids.shape
        h, d = self.heads, self.dim
        hd = d // h
        scale = np.float32(1.0 / np.sqrt(hd))
        x = self._norm(self.word[ids] + self.position[:t] + self.token_type, self.embed_norm)
        bias = ((1.0 - mask) * np.float32(-1e9)).astype(np.float32)[:, None, None, :]
        for layer in self.layers:
            qkv = (x.reshape(b * t, d) @ layer["qkv_w"] + layer["qkv_b"]).reshape(b, t, 3, h, hd)
            q = np.ascontiguousarray(qkv[:, :, 0].transpose(0, 2, 1, 3))
            k_t = np.ascontiguousarray(qkv[:, :, 1].transpose(0, 2, 3, 1))
            v = np.ascontiguousarray(qkv[:, :, 2].transpose(0, 2, 1, 3))
            scores = (q @ k_t) * scale + bias
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(b * t, d)
            if self.int8:
                (att_w, att_scale), (up_w, up_scale) = layer["att_q"], layer["up_q"]
                att = int8_matmul(ctx.reshape(b, t, d), mask, att_w, att_scale, layer["out_b"])
                x = self._norm(x + att, layer["norm1"])
                up = int8_matmul(x, mask, up_w, up_scale, layer["up_b"]).reshape(b * t, -1)
            else:
                x = self._norm(x + (ctx @ layer["out_w"] + layer["out_b"]).reshape(b, t, d), layer["norm1"])
                up = x.reshape(b * t, d) @ layer["up_w"] + layer["up_b"]
            up = np.float32(0.5) * up * (np.float32(1.0) + _erf(up * np.float32(1 / np.sqrt(2))))
            x = self._norm(x + (up @ layer["down_w"] + layer["down_b"]).reshape(b, t, d), layer["norm2"])
        if self.pooling == "cls":
            pooled = x[:, 0]
        else:
            m = mask[:, :, None]
            pooled = (x * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def encode(self, encodings: list[list[int]], token_budget: int = 4096) -> np.ndarray:
        """Embed already-tokenised inputs ([CLS] … [SEP] ids), batching similar lengths together."""
        out = np.zeros((len(encodings), self.dim), np.float32)
        for idx, ids, mask in length_batches(encodings, token_budget):
            out[idx] = self.forward(ids, mask.astype(np.float32))
        return out


class NumpyMiniLM(NumpyBert):
    """all-MiniLM-L6-v2 from the weights shipped in the package (mean pooling)."""

    def __init__(self, model_dir: Path = MODEL_DIR, max_seq_length: int = 256, int8: bool = False):
        w, cfg = load_weights(model_dir)
        super().__init__(w, cfg, max_seq_length, int8=int8)


def length_batches(encodings: list[list[int]], token_budget: int, max_rows: int = MAX_ROWS
                   ) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
    """(row indices, ids (B, T) int64, mask (B, T) int64) batches of inputs of similar length, each about
    `token_budget` tokens padded: sorting by length all but removes padding, and a fixed token budget instead of
    a fixed row count keeps every batch's activations in cache whether the texts are short or long."""
    order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i]))
    start = 0
    while start < len(order):
        longest = max(len(encodings[order[start]]), 1)
        rows = max(1, min(max_rows, token_budget // longest))
        idx = order[start:start + rows]
        start += rows
        ids = np.zeros((len(idx), longest), np.int64)
        mask = np.zeros((len(idx), longest), np.int64)
        for row, i in enumerate(idx):
            n = len(encodings[i])
            ids[row, :n] = encodings[i]
            mask[row, :n] = 1
        yield idx, ids, mask

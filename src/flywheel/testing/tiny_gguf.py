"""A tiny Llama model with random weights as one GGUF file, for llama.cpp servers, written without any download.

    from flywheel.testing.tiny_gguf import write_tiny_gguf
    write_tiny_gguf("tiny.gguf")          # or: python -m flywheel.testing.tiny_gguf tiny.gguf

    pip install 'llama-cpp-python[server]'
    python -m llama_cpp.server --model tiny.gguf --port 8080    # then base_url: http://127.0.0.1:8080/v1

The model is the one `flywheel.testing.tiny_model` writes as a Hugging Face folder, in llama.cpp's format: a
Llama architecture with hidden size 64 and 2 layers, the byte-level BPE tokenizer trained here on a short text
(so any text, Chinese included, tokenizes: bytes outside the merges stay bytes), and a ChatML chat template
whose end-of-turn `<|im_end|>` is the end-of-generation token. Its answers are noise; what it is for is
trying flywheel against a real llama.cpp server (chat, streaming, log-probabilities, embeddings) in seconds on
a CPU, as the tests do. Same seed, same file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from flywheel.errors import UserError
from flywheel.testing.tiny_model import CHAT_TEMPLATE, CORPUS, SPECIAL_TOKENS

# llama.cpp's token types (llama_token_type)
NORMAL, CONTROL = 1, 3


def _tokenizer(vocab_size: int) -> tuple[list[str], list[str]]:
    """(tokens by id, merges) of a byte-level BPE trained on CORPUS; the special tokens come first."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator([line for line in CORPUS.splitlines() if line.strip()], trainer)
    vocab = bpe.get_vocab()
    tokens = sorted(vocab, key=vocab.__getitem__)
    merges = json.loads(bpe.to_str())["model"]["merges"]  # newer tokenizers write pairs, older "a b"
    return tokens, [m if isinstance(m, str) else " ".join(m) for m in merges]


def write_tiny_gguf(out: str | Path, *, seed: int = 0, vocab_size: int = 600, hidden_size: int = 64,
                    layers: int = 2, embedding_std: float = 0.2, context_length: int = 4096,
                    pooling: str | None = None) -> Path:
    """Write the tiny model to the file `out` (its folder is created; an existing file is refused). Returns it.
    `pooling` ("mean", "cls", "last") makes it an embedding model: llama.cpp then returns one vector per text
    instead of one per token."""
    try:
        import gguf
        import tokenizers  # noqa: F401  (checked here so the error names it)
    except ImportError as exc:
        raise UserError(f"writing a GGUF model needs the `gguf` and `tokenizers` packages ({exc.name} is missing)",
                        hint="pip install gguf tokenizers") from None
    path = Path(out)
    if path.exists():
        raise UserError(f"{path} already exists", hint="pick a new file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    tokens, merges = _tokenizer(vocab_size)
    n_vocab, heads, kv_heads = len(tokens), 4, 2
    head_dim, ffn = hidden_size // heads, hidden_size * 2
    rng = np.random.default_rng(seed)

    def weight(rows: int, cols: int, std: float = 0.02) -> np.ndarray:
        return rng.normal(0.0, std, (rows, cols)).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("flywheel tiny random-weights model")
    writer.add_context_length(context_length)
    writer.add_embedding_length(hidden_size)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    if pooling is not None:
        writer.add_pooling_type(gguf.PoolingType[pooling.upper()])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types([CONTROL if t in SPECIAL_TOKENS else NORMAL for t in tokens])
    writer.add_token_merges(merges)
    writer.add_eos_token_id(tokens.index("<|im_end|>"))
    writer.add_pad_token_id(tokens.index("<|endoftext|>"))
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    # a larger spread than the usual 0.02 so the logits differ (tiny_model explains why)
    embeddings = weight(n_vocab, hidden_size, embedding_std)
    writer.add_tensor("token_embd.weight", embeddings)
    writer.add_tensor("output_norm.weight", np.ones(hidden_size, dtype=np.float32))
    writer.add_tensor("output.weight", embeddings.copy())
    for i in range(layers):
        block = f"blk.{i}."
        writer.add_tensor(block + "attn_norm.weight", np.ones(hidden_size, dtype=np.float32))
        writer.add_tensor(block + "attn_q.weight", weight(heads * head_dim, hidden_size))
        writer.add_tensor(block + "attn_k.weight", weight(kv_heads * head_dim, hidden_size))
        writer.add_tensor(block + "attn_v.weight", weight(kv_heads * head_dim, hidden_size))
        writer.add_tensor(block + "attn_output.weight", weight(hidden_size, heads * head_dim))
        writer.add_tensor(block + "ffn_norm.weight", np.ones(hidden_size, dtype=np.float32))
        writer.add_tensor(block + "ffn_gate.weight", weight(ffn, hidden_size))
        writer.add_tensor(block + "ffn_up.weight", weight(ffn, hidden_size))
        writer.add_tensor(block + "ffn_down.weight", weight(hidden_size, ffn))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


if __name__ == "__main__":  # python -m flywheel.testing.tiny_gguf OUT.gguf
    if len(sys.argv) != 2:
        sys.exit("usage: python -m flywheel.testing.tiny_gguf OUT.gguf")
    print(write_tiny_gguf(sys.argv[1]))

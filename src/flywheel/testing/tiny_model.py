"""A tiny causal language model with random weights, written to a folder without any download.

    from flywheel.testing.tiny_model import write_tiny_model
    write_tiny_model("tiny-base")          # or: python -m flywheel.testing.tiny_model tiny-base

The folder is a regular Hugging Face model (`AutoModelForCausalLM.from_pretrained(folder)` loads it): a Llama
architecture with hidden size 64 and 2 layers (about 100k parameters), and a byte-level BPE tokenizer trained
here, with the `tokenizers` library, on a short built-in text (plus any `extra_text`), wrapped as a
`PreTrainedTokenizerFast` with a ChatML chat template and `<|im_end|>` as its end-of-turn token.

It knows nothing: its answers are noise until fine-tuned. That is what it is for — trying
`flywheel finetune` and the `transformers` provider end to end in seconds on a CPU (the tests do), before
pointing them at a real model. Same seed, same weights.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from flywheel.errors import UserError
from flywheel.text.install import pip_install

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# What the tokenizer's merges are learned from: ordinary English support-desk prose, so that questions and
# answers of that kind take a reasonable number of tokens. Bytes outside it still encode (byte-level BPE).
CORPUS = """\
You are a helpful assistant. Answer the question from the sources, and cite them like [1].
Question: How do refunds work? Refunds are paid back to the card within five business days.
Question: How do I reset my password? Open the account settings and choose reset password.
Shipping takes two to four days in the EU and one week to the US. Invoices are sent by email every month.
Accounts can be shared with a team. Pricing depends on the plan: free, team and enterprise.
Exports run nightly at 02:00 UTC. Webhooks retry three times. Tokens expire after one hour.
Backups are kept for thirty days in two regions. The billing console shows every invoice and payment.
What is the capital of France? Paris. What is the capital of Italy? Rome. The answer is yes, or no.
The sources do not cover this question, so I cannot answer it from them.
"""


def write_tiny_model(out: str | Path, *, seed: int = 0, vocab_size: int = 600, hidden_size: int = 64,
                     layers: int = 2, embedding_std: float = 0.2, extra_text: str = "") -> Path:
    """Write the tiny model and its tokenizer to `out` (created; must not hold a model already). Returns it."""
    try:
        import torch
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    except ImportError as exc:
        raise UserError(f"the tiny model needs torch and transformers ({exc.name} is missing)",
                        hint=pip_install("finetune")) from None
    folder = Path(out)
    if (folder / "config.json").exists():
        raise UserError(f"{folder} already holds a model", hint="pick an empty folder")
    folder.mkdir(parents=True, exist_ok=True)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator([line for line in (CORPUS + extra_text).splitlines() if line.strip()], trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=None, eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", unk_token=None)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, tie_word_embeddings=True,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=None)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
        with torch.no_grad():
            # The default init (std 0.02) caps every logit near 1: no output could ever be confident, and a
            # LoRA adapter (which leaves the tied embeddings / LM head alone) could not teach it an answer.
            embeddings: Any = model.get_input_embeddings()
            embeddings.weight.normal_(0.0, embedding_std)
    finally:
        torch.random.set_rng_state(state)  # the caller's random stream is left as it was
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    (folder / "flywheel-tiny-model.json").write_text(json.dumps(
        {"what": "random weights for testing (flywheel.testing.tiny_model)", "seed": seed,
         "parameters": sum(p.numel() for p in model.parameters())}, indent=2) + "\n", encoding="utf-8")
    return folder


def main(argv: list[str]) -> None:
    """python -m flywheel.testing.tiny_model OUT: write the model, print its folder — and nothing else."""
    if len(argv) != 1:
        print("usage: python -m flywheel.testing.tiny_model OUT_FOLDER", file=sys.stderr)
        sys.exit(2)
    try:  # no "Writing model shards" progress bar on stderr; transformers' warnings still show
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass  # write_tiny_model says what to install
    try:
        print(write_tiny_model(argv[0]))
    except UserError as exc:  # a folder that already holds a model, torch missing: no traceback
        print(f"error: {exc.render()}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main(sys.argv[1:])

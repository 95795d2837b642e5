"""`flywheel finetune`: LoRA fine-tuning of a local Hugging Face causal LM on exported SFT rows.

    result = finetune("models/base", Path("sft.jsonl"), Path("tuned"), FinetuneOptions(epochs=3))

The rows (finetune_data.py) are rendered with the base tokenizer's chat template and the loss is taken on the
assistant turns only. Training is a plain torch loop — AdamW, gradient clipping at 1.0, optional gradient
accumulation, a fixed learning rate — over LoRA adapters (peft) on the attention and MLP projections (found by
name for Llama / Qwen / Mistral / Gemma / Phi / GPT-2 / GPT-NeoX / Falcon / OPT style models, else peft's
`all-linear`). The same seed on the same device gives the same adapter. The device is the first CUDA GPU
when torch sees one, else the CPU.

OUT receives the adapter (`adapter_config.json`, `adapter_model.safetensors`), the tokenizer and
`flywheel-finetune.json` (the base, the data's sha256, rows, steps, losses, device, seconds). Everything is
written to a temporary folder next to OUT and renamed into place at the end, so OUT is either absent, the old
one, or complete. The `transformers` gateway provider serves OUT under an alias.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flywheel.errors import UserError
from flywheel.gateway.providers.transformers_local import (
    MANIFEST,
    dtype_arg,
    pick_device,
    quiet_transformers,
    require_extra,
)
from flywheel.loop.atomic import check_writable, follow_umask, partial_dir, swap_in
from flywheel.loop.finetune_data import IGNORE, Example, Row, data_file, encode, read_rows, sha256

METHODS = ("lora",)
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
# LoRA targets by architecture family: attention and MLP projections, never the embeddings or the LM head.
TARGETS = (
    ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),  # llama, qwen, mistral, gemma
    ("q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"),  # phi
    ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"),  # opt
    ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),  # phi-3
    ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),  # gpt-neox, falcon
    ("c_attn", "c_proj", "c_fc"),  # gpt-2
)


@dataclass
class FinetuneOptions:
    method: str = "lora"
    epochs: float = 3.0
    lr: float = 2e-4
    max_steps: int | None = None  # optimizer steps; overrides epochs
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    batch_size: int = 4
    grad_accum: int = 1
    seed: int = 0
    device: str = "auto"
    max_length: int = 2048  # tokens per row; longer rows are cut at the end
    threads: int | None = None  # torch CPU threads (process-wide); None: torch's default
    target_modules: list[str] | None = None


@dataclass
class FinetuneResult:
    out: str
    base: str
    rows: int
    examples: int
    steps: int
    epochs: float
    loss_first: float
    loss_final: float
    device: str
    seconds: float
    target_modules: list[str] | str
    skipped: int = 0  # rows whose assistant turns truncation cut away entirely
    manifest: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "manifest"}


def check_inputs(base: str, data: Path, out: Path, options: FinetuneOptions, *, overwrite: bool
                 ) -> tuple[Path, list[Row]]:
    """Everything checkable before the heavy imports; returns the data file (an hf folder's train.jsonl) and
    its rows."""
    if options.method not in METHODS:
        raise UserError(f"unknown fine-tuning method {options.method!r}", hint=f"one of {', '.join(METHODS)}; "
                        "for a hosted fine-tune, see `flywheel export openai-ft` (docs/loop.md)")
    source = data_file(data)
    rows = read_rows(source)  # a bad row is reported before anything heavy is imported
    require_extra("torch", "transformers", "peft", what="`flywheel finetune`")
    base_path = Path(base).expanduser()
    if not (base_path / "config.json").is_file():
        raise UserError(f"base model folder {base} has no config.json",
                        hint="give a local Hugging Face model folder (or make a tiny one: "
                             "python -m flywheel.testing.tiny_model tiny-base)")
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists", hint="pass --overwrite to replace it, or choose another --out")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    check_writable(out)
    if not DEVICE.fullmatch(options.device or "auto"):
        raise UserError(f"unknown device {options.device!r}", hint="one of auto, cpu, cuda, cuda:N (cuda:0, cuda:1 "
                        "…) or mps")
    for name, value in (("epochs", options.epochs), ("lr", options.lr), ("rank", options.rank),
                        ("batch size", options.batch_size), ("grad accum", options.grad_accum)):
        if value <= 0:
            raise UserError(f"{name} must be positive (got {value})")
    return source, rows


def target_modules(model: Any) -> list[str] | str:
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    for family in TARGETS:
        if set(family) <= names:
            return list(family)
    return "all-linear"


def check_targets(model: Any, wanted: list[str]) -> list[str]:
    """--target-modules as given, each the name of a layer of the model: peft only complains when none is, so
    a misspelt one would be left out of training without a word."""
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in wanted if t not in names]
    if missing:
        layers = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                         if not any(True for _ in m.children()) and getattr(getattr(m, "weight", None), "ndim", 0) == 2})
        raise UserError(f"--target-modules: no layer of the base model is named {', '.join(missing)}",
                        hint=f"layers with weights to adapt: {', '.join(layers)}")
    return wanted


def finetune(base: str, data: Path, out: Path, options: FinetuneOptions | None = None, *, overwrite: bool = False,
             progress: Callable[[int, int, float], None] | None = None) -> FinetuneResult:
    """Train a LoRA adapter of `base` on the rows of `data` and write it to `out` (see the module doc).
    `progress(step, total_steps, loss)` is called after every optimizer step."""
    opts = options or FinetuneOptions()
    out = out.expanduser().absolute()
    source, rows = check_inputs(base, data, out, opts, overwrite=overwrite)
    started = time.perf_counter()

    import peft
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    base_dir = str(Path(base).expanduser().resolve())
    device = pick_device(opts.device)
    tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    examples = [e for e in (_encode(r, tokenizer, opts.max_length, source) for r in rows) if e is not None]
    if not examples:
        raise UserError(f"no row of {source} keeps an assistant token within --max-length {opts.max_length}",
                        hint="raise --max-length")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id or 0

    if opts.threads:
        torch.set_num_threads(opts.threads)
    torch.manual_seed(opts.seed)
    dtype = torch.float32
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        dtype = torch.bfloat16  # the frozen base in bf16; peft keeps the adapter weights in float32
    model: Any = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True, **dtype_arg(dtype))
    targets = check_targets(model, opts.target_modules) if opts.target_modules else target_modules(model)
    lora = peft.LoraConfig(r=opts.rank, lora_alpha=opts.alpha, lora_dropout=opts.dropout, target_modules=targets,
                           task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # peft calls an API transformers 5 deprecates: not the user's concern
        warnings.simplefilter("ignore", FutureWarning)
        model = peft.get_peft_model(model, lora)
    model.to(device)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=opts.lr, weight_decay=0.0)

    per_step = opts.batch_size * opts.grad_accum
    steps_per_epoch = math.ceil(len(examples) / per_step)
    total = opts.max_steps if opts.max_steps else max(1, math.ceil(opts.epochs * steps_per_epoch))
    order = torch.Generator().manual_seed(opts.seed)
    losses: list[float] = []
    queue: list[int] = []
    for step in range(1, total + 1):
        group = []
        for _ in range(opts.grad_accum):
            if len(queue) < opts.batch_size:
                queue += torch.randperm(len(examples), generator=order).tolist()
            group.append([examples[i] for i in queue[:opts.batch_size]])
            del queue[:opts.batch_size]
        tokens = sum(sum(x != IGNORE for x in e.labels[1:]) for batch in group for e in batch)
        step_loss = 0.0
        for batch in group:
            ids, mask, labels = _collate(batch, pad_id, torch, device)
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                ignore_index=IGNORE, reduction="sum") / max(tokens, 1)
            loss.backward()
            step_loss += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(step_loss)
        if progress is not None:
            progress(step, total, step_loss)
    seconds = round(time.perf_counter() - started, 2)

    tail = losses[-max(1, steps_per_epoch):]  # the last epoch's worth of steps: one step's loss is noisy
    epochs, loss_first = round(total / steps_per_epoch, 2), round(losses[0], 4)
    loss_final = round(sum(tail) / len(tail), 4)
    manifest = {
        "kind": "flywheel-finetune", "method": opts.method, "base": base_dir, "data": str(source.resolve()),
        "data_sha256": sha256(source), "rows": len(rows), "examples": len(examples),
        "source_trace_ids": len({r.source_trace_id for r in rows if r.source_trace_id}),
        "steps": total, "epochs": epochs, "loss_first": loss_first,
        "loss_final": loss_final, "device": device, "seconds": seconds,
        "lora": {"r": opts.rank, "alpha": opts.alpha, "dropout": opts.dropout, "target_modules": targets},
        "options": {"lr": opts.lr, "batch_size": opts.batch_size, "grad_accum": opts.grad_accum, "seed": opts.seed,
                    "max_length": opts.max_length, "max_steps": opts.max_steps, "epochs": opts.epochs},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__},
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _write_out(out, model, tokenizer, manifest)
    return FinetuneResult(str(out), base_dir, len(rows), len(examples), total, epochs, loss_first,
                          loss_final, device, seconds, targets,
                          len(rows) - len(examples), manifest)


def _encode(row: Row, tokenizer: Any, max_length: int, source: Path) -> Example | None:
    try:
        return encode(row, tokenizer, max_length)
    except Exception as exc:  # noqa: BLE001 - a chat template raises what it likes (jinja's TemplateError mostly)
        raise UserError(f"the base model's chat template rejects this row: {type(exc).__name__}: {exc}",
                        where=f"{source}:{row.line}",
                        hint="some templates refuse a system message or roles out of user/assistant order; "
                             "fix the rows or use a base whose template accepts them") from None


def _collate(batch: list[Example], pad_id: int, torch: Any, device: str) -> tuple[Any, Any, Any]:
    """Right-padded ids, attention mask and labels (IGNORE on the padding)."""
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        mask[i, :n] = 1
        labels[i, :n] = torch.tensor(e.labels)
    return ids.to(device), mask.to(device), labels.to(device)


def _write_out(out: Path, model: Any, tokenizer: Any, manifest: dict[str, Any]) -> None:
    """The adapter, tokenizer and manifest into a temporary folder next to OUT, then renamed into place."""
    tmp = partial_dir(out)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        follow_umask(tmp)
        swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

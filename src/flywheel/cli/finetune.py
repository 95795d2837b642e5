"""`flywheel finetune`: LoRA fine-tune a local Hugging Face model on exported SFT rows, served by the
`transformers` provider."""

from __future__ import annotations

import json
from pathlib import Path

import click

from flywheel.cli import emit_json, main


@main.command("finetune")
@click.option("--base", required=True,
              help="Local Hugging Face model folder to fine-tune (nothing is downloaded).")
@click.option("--data", required=True, type=click.Path(),
              help="SFT rows: `flywheel export sft` / `openai-ft` JSONL, or an `export hf` folder.")
@click.option("--out", required=True, type=click.Path(), help="Folder for the adapter, tokenizer and manifest.")
@click.option("--method", default="lora", show_default=True, type=click.Choice(["lora"]),
              help="Fine-tuning method (hosted fine-tunes: `flywheel export openai-ft`, see docs/loop.md).")
@click.option("--epochs", default=3.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Passes over the rows.")
@click.option("--max-steps", type=click.IntRange(1), help="Optimizer steps (overrides --epochs).")
@click.option("--lr", default=2e-4, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="AdamW learning rate.")
@click.option("--rank", default=8, show_default=True, type=click.IntRange(1), help="LoRA rank r.")
@click.option("--alpha", default=16, show_default=True, type=click.IntRange(1), help="LoRA alpha.")
@click.option("--dropout", default=0.05, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="LoRA dropout.")
@click.option("--batch-size", default=4, show_default=True, type=click.IntRange(1), help="Rows per forward pass.")
@click.option("--grad-accum", default=1, show_default=True, type=click.IntRange(1),
              help="Forward passes per optimizer step.")
@click.option("--max-length", default=2048, show_default=True, type=click.IntRange(8),
              help="Tokens per row; longer rows are cut.")
@click.option("--target-modules", help="Comma-separated module names to adapt (default: found by architecture).")
@click.option("--seed", default=0, show_default=True, type=int, 
              help="Seed: same seed, data and device, same adapter.")
@click.option("--device", default="auto", show_default=True,
              help="auto (the GPU when torch sees one, else cpu), cpu, cuda, cuda:N or mps.")
@click.option("--threads", type=click.IntRange(1), help="torch CPU threads (default: torch's choice).")
@click.option("--alias", default="tuned", show_default=True,
              help="Alias name used in the printed `models:` snippet.")
@click.option("--overwrite", is_flag=True,
              help="Replace OUT when it exists (it is swapped in only when complete).")
@click.option("--json", "as_json", is_flag=True, help="Print the result (and the manifest) as JSON.")
def finetune_cmd(base: str, data: str, out: str, method: str, epochs: float, max_steps: int | None, lr: float,
                 rank: int, alpha: int, dropout: float, batch_size: int, grad_accum: int, max_length: int,
                 target_modules: str | None, seed: int, device: str, threads: int | None, alias: str,
                 overwrite: bool, as_json: bool) -> None:
    """LoRA fine-tune a local Hugging Face model on exported SFT rows; serve it with `provider: transformers`."""
    from flywheel.loop.finetune import FinetuneOptions, finetune

    options = FinetuneOptions(method=method, epochs=epochs, lr=lr, max_steps=max_steps, rank=rank, alpha=alpha,
                              dropout=dropout, batch_size=batch_size, grad_accum=grad_accum, seed=seed,
                              device=device, max_length=max_length, threads=threads,
                              target_modules=[t.strip() for t in target_modules.split(",") if t.strip()]
                              if target_modules else None)
    every = [0]

    def progress(step: int, total: int, loss: float) -> None:
        if as_json:
            return
        if every[0] == 0:
            every[0] = max(1, total // 10)
        if step == 1 or step == total or step % every[0] == 0:
            click.echo(f"  step {step}/{total}  loss {loss:.4f}", err=True)

    result = finetune(base, Path(data), Path(out), options, overwrite=overwrite, progress=progress)
    snippet = models_snippet(alias, result.out, result.base)
    if as_json:
        emit_json({**result.to_dict(), "manifest": result.manifest, "models_yaml": snippet})
        return
    click.echo(f"fine-tuned {Path(result.base).name} ({method}) on {result.rows} rows: {result.steps} steps, "
               f"{result.epochs:g} epochs, loss {result.loss_first:.4f} → {result.loss_final:.4f}, "
               f"{result.seconds:.1f} s on {result.device}")
    if result.skipped:
        click.secho(f"  warning: {result.skipped} row(s) left out: --max-length cut away their answers",
                    fg="yellow", err=True)
    click.echo(f"  adapter: {result.out}")
    click.echo("\nServe it (flywheel.yaml):\n")
    click.echo(snippet)
    click.echo(f"\nCompare: flywheel eval --models base,{alias}")


def models_snippet(alias: str, out: str, base: str) -> str:
    def q(path: str) -> str:
        return json.dumps(path) if any(c in path for c in ":#{}[],&*?|<>=!%@`'\" ") else path

    return (f"models:\n  base:\n    provider: transformers\n    model: {q(base)}\n"
            f"  {alias}:\n    provider: transformers\n    model: {q(out)}")

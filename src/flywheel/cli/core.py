"""`flywheel init`: scaffold a project (flywheel.yaml, prompts/, evals/)."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import click

from flywheel.cli import emit_json, main
from flywheel.config import CONFIG_NAME, DATA_DIR
from flywheel.errors import UserError

EXAMPLE_SUITE = """\
# An eval suite: run it with `flywheel eval evals/docs_qa.yaml`. Reference: docs/evals.md
name: docs-qa smoke
target: app:docs_qa
threshold: 0.8
cases:
  - id: what-is-it
    vars: {question: "What is flywheel?"}
    checks:
      - contains: "flywheel"
      - grounding: {}
      - max_words: 150
"""


def _packaged(*parts: str) -> Path | None:
    ref = resources.files("flywheel").joinpath(*parts)
    return Path(str(ref)) if ref.is_file() else None


@main.command()
@click.option("--force", is_flag=True, help="Overwrite an existing flywheel.yaml.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@click.pass_obj
def init(state, force: bool, as_json: bool) -> None:
    """Write flywheel.yaml (commented, with provider presets), prompts/ and evals/."""
    root = state.project_dir
    if not root.is_dir():
        raise UserError(f"project folder {root} does not exist", hint="create it or pass --project DIR")
    target = root / CONFIG_NAME
    if target.exists() and not force:
        raise UserError(f"{target} already exists", hint="pass --force to overwrite it")
    written = []
    template = _packaged("cli", "init_template.yaml")
    target.write_text(template.read_text(encoding="utf-8"), encoding="utf-8")
    written.append(str(target))
    prompt_src = _packaged("prompts", "builtin", "docs_qa.yaml")
    prompt_dst = root / "prompts" / "docs_qa.yaml"
    if prompt_src and not prompt_dst.exists():
        prompt_dst.parent.mkdir(exist_ok=True)
        shutil.copyfile(prompt_src, prompt_dst)
        written.append(str(prompt_dst))
    suite = root / "evals" / "docs_qa.yaml"
    if not suite.exists():
        suite.parent.mkdir(exist_ok=True)
        suite.write_text(EXAMPLE_SUITE, encoding="utf-8")
        written.append(str(suite))
    gitignore = root / ".gitignore"
    if not gitignore.exists() or DATA_DIR not in gitignore.read_text(encoding="utf-8"):
        with gitignore.open("a", encoding="utf-8") as f:
            f.write(f"{DATA_DIR}/\n")
    if as_json:
        emit_json({"written": written})
        return
    for path in written:
        click.echo(f"wrote {path}")
    click.echo("next: `flywheel ingest docs/` then `flywheel ask \"…\"`; edit models: in flywheel.yaml to use an API model")

"""The pages a new user copies from after getting started (configuration, guards, cache, evals, prompts,
workflows, strategies, multi-turn, retrieval augmentations; English and Chinese): every `flywheel …` command
they show uses options its --help has, every Python example compiles, every YAML example is YAML flywheel
reads (no key written twice), every complete flywheel.yaml example validates, and the eval page's first run
prints the warning line it shows."""

from __future__ import annotations

import re
import shlex
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_docs_examples_first_minutes import DOCS, blocks, resolve

from flywheel import Project
from flywheel.cli import main
from flywheel.config.yaml_io import load_yaml
from flywheel.errors import ConfigError

NAMES = ["configuration", "guards", "cache", "evals", "prompts", "workflows", "strategies", "multiturn",
         "retrieval-augment"]
PAGES = [page for name in NAMES for page in (DOCS / f"{name}.md", DOCS / "zh" / f"{name}.md")]
SECTIONS = {"store", "models", "retrieval", "cache", "tracing", "apps", "server", "monitor", "review", "routes"}


def sessions(text: str) -> list[str]:
    """The fenced blocks without a language (terminal sessions and outputs), fences paired in order."""
    found: list[str] = []
    body: list[str] = []
    lang: str | None = None
    for line in text.splitlines():
        if line.startswith("```"):
            if lang is None:
                lang, body = line[3:].strip(), []  # an opening fence
            else:
                if lang == "":
                    found.append("\n".join(body))
                lang = None
        elif lang is not None:
            body.append(line)
    return found


def commands(path: Path) -> list[str]:
    """Every `flywheel …` command of the page: inline code spans, bash lines (`\\` continuations joined) and
    the `$ flywheel …` lines of terminal sessions."""
    text = path.read_text(encoding="utf-8")
    lines = re.findall(r"`(flywheel [^`]+)`", text)
    for block in blocks(path, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith("flywheel "):
                lines.append(line.split("  #")[0].split(" | ")[0].strip())
    for block in sessions(text):
        lines += [line[2:].split("  #")[0].strip() for line in block.splitlines() if line.startswith("$ flywheel ")]
    return [part.strip() for line in lines for part in line.split("&&") if part.strip().startswith("flywheel ")]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_command_the_page_shows_uses_options_of_that_command(page: Path) -> None:
    for line in commands(page):
        command, options = resolve(shlex.split(line.replace("…", "x")))
        names = {"--help"} | {name for param in command.params for name in getattr(param, "opts", [])}
        missing = [option for option in options if option not in names]
        assert not missing, f"{page.name}: `{line}` uses {missing}, not options of `{command.name}`"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_python_example_compiles(page: Path) -> None:
    for i, block in enumerate(blocks(page, "python")):
        compile(block, f"{page.relative_to(DOCS)} python example {i + 1}", "exec")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_yaml_example_is_yaml_flywheel_reads(page: Path) -> None:
    for block in blocks(page, "yaml"):
        load_yaml(block)  # a key written twice is an error here, as in every file flywheel reads


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_flywheel_yaml_example_validates(page: Path, tmp_path: Path) -> None:
    """A block made of flywheel.yaml sections loads, with the aliases it names but defines elsewhere on the
    page added as offline ones (a query router's trained folder is not in the docs: such blocks are skipped)."""
    for i, block in enumerate(blocks(page, "yaml")):
        data = load_yaml(block)
        if not isinstance(data, dict) or not set(data) <= SECTIONS or "router:" in block:
            continue
        added: list[str] = []
        while True:
            extra = "".join(f"  {alias}: {{provider: extractive}}\n" for alias in added)
            text = block.replace("models:\n", "models:\n" + extra, 1) if "models" in data else (
                ("models:\n" + extra if added else "") + block)
            folder = tmp_path / str(i)
            folder.mkdir(exist_ok=True)
            (folder / "flywheel.yaml").write_text(text, encoding="utf-8")
            try:
                Project.load(folder)
                break
            except ConfigError as e:
                unknown = re.search(r"unknown model alias '([^']+)'", str(e))
                assert unknown and unknown.group(1) not in added and len(added) < 5, f"{page.name}: {e}"
                added.append(unknown.group(1))


def test_the_first_eval_prints_the_warning_line_the_page_shows(tmp_path: Path, monkeypatch) -> None:
    page = DOCS / "evals.md"
    [bot] = [b for b in blocks(page, "python") if b.startswith("# bot.py")]
    [suite] = [b for b in blocks(page, "yaml") if b.startswith("# evals/bot.yaml")]
    [shown] = [line for line in page.read_text(encoding="utf-8").splitlines()
               if line.startswith("warning: evals/bot.yaml:")]
    (tmp_path / "bot.py").write_text(bot, encoding="utf-8")
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "bot.yaml").write_text(suite, encoding="utf-8")
    (tmp_path / "flywheel.yaml").write_text(textwrap.dedent("""\
        retrieval: {embedder: none}
        """), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = CliRunner().invoke(main, ["eval", "evals/bot.yaml", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert shown in result.output.splitlines(), (shown, result.output)
    assert "bot smoke (bot:answer) run " in result.output

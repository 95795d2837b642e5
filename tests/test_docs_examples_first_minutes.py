"""The first ten minutes, as the pages show them: the options the getting-started pages (English and
Chinese) give each `flywheel` command exist in its --help, the Chinese page's model snippet is a valid
flywheel.yaml, the listed public names are the public API, and the SDK examples of docs/server.md and its
twin run when copied (an `api_key` with a non-ASCII character makes the OpenAI SDK fail while building the
Authorization header, before any request)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

import flywheel
from flywheel import Project
from flywheel.cli import main

DOCS = Path(__file__).resolve().parent.parent / "docs"
GETTING_STARTED = [DOCS / "getting-started.md", DOCS / "zh" / "getting-started.md"]
SERVER = [DOCS / "server.md", DOCS / "zh" / "server.md"]


def blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", path.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)


def command_lines(path: Path) -> list[str]:
    """Every `flywheel …` command the page shows: inline code spans and lines of its bash blocks."""
    text = path.read_text(encoding="utf-8")
    lines = [span for span in re.findall(r"`(flywheel [^`]+)`", text)]
    for block in blocks(path, "bash"):
        lines += [line.split("  #")[0].strip() for line in block.splitlines()
                  if line.strip().startswith("flywheel ")]
    return [part.strip() for line in lines for part in line.split("&&") if part.strip().startswith("flywheel ")]


def resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    """The (sub)command the words name, and the options written after it (the global --project dropped)."""
    command: click.Command = main
    options: list[str] = []
    skip = False
    for word in words[1:]:
        if skip:
            skip = False
            continue
        if word == "--project":
            skip = True
            continue
        if word.startswith("--"):
            options.append(word.split("=")[0])
        elif isinstance(command, click.Group):
            sub = command.get_command(click.Context(command), word)
            if sub is not None:
                command = sub
    return command, options


@pytest.mark.parametrize("page", GETTING_STARTED, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_option_the_page_gives_a_command_is_in_its_help(page: Path) -> None:
    shown = command_lines(page)
    assert len(shown) >= 5, shown
    for line in shown:
        words = shlex.split(line.replace("…", "x"))
        command, options = resolve(words)
        names = {"--help"} | {name for param in command.params for name in getattr(param, "opts", [])}
        missing = [option for option in options if option not in names]
        assert not missing, f"{page.name}: `{line}` uses {missing}, not options of `{command.name}`"


def test_the_chinese_model_snippet_is_a_valid_flywheel_yaml(tmp_path: Path) -> None:
    [snippet] = [b for b in blocks(DOCS / "zh" / "getting-started.md", "yaml") if "models:" in b]
    (tmp_path / "flywheel.yaml").write_text(snippet, encoding="utf-8")
    config = Project.load(tmp_path).config
    assert config.apps["docs_qa"].model == "deepseek"
    for alias in config.models.values():
        assert set(alias.fallbacks or []) <= set(config.models), alias


def test_the_public_names_listed_are_the_public_api() -> None:
    text = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    paragraph = text.split("The public names:", 1)[1].split("\n\n", 1)[0]
    listed = set(re.findall(r"`(\w+)`", paragraph))
    assert listed == set(flywheel.__all__) - {"__version__"}
    for name in listed:
        getattr(flywheel, name)


@pytest.mark.parametrize("page", SERVER, ids=lambda p: str(p.relative_to(DOCS)))
def test_the_sdk_examples_compile_and_their_api_key_is_ascii(page: Path) -> None:
    examples = blocks(page, "python")
    assert examples
    keys = []
    for example in examples:
        compile(example, f"{page.name} example", "exec")
        keys += re.findall(r"""api_key=["']([^"']*)["']""", example)
    assert keys, "the examples construct a client with an api_key"
    for key in keys:
        assert key.isascii(), f"{page.name}: api_key={key!r} cannot be sent as an HTTP header"

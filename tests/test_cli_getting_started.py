"""docs/getting-started.md runs as written: its shell commands, its flywheel.yaml snippet and its Python
example, against a fresh project (offline: the extractive model)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from flywheel.cli import main

DOC = Path(__file__).resolve().parent.parent / "docs" / "getting-started.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)


def own_project(tmp_path: Path, monkeypatch) -> Path:
    """Run the "Your own project" block, command by command, with ~/notes/ holding one document."""
    home = tmp_path / "home"
    (home / "notes").mkdir(parents=True)
    (home / "notes" / "keys.md").write_text(
        "# API keys\n\nRotate the API keys every month from the admin console.\n", encoding="utf-8")
    monkeypatch.setenv("HOME", str(home))
    block = next(b for b in blocks("bash") if b.startswith("mkdir myproject"))
    runner = CliRunner()
    for line in block.splitlines():
        command = line.split("  #")[0].strip()
        if command == "mkdir myproject && cd myproject":
            (tmp_path / "myproject").mkdir()
            monkeypatch.chdir(tmp_path / "myproject")
            continue
        args = [os.path.expanduser(a) for a in shlex.split(command)]
        assert args[0] == "flywheel", line
        if args[1] == "init":  # BM25 only: the test does not depend on the `local` extra
            result = runner.invoke(main, args[1:])
            config = Path("flywheel.yaml")
            text = config.read_text(encoding="utf-8").replace("embedder: local ", "embedder: none  ")
            assert "embedder: none" in text
            config.write_text(text, encoding="utf-8")
        else:
            result = runner.invoke(main, args[1:])
        assert result.exit_code == 0, f"{line}\n{result.output}"
        if args[1] == "ask":
            assert "Rotate the API keys every month" in result.output and "[1]" in result.output
    return tmp_path / "myproject"


def test_the_shell_commands_and_the_python_example_run_as_written(tmp_path, monkeypatch):
    project = own_project(tmp_path, monkeypatch)
    [example] = [b for b in blocks("python") if "from flywheel import" in b]  # not the OpenAI SDK example
    out = subprocess.run([sys.executable, "-c", example], cwd=project, capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert "Rotate the API keys every month" in out.stdout
    assert "keys.md" in out.stdout  # a citation and a search hit name the source


def test_the_model_snippet_is_a_valid_flywheel_yaml(tmp_path):
    from flywheel.config import Project

    [snippet] = [b for b in blocks("yaml") if "models:" in b]
    (tmp_path / "flywheel.yaml").write_text(snippet, encoding="utf-8")
    config = Project.load(tmp_path).config
    assert config.apps["docs_qa"].model == "local" and config.models["local"].base_url == yaml.safe_load(
        snippet)["models"]["local"]["base_url"]

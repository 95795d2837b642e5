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


ZH_DOC = DOC.parent / "zh" / "getting-started.md"


def test_the_chinese_guide_runs_as_written_on_chinese_documents(tmp_path, monkeypatch):
    """docs/zh/getting-started.md's "用自己的文档" block, command by command, as a Chinese-speaking user runs it:
    Chinese documents in 文档目录/, Chinese questions, Chinese labels in the answer."""
    (tmp_path / "myproject" / "文档目录").mkdir(parents=True)
    (tmp_path / "myproject" / "文档目录" / "模型配置.md").write_text(
        "# 模型配置\n\n## 备用模型\n\n要配置备用模型，把备用别名写在主模型别名的 `fallbacks:` 下。主模型的重试都失败后，"
        "网关按顺序尝试备用模型。\n", encoding="utf-8")
    text = ZH_DOC.read_text(encoding="utf-8")
    [block] = [b for b in re.findall(r"^```bash\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
               if b.startswith("mkdir myproject")]
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    outputs = {}
    for line in block.splitlines():
        command = line.split("  #")[0].strip()
        if command == "mkdir myproject && cd myproject":
            monkeypatch.chdir(tmp_path / "myproject")
            continue
        args = shlex.split(command)
        assert args[0] == "flywheel", line
        result = runner.invoke(main, args[1:])
        assert result.exit_code == 0, f"{line}\n{result.output}"
        if args[1] == "init":  # BM25 only, as in the English test
            config = Path("flywheel.yaml")
            config.write_text(config.read_text(encoding="utf-8").replace("embedder: local ", "embedder: none  "),
                              encoding="utf-8")
        outputs[args[1]] = result.output
    assert "备用模型" in outputs["search"] and "模型配置.md" in outputs["search"]
    assert outputs["ask"].startswith("根据资料") and "fallbacks:" in outputs["ask"]
    assert "来源" in outputs["ask"] and "追踪 " in outputs["ask"] and "查看：" in outputs["ask"]
    assert "如何配置模型的备用方案" in outputs["traces"]  # every ask is a trace


def test_the_chinese_guide_eval_suite_loads(tmp_path):
    """The "第一个评测" suite is a valid suite (its model snippet: tests/test_docs_examples_first_minutes.py)."""
    from flywheel.config import Project
    from flywheel.evals.suite import load_suite

    blocks_zh = re.findall(r"^```yaml\n(.*?)^```", ZH_DOC.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    [suite] = [b for b in blocks_zh if b.startswith("name:")]
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "zh.yaml").write_text(suite, encoding="utf-8")
    loaded = load_suite(tmp_path / "evals" / "zh.yaml", Project.load(tmp_path))
    assert [c.id for c in loaded.cases] == ["sick-leave-zh", "rotate-keys"]
    assert all(len(c.checks) >= 3 for c in loaded.cases)  # the page's rule: three checks or more

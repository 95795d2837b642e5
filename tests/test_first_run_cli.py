"""The first ten minutes on the command line: what `flywheel init`, `flywheel demo` and `flywheel ask` print to
a new user must be right where the docs are not looking: a project folder whose path has spaces and Chinese
characters, an existing .gitignore, a Ctrl-C in the middle of the demo, a Chinese question to an empty project."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from flywheel.cli import main


def commands_in(output: str) -> list[list[str]]:
    """Every `flywheel …` command quoted in backticks, as a shell would split it."""
    return [shlex.split(c) for c in re.findall(r"`(flywheel [^`]*)`", output)]


def test_init_in_a_folder_with_spaces_prints_commands_that_paste_into_a_shell(tmp_path):
    project = tmp_path / "my 项目 folder"
    (project / "docs").mkdir(parents=True)
    (project / "docs" / "a.md").write_text("# A\n\nText.\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["--project", str(project), "init"])
    assert result.exit_code == 0, result.output
    commands = commands_in(result.output)
    assert len(commands) >= 3  # ingest, ask, eval
    for argv in commands:
        assert argv[:3] == ["flywheel", "--project", str(project)], argv
    ingest = next(argv for argv in commands if argv[3] == "ingest")
    assert Path(ingest[4]) == project / "docs"


def test_demo_commands_name_a_folder_with_spaces_as_one_argument(tmp_path):
    from flywheel.cli.app import command_prefix

    folder = tmp_path / "a b" / ".flywheel" / "demo"
    assert shlex.split(command_prefix(folder)) == ["flywheel", "--project", str(folder)]
    assert command_prefix(".") == "flywheel"


def test_init_keeps_the_last_line_of_an_existing_gitignore(tmp_path):
    (tmp_path / ".gitignore").write_text("node_modules", encoding="utf-8")  # no newline at the end
    runner = CliRunner()
    result = runner.invoke(main, ["--project", str(tmp_path), "init"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / ".gitignore").read_text(encoding="utf-8").splitlines() == ["node_modules", ".flywheel/"]
    assert ".flywheel/" in result.output and ".gitignore" in result.output  # the user is told about the change

    again = runner.invoke(main, ["--project", str(tmp_path), "init", "--force"])
    assert again.exit_code == 0, again.output
    assert (tmp_path / ".gitignore").read_text(encoding="utf-8").splitlines() == ["node_modules", ".flywheel/"]
    assert ".gitignore" not in again.output  # nothing changed there


def test_init_twice_is_an_error_that_names_the_way_out(tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, ["--project", str(tmp_path), "init"]).exit_code == 0
    (tmp_path / "flywheel.yaml").write_text("models: {default: {provider: extractive}}\n", encoding="utf-8")
    second = runner.invoke(main, ["--project", str(tmp_path), "init"])
    assert second.exit_code == 2 and "already exists" in second.output and "--force" in second.output
    assert "Traceback" not in second.output
    assert (tmp_path / "flywheel.yaml").read_text(encoding="utf-8").startswith("models:")  # untouched


def test_demo_interrupted_says_how_to_continue(tmp_path, monkeypatch):
    from flywheel.cli import demo

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "_tour", interrupted)  # Ctrl-C in the middle of the tour (e.g. while embedding)
    project = tmp_path / "my project"
    project.mkdir()
    result = CliRunner().invoke(main, ["--project", str(project), "demo"])
    assert result.exit_code == 130
    assert "Traceback" not in result.output
    [again] = [argv for argv in commands_in(result.stderr)]
    assert again == ["flywheel", "--project", str(project), "demo"]  # without --fresh: it continues
    assert (project / ".flywheel" / "demo" / "flywheel.yaml").is_file()  # what it built is kept

    custom = CliRunner().invoke(main, ["--project", str(project), "demo", "--dir", str(tmp_path / "d d"), "--fresh"])
    assert custom.exit_code == 130
    assert commands_in(custom.stderr) == [["flywheel", "--project", str(project), "demo", "--dir",
                                           str(tmp_path / "d d")]]


def test_the_demo_summary_counts_chunks_embedded_after_a_resume():
    from flywheel.cli.app import _summary_line
    from flywheel.retrieval.ingest import IngestSummary

    # the rerun after a Ctrl-C in the embed stage: every file unchanged, the vectors it lacked computed now
    line = _summary_line(IngestSummary(files=54, unchanged=54, embedded=828))
    assert line == "54 files: 0 indexed (0 chunks), 54 unchanged, 828 chunks embedded"
    assert "embedded" not in _summary_line(IngestSummary(files=3, unchanged=3))


def test_a_chinese_question_to_an_empty_project_is_told_in_chinese_what_to_do(tmp_path):
    (tmp_path / "flywheel.yaml").write_text("retrieval: {embedder: none}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "ask", "如何开具发票？"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("我不知道")
    assert "还没有任何文档" in result.output and "ingest 文档目录" in result.output
    assert "has no documents" not in result.output

    english = CliRunner().invoke(main, ["--project", str(tmp_path), "ask", "How do I get an invoice?"])
    assert "this project has no documents yet" in english.output and "ingest PATH" in english.output
    other = CliRunner().invoke(main, ["--project", str(tmp_path), "ask", "How do I get an invoice?", "--tenant", "acme"])
    assert "tenant 'acme' has no documents yet" in other.output and "ingest PATH --tenant acme" in other.output


def demo_answers_output(tmp_path, monkeypatch, capsys, embedder: str) -> str:
    """What the demo's first section prints around an ingest (faked: 54 files, 1,778 chunks, 1,084 embedded)."""
    import importlib

    from flywheel.apps.runtime import Runtime
    from flywheel.cli import demo
    from flywheel.config import Project

    ingest_module = importlib.import_module("flywheel.retrieval.ingest")  # the package exports a function so named

    def ingest(paths, store, config, progress=None, embed_progress=None, **kwargs):
        progress(0, 54, "", 0)
        progress(54, 54, "docs/zh/getting-started.md", 1778)
        embed_progress(0, 0)  # a rerun: nothing waits for a vector, so no "embedded 0/0" line
        embed_progress(1084, 1084)
        return ingest_module.IngestSummary(files=54, indexed=54, chunks_added=1778, embedded=1084)

    monkeypatch.setattr(ingest_module, "ingest", ingest)
    (tmp_path / "flywheel.yaml").write_text(f"retrieval: {{embedder: {embedder}}}\n", encoding="utf-8")
    project = Project.load(tmp_path)
    with Runtime(project) as rt:
        demo._answers(rt, project, demo.Log(as_json=False), "flywheel")
    return capsys.readouterr().out


def test_the_demo_shows_ingest_and_embedding_progress_on_a_terminal(tmp_path, monkeypatch, capsys):
    """The first run spends a minute or two embedding: on a terminal too, lines say how far it got (it used to
    print them only when stdout was not a terminal, so an interactive user watched a silent screen)."""
    import sys

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    out = demo_answers_output(tmp_path, monkeypatch, capsys, "none")
    assert "ingest 54/54 files, 1778 chunks" in out and "embedded 1084/1084 chunks" in out
    assert "embedded 0/0" not in out
    assert "54 files: 54 indexed (1778 chunks), 0 unchanged, 1084 chunks embedded" in out


def test_the_demo_does_not_promise_embeddings_without_the_local_extra(tmp_path, monkeypatch, capsys):
    from flywheel.retrieval import embedders

    monkeypatch.setattr(embedders, "local_available", lambda: False)
    out = demo_answers_output(tmp_path, monkeypatch, capsys, "local")
    assert "embedder: local is not installed, so keyword search (BM25) only" in out
    assert "embeds every chunk" not in out

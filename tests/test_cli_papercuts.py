"""CLI papercuts from a new user's first ten minutes: bad ingest inputs, config ranges, where `--project` may go,
unquoted questions, Ctrl-C, and the public API of `import flywheel`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from flywheel.cli import hoist_project, main


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flywheel.yaml").write_text("retrieval: {embedder: none}\n", encoding="utf-8")
    return tmp_path


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("name,content,reason", [
    ("blob.txt", b"\x00\x01\x02binary\x00" * 50, "binary file"),
    ("empty.md", b"", "empty file"),
    ("table.xyz", b"a,b\n1,2\n", "unknown file type '.xyz'"),
])
def test_ingest_of_an_unusable_file_named_explicitly_is_exit_2(project, name, content, reason):
    path = project / name
    path.write_bytes(content)
    result = cli("--project", str(project), "ingest", str(path))
    assert result.exit_code == 2, result.output
    assert f"error: cannot ingest {path}: {reason}" in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""  # nothing was indexed: the error alone, no summary tables before it


def test_ingest_of_a_bad_file_beside_a_good_one_shows_the_summary_then_fails(project):
    (project / "a.md").write_text("# Keys\n\nRotate the API keys every month.\n", encoding="utf-8")
    (project / "b.xyz").write_text("x", encoding="utf-8")
    result = cli("--project", str(project), "ingest", str(project / "a.md"), str(project / "b.xyz"))
    assert result.exit_code == 2 and "indexed" in result.stdout and "cannot ingest" in result.stderr


def test_ingest_of_an_empty_folder_is_exit_2(project):
    (project / "nothing").mkdir()
    result = cli("--project", str(project), "ingest", str(project / "nothing"))
    assert result.exit_code == 2
    assert f"folder {project / 'nothing'} has no files to ingest" in result.stderr


def test_ingest_of_a_folder_with_some_skipped_files_lists_them_and_succeeds(project):
    docs = project / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Keys\n\nRotate the API keys every month.\n", encoding="utf-8")
    (docs / "b.bin").write_bytes(b"\x00" * 10)
    result = cli("--project", str(project), "ingest", str(docs), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["indexed"] == 1 and [s["source"] for s in summary["skipped"]] == ["docs/b.bin"]


def test_ctrl_c_during_ingest_says_how_to_resume(project, monkeypatch):
    import importlib

    ingest_module = importlib.import_module("flywheel.retrieval.ingest")  # the package re-exports the function

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ingest_module, "ingest", interrupted)
    (project / "a.md").write_text("hello\n", encoding="utf-8")
    result = cli("--project", str(project), "ingest", str(project / "a.md"))
    assert result.exit_code == 130
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["interrupted: the files indexed so far are saved; run the same command again to resume"]


@pytest.mark.parametrize("value", ["1.5", "-0.1"])
def test_min_relevance_out_of_range_is_rejected_at_load_with_file_and_line(project, value):
    (project / "flywheel.yaml").write_text(f"retrieval:\n  embedder: none\n  min_relevance: {value}\n",
                                           encoding="utf-8")
    result = cli("--project", str(project), "search", "anything")
    assert result.exit_code == 2
    assert "flywheel.yaml:3: `retrieval.min_relevance`: min_relevance must be between 0 and 1" in result.stderr


@pytest.mark.parametrize("value", ["0", "1", "0.4", "auto", "null"])
def test_min_relevance_in_range_loads(project, value):
    from flywheel.config import Project

    (project / "flywheel.yaml").write_text(f"retrieval:\n  min_relevance: {value}\n", encoding="utf-8")
    Project.load(project)


def test_hoist_project_moves_the_global_option_in_front():
    assert hoist_project(["ask", "--project", "X", "a", "b"]) == ["--project", "X", "ask", "a", "b"]
    assert hoist_project(["ask", "q", "--project=X"]) == ["--project=X", "ask", "q"]
    assert hoist_project(["ask", "--", "--project", "X"]) == ["ask", "--", "--project", "X"]


def test_project_after_the_subcommand_and_unquoted_multi_word_questions(project):
    docs = project / "docs"
    docs.mkdir()
    (docs / "keys.md").write_text("# Keys\n\nRotate the API keys every month with the admin console.\n",
                                  encoding="utf-8")
    assert cli("ingest", "--project", str(project), str(docs)).exit_code == 0
    search = cli("search", "--project", str(project), "rotate", "the", "API", "keys", "--json")
    assert search.exit_code == 0, search.output
    assert json.loads(search.stdout)[0]["source"] == "docs/keys.md"
    ask = cli("ask", "--project", str(project), "How", "do", "I", "rotate", "the", "API", "keys?", "--json")
    assert ask.exit_code == 0 and json.loads(ask.stdout)["citations"][0]["source"] == "docs/keys.md"
    chat = cli("chat", "--project", str(project), "hello", "there", "--json")
    assert chat.exit_code == 0, chat.output
    assert json.loads(chat.stdout)["provider"] == "extractive"


def test_chat_sends_the_unquoted_words_as_one_message(llm, tmp_path):
    (tmp_path / "flywheel.yaml").write_text(
        f"models:\n  default: {{provider: openai_compat, base_url: '{llm.base_url}', model: fake-model}}\n",
        encoding="utf-8")
    result = cli("chat", "--project", str(tmp_path), "hello", "there", "world", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["text"] == "You said: hello there world"


def test_import_flywheel_is_cheap_and_exposes_the_public_api():
    code = ("import sys, flywheel; loaded = sorted(m for m in sys.modules if m.startswith('flywheel')); "
            "from flywheel import (Runtime, Project, ChatRequest, Message, Answer, Gateway, Retriever, UserError, "
            "ConfigError, GuardPolicy, Cache, ingest, trace); "
            "from flywheel.apps.runtime import Runtime as R; from flywheel.types import ChatRequest as C; "
            "assert Runtime is R and ChatRequest is C; "
            "assert sorted(flywheel.__all__) == sorted(['__version__', 'feedback', *flywheel._LAZY]); print(loaded)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.stdout.strip() == "['flywheel']"
    import flywheel

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        flywheel.Nope  # noqa: B018


def test_init_suggests_a_folder_that_exists_or_asks_for_one(tmp_path):
    result = cli("--project", str(tmp_path), "init")
    assert result.exit_code == 0
    cmd = f"flywheel --project {tmp_path}"  # the commands that follow need the project too
    assert f"`{cmd} ingest PATH` (a folder of your Markdown" in result.output and "ingest docs/" not in result.output
    (tmp_path / "docs").mkdir()
    again = cli("--project", str(tmp_path), "init", "--force")
    assert f"next: `{cmd} ingest {tmp_path / 'docs'}/`" in again.output


def test_pytest_evals_with_a_pytest_outside_flywheels_environment_says_what_is_needed(tmp_path):
    """`pytest evals/` run by a pytest that cannot import flywheel (README install without pytest, a system
    pytest on PATH) stops with what to do instead of "no tests ran"."""
    assert cli("--project", str(tmp_path), "init").exit_code == 0
    shadow = tmp_path / "shadow" / "flywheel"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not installed here')\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(shadow.parent), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "evals/"], cwd=tmp_path,
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    assert out.returncode != 0 and "no tests ran" not in out.stdout
    assert "needs pytest in the environment where flywheel is installed" in out.stdout + out.stderr


def test_an_unreachable_endpoint_is_one_error_naming_the_url(tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    (tmp_path / "flywheel.yaml").write_text(
        f"models:\n  local: {{provider: openai_compat, base_url: '{url}', model: qwen2.5:7b-instruct, "
        "max_retries: 1}\n", encoding="utf-8")
    result = cli("--project", str(tmp_path), "chat", "--model", "local", "hi")
    assert result.exit_code == 3  # nothing answered: the upstream is down, not a mistake in the input
    err = result.stderr
    assert err.count("Connection refused") == 1 and "(×2)" in err
    assert f"local (qwen2.5:7b-instruct) at {url}: " in err
    assert f"hint: nothing answered at {url}: start the server (Ollama: `ollama serve`" in err


def test_ctrl_c_during_eval_says_how_to_resume(tmp_path, monkeypatch):
    import importlib

    runner_module = importlib.import_module("flywheel.evals.runner")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner_module, "arun_suite", interrupted)
    assert cli("--project", str(tmp_path), "init").exit_code == 0
    result = cli("--project", str(tmp_path), "eval", "--no-progress")
    assert result.exit_code == 130
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["interrupted: finished cases are saved; run the same command again to resume"]

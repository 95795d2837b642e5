"""A stranger's first ten minutes, from a fresh clone (README, docs/getting-started.md and its Chinese twin): what
each step prints when it works, and the one clear line (exit 2) when a new user gets it wrong — a missing API key,
a port in use, a project folder that does not exist. Cases already in test_bad_input_cli.py are not repeated."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.testing.fake_llm import FakeLLM

DOCS = Path(__file__).resolve().parent.parent / "docs"
KEY_ENV = "FLYWHEEL_TEST_FIRST_MINUTES_KEY"  # never set: the key a new user forgot to export


def cli(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env)


def openai_alias(name: str, base_url: str, *, key_env: str | None = KEY_ENV, extra: str = "") -> str:
    key = f", api_key_env: {key_env}" if key_env else ""
    return f"  {name}: {{provider: openai_compat, base_url: '{base_url}', model: gpt-4o-mini{key}{extra}}}\n"


# ---- a configured OpenAI model whose API key is not exported


@pytest.mark.parametrize("command", [["chat", "hello", "--model", "gpt"], ["ask", "How", "do", "I", "rotate", "keys?"]])
def test_a_missing_api_key_is_one_line_naming_the_variable_and_how_to_set_it(tmp_path, monkeypatch, command):
    monkeypatch.delenv(KEY_ENV, raising=False)
    (tmp_path / "flywheel.yaml").write_text(
        "models:\n  default: {provider: extractive}\n" + openai_alias("gpt", "https://api.openai.com/v1")
        + "apps:\n  docs_qa: {model: gpt}\nretrieval: {embedder: none}\n", encoding="utf-8")
    (tmp_path / "faq.md").write_text("# Keys\n\nRotate the API keys in Settings, then update your scripts.\n",
                                     encoding="utf-8")
    assert cli("--project", str(tmp_path), "ingest", str(tmp_path / "faq.md")).exit_code == 0
    result = cli("--project", str(tmp_path), *command)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"error: {KEY_ENV} is not set: model alias 'gpt' reads {KEY_ENV} (api_key_env)"
    assert lines[1].startswith(f"  hint: export {KEY_ENV}=YOUR_KEY") and len(lines) == 2
    assert "Traceback" not in result.output and "all models failed" not in result.output


def test_missing_keys_along_a_fallback_chain_name_every_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_ENV + "_2", raising=False)
    (tmp_path / "flywheel.yaml").write_text(
        "models:\n" + openai_alias("gpt", "https://api.openai.com/v1", extra=", fallbacks: [ds]")
        + openai_alias("ds", "https://api.deepseek.com/v1", key_env=KEY_ENV + "_2"), encoding="utf-8")
    result = cli("--project", str(tmp_path), "chat", "hi", "--model", "gpt")
    assert result.exit_code == 2
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: {KEY_ENV}, {KEY_ENV}_2 are not set: ")
    assert f"'gpt' reads {KEY_ENV} (api_key_env)" in first and f"'ds' reads {KEY_ENV}_2 (api_key_env)" in first


def test_a_missing_key_before_a_fallback_that_is_down_reports_the_outage(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with FakeLLM() as llm:
        llm.fail("server_error", times=None, status=503)
        (tmp_path / "flywheel.yaml").write_text(
            "models:\n" + openai_alias("gpt", "https://api.openai.com/v1", extra=", fallbacks: [local]")
            + openai_alias("local", llm.base_url, key_env=None, extra=", max_retries: 0"), encoding="utf-8")
        result = cli("--project", str(tmp_path), "chat", "hi", "--model", "gpt")
    assert result.exit_code == 3  # an attempt reached an upstream that failed: not only the missing key
    assert "all models failed for alias 'gpt' (2 attempts):" in result.stderr
    assert f"{KEY_ENV} (api_key_env of model 'gpt-4o-mini') is not set" in result.stderr
    assert "HTTP 503" in result.stderr


def test_one_failed_attempt_is_one_attempt_not_one_attempts(tmp_path):
    with FakeLLM() as llm:
        llm.fail("server_error", times=None, status=503)
        (tmp_path / "flywheel.yaml").write_text(
            "models:\n" + openai_alias("local", llm.base_url, key_env=None, extra=", max_retries: 0"),
            encoding="utf-8")
        result = cli("--project", str(tmp_path), "chat", "hi", "--model", "local")
    assert result.exit_code == 3 and "all models failed for alias 'local' (1 attempt):" in result.stderr


def test_a_hosted_api_out_of_reach_is_not_told_to_start_ollama(tmp_path):
    from flywheel.cli import State
    from flywheel.cli.core import gateway_message
    from flywheel.errors import AttemptFailure, GatewayError

    (tmp_path / "flywheel.yaml").write_text(
        "models:\n" + openai_alias("gpt", "https://api.openai.com/v1", key_env=None), encoding="utf-8")
    state = State(str(tmp_path))
    state.project  # noqa: B018 - loaded, as every command that reached the gateway has
    failure = AttemptFailure("gpt", "gpt-4o-mini", "connection: connection failed: gaierror: Name or service not known")
    message = gateway_message(GatewayError("gpt", [failure, failure]), state)
    assert "could not reach https://api.openai.com/v1: check this machine's network connection" in message
    assert "ollama" not in message.lower()


# ---- `flywheel init` and what it tells a new user to do next


def test_init_with_project_says_the_next_commands_with_that_project(tmp_path, monkeypatch):
    (tmp_path / "p" / "docs").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    result = cli("--project", "p", "init")
    assert result.exit_code == 0, result.output
    nxt = result.output.strip().splitlines()[-1]
    # `flywheel ingest docs/` from here would fill the project in the current folder, not p/
    assert nxt.startswith("next: `flywheel --project p ingest p/docs/` then `flywheel --project p ask")
    assert "`flywheel --project p eval`" in nxt


def test_the_starter_suite_says_to_replace_its_example_question(tmp_path):
    assert cli("--project", str(tmp_path), "init").exit_code == 0
    suite = (tmp_path / "evals" / "docs_qa.yaml").read_text(encoding="utf-8")
    assert "Replace it with questions YOUR documents answer" in suite
    assert "`flywheel eval`" in suite


# ---- `flywheel ask` in Chinese: the lines around the answer in the answer's language


def test_a_chinese_answer_gets_chinese_labels_and_an_english_one_english(tmp_path):
    (tmp_path / "flywheel.yaml").write_text("retrieval: {embedder: none}\n", encoding="utf-8")
    (tmp_path / "faq.zh.md").write_text("# 发票\n\n## 如何开具发票？\n\n在控制台的“账单”页面点击“申请发票”，填写公司名称和纳税人识别号。\n",
                                        encoding="utf-8")
    (tmp_path / "faq.md").write_text("# Keys\n\n## Rotate\n\nTo rotate the keys, go to Settings and click Rotate.\n",
                                     encoding="utf-8")
    assert cli("--project", str(tmp_path), "ingest", str(tmp_path)).exit_code == 0
    zh = cli("--project", str(tmp_path), "ask", "如何开具发票？")
    assert zh.exit_code == 0 and "申请发票" in zh.output
    assert "\n来源\n" in zh.output and "追踪 " in zh.output and "查看：`flywheel --project" in zh.output
    assert "Sources" not in zh.output and "see it with" not in zh.output
    out = cli("--project", str(tmp_path), "ask", "水银的沸点是多少？")
    assert out.exit_code == 0 and "已拒答：没有找到相关的段落，所以没有调用模型" in out.output
    again = cli("--project", str(tmp_path), "ask", "如何开具发票？")
    assert "来自缓存：之前回答过同一个问题，没有调用模型" in again.output and "（" not in again.output.splitlines()[-2]
    en = cli("--project", str(tmp_path), "ask", "How do I rotate the keys?")
    assert "\nSources\n" in en.output and "see it with" in en.output and "来源" not in en.output


# ---- flywheel --help, `flywheel serve`


def test_top_level_help_says_where_to_start():
    result = cli("--help")
    assert result.exit_code == 0
    assert "New here? `flywheel demo` (offline), then `flywheel init`" in result.output
    assert "docs/getting-started.md" in result.output and "docs/zh/getting-started.md" in result.output


def test_the_install_hint_names_this_clone_not_the_unrelated_pypi_package(monkeypatch):
    from flywheel.text import install

    hint = install.pip_install("server")
    assert hint != "pip install 'flywheel[server]'" and hint.endswith("[server]'")  # PyPI's flywheel is a DynamoDB ORM
    monkeypatch.setattr(install, "_source", lambda: None)
    assert install.pip_install("server") == "pip install -e '.[server]' in your flywheel clone"
    monkeypatch.setattr(install, "_source", lambda: ("/src/flywheel", False))
    assert install.pip_install("local") == "pip install '/src/flywheel[local]'"


def test_serve_without_the_server_extra_names_this_clones_install_command(tmp_path, monkeypatch):
    from flywheel.text.install import pip_install

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # `import uvicorn` raises ImportError
    result = cli("--project", str(tmp_path), "serve", "--port", "0")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["error: the server needs FastAPI and uvicorn",
                                          f"  hint: {pip_install('server')}"]


def test_serve_on_a_port_in_use_is_one_line_and_exit_2(tmp_path):
    pytest.importorskip("uvicorn")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("--project", str(tmp_path), "serve", "--port", str(port))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0].startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert "hint: pick another --port, or stop what is using it" in result.stderr
    assert "flywheel serving" not in result.output and "Traceback" not in result.output


def test_a_project_folder_that_does_not_exist_is_exit_2(tmp_path):
    result = cli("--project", str(tmp_path / "nope"), "ask", "hi")
    assert result.exit_code == 2
    assert f"error: project folder {tmp_path / 'nope'} does not exist" in result.stderr


def sdk_example(page: Path) -> str:
    text = page.read_text(encoding="utf-8")
    [example] = [b for b in re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL) if "OpenAI(" in b]
    return example


def test_serve_banner_gives_the_dashboard_and_the_getting_started_sdk_examples_run(tmp_path):
    pytest.importorskip("uvicorn")
    import httpx

    (tmp_path / "flywheel.yaml").write_text("retrieval: {embedder: none}\n", encoding="utf-8")
    (tmp_path / "faq.md").write_text("# Keys\n\n## Rotate\n\nTo rotate the API keys, go to Settings and click "
                                     "Rotate.\n", encoding="utf-8")
    (tmp_path / "faq.zh.md").write_text("# 发票\n\n## 如何开具发票？\n\n在控制台的“账单”页面点击“申请发票”，填写公司名称。\n",
                                        encoding="utf-8")
    assert cli("--project", str(tmp_path), "ingest", str(tmp_path)).exit_code == 0
    proc = subprocess.Popen([sys.executable, "-m", "flywheel", "--project", str(tmp_path), "serve", "--port", "0",
                             "--no-access-log"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()
        assert banner.startswith(f"flywheel serving {tmp_path} at http://127.0.0.1:"), banner
        port = banner.split("at http://127.0.0.1:", 1)[1].split()[0]
        assert f"dashboard http://127.0.0.1:{port}/ui;" in banner
        base = f"http://127.0.0.1:{port}"
        ui = httpx.get(f"{base}/ui", follow_redirects=True, timeout=60)  # waits for the app to be built
        assert ui.status_code == 200 and "<title>" in ui.text
        for page, expected in [(DOCS / "getting-started.md", "click Rotate"),
                               (DOCS / "zh" / "getting-started.md", "申请发票")]:
            code = sdk_example(page).replace("http://127.0.0.1:8300/v1", f"{base}/v1")
            out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                                 timeout=120, check=False)
            assert out.returncode == 0, out.stderr
            assert expected in out.stdout and "[1]" in out.stdout, (page, out.stdout)
    finally:
        proc.terminate()
        proc.wait(timeout=60)

"""An app's `prompt:` names a prompt or a prompt file; prompt text written there (or a name nothing defines) is a
ConfigError at load with file:line and the known prompt names, not an app serving without its system prompt."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from flywheel.apps.app_prompts import looks_like_prose
from flywheel.apps.runtime import Runtime
from flywheel.cli import main
from flywheel.config import Project
from flywheel.errors import ConfigError

HEAD = "models:\n  default: {provider: extractive}\napps:\n"


def _project(tmp_path, app_yaml: str) -> None:
    (tmp_path / "flywheel.yaml").write_text(HEAD + app_yaml, encoding="utf-8")


def test_chat_app_with_prompt_text_is_a_cli_error_not_an_answer_without_system(tmp_path):
    _project(tmp_path, '  support:\n    kind: chat\n    prompt: "You are ACME support. Be brief."\n')
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "chat", "--app", "support", "hi"])
    assert result.exit_code == 2, result.output
    assert "flywheel.yaml:6" in result.output
    assert "unknown prompt 'You are ACME support. Be brief.'" in result.output
    assert "known prompts: docs_qa" in result.output
    assert "options: {system:" in result.output  # where a chat app's free text belongs
    assert "Traceback" not in result.output


@pytest.mark.parametrize("kind_line,expect", [
    ("", "prompt file"),  # docs_qa: the text goes in a prompt file's `system:`
    ("    kind: chat\n", "options: {system:"),
])
def test_prompt_text_fails_at_load_with_line_and_a_hint_on_where_text_goes(tmp_path, kind_line, expect):
    _project(tmp_path, f"  a:\n{kind_line}    model: default\n    prompt: \"你是 ACME 客服，请简短回答。\"\n")
    with pytest.raises(ConfigError) as err:
        Runtime(Project.load(tmp_path))
    line = 6 + bool(kind_line)
    assert err.value.where == f"{tmp_path / 'flywheel.yaml'}:{line}"
    assert "unknown prompt" in err.value.message and "docs_qa" in err.value.message
    assert expect in (err.value.hint or "")


def test_unknown_prompt_name_fails_at_load_not_on_first_request(tmp_path):
    _project(tmp_path, "  qa:\n    prompt: supprot\n")
    with pytest.raises(ConfigError) as err:
        Runtime(Project.load(tmp_path))
    assert err.value.where == f"{tmp_path / 'flywheel.yaml'}:5"
    assert "unknown prompt 'supprot'" in err.value.message and "docs_qa" in err.value.message
    assert "add prompts/supprot.yaml" in (err.value.hint or "")  # a name, not prose: no free-text hint


def test_chat_app_with_a_real_prompt_name_says_it_would_be_ignored(tmp_path):
    _project(tmp_path, "  support:\n    kind: chat\n    prompt: docs_qa\n")
    with pytest.raises(ConfigError) as err:
        Runtime(Project.load(tmp_path))
    assert "does not use `prompt:`" in err.value.message and err.value.where.endswith("flywheel.yaml:6")
    assert "options: {system:" in (err.value.hint or "")


def test_valid_prompts_still_load(tmp_path):
    (tmp_path / "prompts").mkdir()
    for file, name in (("support.yaml", ""), ("long.yaml", "name: The ACME support desk, v2\n")):
        (tmp_path / "prompts" / file).write_text(
            f"{name}system: You are ACME support.\ntemplate: \"{{{{sources}}}}\\n\\n{{{{question}}}}\"\n",
            encoding="utf-8")
    _project(tmp_path, "  a: {prompt: docs_qa}\n  b: {prompt: prompts/support.yaml}\n  c: {prompt: support}\n"
                       "  d: {prompt: support, options: {prompt_label: production}}\n"
                       "  e: {kind: chat, options: {system: You are ACME support. Be brief.}}\n"
                       "  f: {prompt: 'The ACME support desk, v2'}\n")  # a declared name that reads like prose
    assert set(Runtime(Project.load(tmp_path)).config.apps) == {"a", "b", "c", "d", "e", "f"}


@pytest.mark.parametrize("value,prose", [
    ("You are ACME support. Be brief.", True), ("You are ACME support…", True), ("你是ACME客服。", True),
    ("be helpful and answer in short sentences", True), ("docs_qa", False), ("prompts/support.yaml", False),
    ("support v2", False), ("ACME support", False),
])
def test_looks_like_prose(value, prose):
    assert looks_like_prose(value) is prose

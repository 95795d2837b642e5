"""`flywheel chat` without -m in a project whose flywheel.yaml defines aliases but no `default`: the built-in
offline extractive model answers, and the CLI says so and names the user's aliases (a first word that is an
alias name was probably meant as `-m`)."""

from __future__ import annotations

from click.testing import CliRunner

from flywheel.cli import main

YAML = "models:\n  local: {provider: openai_compat, base_url: 'http://127.0.0.1:9/v1', model: m}\n"


def _chat(tmp_path, yaml_text: str, *args: str):
    (tmp_path / "flywheel.yaml").write_text(yaml_text, encoding="utf-8")
    return CliRunner().invoke(main, ["--project", str(tmp_path), "chat", *args])


def test_the_builtin_default_names_the_users_aliases(tmp_path):
    done = _chat(tmp_path, YAML, "退款怎么办理？")
    assert done.exit_code == 0, done.output
    assert "flywheel.yaml defines no `default` alias" in done.output and "-m (local)" in done.output


def test_a_first_word_naming_an_alias_is_pointed_at_dash_m(tmp_path):
    done = _chat(tmp_path, YAML, "local", "退款怎么办理？")
    assert done.exit_code == 0, done.output
    assert '"local" was read as part of the message' in done.output
    assert 'flywheel chat -m local' in done.output


def test_no_hint_when_the_project_defines_default_or_has_no_aliases(tmp_path):
    own_default = YAML + "  default: {provider: extractive}\n"
    assert "built-in offline model" not in _chat(tmp_path, own_default, "hello").output
    assert "built-in offline model" not in _chat(tmp_path, "retrieval: {embedder: none}\n", "hello").output

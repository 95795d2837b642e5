"""flywheel.yaml loading: defaults, env interpolation, and errors that name file:line and the field."""

from __future__ import annotations

import re
from importlib import resources

import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.config import Project, load_config_file
from flywheel.errors import ConfigError


def write(tmp_path, text: str):
    path = tmp_path / "flywheel.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_config_means_offline_defaults(tmp_path):
    project = Project.load(tmp_path)
    assert project.config.models["default"].provider == "extractive"
    assert project.store_url == f"sqlite:///{tmp_path.resolve() / '.flywheel' / 'flywheel.db'}"


def test_relative_sqlite_store_is_relative_to_the_project(tmp_path, monkeypatch):
    write(tmp_path, "store: sqlite:///data/app.db\n")
    monkeypatch.chdir("/")
    assert Project.load(tmp_path).store_url == f"sqlite:///{tmp_path.resolve() / 'data' / 'app.db'}"


def test_aliases_pinning_and_env_interpolation(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_HOST", "http://127.0.0.1:9999/v1")
    path = write(tmp_path, """
models:
  strong:
    provider: openai_compat
    base_url: ${LLM_HOST}
    model: deepseek-chat
    version: deepseek-chat-2025-01
    api_key_env: DEEPSEEK_API_KEY
    price: {input: 0.27, output: 1.10}
    fallbacks: [small]
  small:
    provider: openai_compat
    base_url: ${SMALL_HOST:-http://localhost:11434/v1}
    model: qwen2.5:7b-instruct
""")
    config, _ = load_config_file(path)
    strong = config.models["strong"]
    assert strong.base_url == "http://127.0.0.1:9999/v1"
    assert strong.pinned == "deepseek-chat@deepseek-chat-2025-01"
    assert strong.price.output == 1.10
    assert config.models["small"].base_url == "http://localhost:11434/v1"
    assert "default" in config.models  # the offline alias is always there


def test_missing_env_var_names_the_line(tmp_path):
    path = write(tmp_path, "models:\n  a:\n    provider: openai_compat\n    model: m\n    base_url: ${NOPE_NOT_SET}\n")
    with pytest.raises(ConfigError) as err:
        load_config_file(path)
    assert err.value.where == f"{path}:5"
    assert "NOPE_NOT_SET" in err.value.message


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "models:\n  a:\n    provider: openai_compat\n   model: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_config_file(path)
    assert err.value.where.startswith(f"{path}:")
    assert "YAML syntax error" in err.value.message


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("models:\n  a:\n    provider: openai_compat\n    model: m\n    timeoutt: 3\n", 5, "models.a.timeoutt",
         "unknown field"),
        ("models:\n  a:\n    provider: bedrock\n    model: m\n", 3, "models.a.provider", "openai_compat"),
        ("models:\n  a:\n    provider: openai_compat\n", 2, "models.a", "needs `model:`"),
        ("models:\n  a:\n    provider: openai_compat\n    model: m\n    max_retries: -1\n", 5,
         "models.a.max_retries", "greater than or equal"),
        ("retrieval:\n  k: lots\n", 2, "retrieval.k", "integer"),
        ("models:\n  a:\n    provider: openai_compat\n    model: m\n    fallbacks: [ghost]\n", 1, "models",
         "unknown alias 'ghost'"),
    ],
)
def test_bad_fields_name_file_line_and_field(tmp_path, text, line, field, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config_file(path)
    assert err.value.where == f"{path}:{line}" or (field == "models" and err.value.where.startswith(str(path)))
    assert f"`{field}`" in err.value.message
    assert words in err.value.message
    assert err.value.hint


def test_cli_prints_config_error_without_traceback(tmp_path):
    write(tmp_path, "models:\n  a:\n    provider: nope\n")
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "traces"])
    assert result.exit_code == 2
    assert "flywheel.yaml:3" in result.output
    assert "Traceback" not in result.output


def test_init_writes_a_valid_commented_config_and_refuses_to_overwrite(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["--project", str(tmp_path), "init"])
    assert result.exit_code == 0, result.output
    assert Project.load(tmp_path).config.apps["docs_qa"].model == "default"
    assert (tmp_path / "evals" / "docs_qa.yaml").exists()
    again = runner.invoke(main, ["--project", str(tmp_path), "init"])
    assert again.exit_code == 2 and "--force" in again.output


def test_every_provider_preset_in_the_template_validates(tmp_path):
    """Uncommenting a preset must give a working alias: the template is what new users copy."""
    text = resources.files("flywheel").joinpath("cli", "init_template.yaml").read_text(encoding="utf-8")
    uncommented = re.sub(r"^  # (\w+):$", r"  \1:", text, flags=re.MULTILINE)
    uncommented = re.sub(r"^  #   ", "    ", uncommented, flags=re.MULTILINE)
    path = write(tmp_path, uncommented)
    config, _ = load_config_file(path)
    for name in ["gpt", "claude", "local", "vllm", "deepseek", "qwen"]:
        assert name in config.models, name
    assert config.models["claude"].provider == "anthropic"
    assert config.models["deepseek"].base_url == "https://api.deepseek.com/v1"
    assert config.models["gpt"].fallbacks == ["local"]

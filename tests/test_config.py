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
        ("models:\n  a:\n    provider: vertex\n    model: m\n", 3, "models.a.provider", "openai_compat"),
        ("models:\n  a:\n    provider: openai_compat\n", 2, "models.a", "needs `model:`"),
        ("models:\n  a:\n    provider: openai_compat\n    model: m\n    max_retries: -1\n", 5,
         "models.a.max_retries", "greater than or equal"),
        ("retrieval:\n  k: lots\n", 2, "retrieval.k", "integer"),
        ("models:\n  a:\n    provider: openai_compat\n    model: m\n    fallbacks: [ghost]\n", 5, "models.a.fallbacks.0",
         "falls back to unknown model alias 'ghost'"),
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


@pytest.mark.parametrize("text, line, words", [
    ("models:\n  default: {provider: extractive}\n  default: {provider: openai_compat}\n", 3, "duplicate key `default`"),
    ("apps:\n  docs_qa:\n    model: default\n    model: strong\n", 4, "(first at line 3)"),
])
def test_duplicate_keys_are_rejected_with_their_line(tmp_path, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config_file(path)
    assert err.value.where == f"{path}:{line}" and words in err.value.message


def test_the_one_yaml_loader_keeps_merge_keys_and_rejects_duplicates():
    import yaml

    from flywheel.config import load_yaml

    assert load_yaml("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\n")["d"] == {"x": 3, "y": 2}
    with pytest.raises(yaml.YAMLError, match="duplicate key `a`"):
        load_yaml("a: 1\na: 2\n")


@pytest.mark.parametrize("text, line, words", [
    ("apps:\n  docs_qa:\n    options: {k: 0}\n", 3, "options.k"),
    ("apps:\n  docs_qa:\n    options:\n      k: true\n", 4, "options.k"),
    ("apps:\n  docs_qa:\n    options:\n      filters: [en]\n", 4, "options.filters"),
    ("apps:\n  docs_qa:\n    options: {top_k: 3}\n", 3, "unknown option(s) for app 'docs_qa': top_k"),
    ("apps:\n  bot:\n    kind: chat\n    options:\n      system: [a]\n", 5, "options.system"),
    ("apps:\n  bot:\n    kind: chatt\n", 3, "did you mean 'chat'"),
    ("apps:\n  bot:\n    model: strnog\n", 3, "unknown model alias 'strnog'"),
    ("apps:\n  bot:\n    guards:\n      output:\n        - {check: grounding, on_fail: explode}\n", 5,
     "unknown on_fail action `explode`"),
    ("apps:\n  bot:\n    guards:\n      output:\n        - check: grounding\n          max_reasks: 9\n", 6,
     "max_reasks"),
    (("apps:\n  bot:\n    guards:\n      output:\n        - check: grounding\n          on_fail: fallback\n"
      "          fallback: nope\n"), 7, "unknown model alias 'nope'"),
])
def test_app_options_and_guard_specs_are_checked_when_the_config_loads(tmp_path, text, line, words):
    """Not when the app first runs: `flywheel.yaml` with a bad app fails to load, naming file:line."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        Project.load(tmp_path)
    assert err.value.where == f"{path}:{line}" and words in err.value.message, err.value.render()


def test_a_config_built_in_python_gets_the_same_checks(tmp_path):
    from flywheel.config import AppConfig, Config

    with pytest.raises(ConfigError, match="unknown option"):
        Project(tmp_path, Config(apps={"docs_qa": AppConfig(options={"kk": 3})}))
    assert Project(tmp_path, Config(apps={"docs_qa": AppConfig(options={"k": 3})})).config.apps["docs_qa"]


def test_the_runtime_gives_tracing_its_pii_masker(tmp_path):
    """tracing/ cannot import the detectors in checks/: `tracing.redact_pii` works because the Runtime injects one."""
    from flywheel.apps.runtime import Runtime
    from flywheel.tracing import tracer

    write(tmp_path, "tracing:\n  redact_pii: [EMAIL_ADDRESS]\n")
    with Runtime(Project.load(tmp_path)) as rt:
        rt.store  # noqa: B018 - opening the store attaches tracing
        assert tracer.redactor.scrub_text("write to ann.lee@example.com") == "write to <EMAIL_ADDRESS>"


def test_an_unknown_check_in_a_guard_fails_when_the_project_opens(tmp_path):
    """The check registry sits above the config: the Runtime builds every guard policy as it opens."""
    from flywheel.apps.runtime import Runtime

    path = write(tmp_path, "apps:\n  docs_qa:\n    guards:\n      input:\n        - {check: pii-x, on_fail: block}\n")
    project = Project.load(tmp_path)  # the shape is fine
    with pytest.raises(ConfigError) as err:
        Runtime(project, tracing=False)
    assert err.value.where == f"{path}:5" and "unknown check 'pii-x' — did you mean 'pii'" in err.value.message

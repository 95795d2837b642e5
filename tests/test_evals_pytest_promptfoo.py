# ruff: noqa: F811 - pytest fixtures imported from test_evals_support are redefined as parameters
"""The pytest plugin collects promptfoo configs as `flywheel eval` reads them: one test per test × prompt ×
provider, run against the fake LLM in a subprocess; only when asked; a bad config is a collection error."""

from __future__ import annotations

from pathlib import Path

from test_evals_promptfoo import CONFIG, capitals, script_capitals, write
from test_evals_pytest_plugin import pytest_run
from test_evals_support import llm, project  # noqa: F401 - fixtures

from flywheel.evals.pytest_plugin import is_suite

ONE_PROMPT = CONFIG.replace("  - file://prompts/chat.json\n", "")


def test_promptfoo_config_is_one_test_per_case_prompt_and_provider(tmp_path: Path, llm, project) -> None:
    script_capitals(llm)  # small answers London for France; strong answers right
    capitals(tmp_path)
    out = pytest_run(tmp_path, "promptfooconfig.yaml", "-rA")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "2 failed, 6 passed" in out.stdout, out.stdout
    assert "PASSED promptfooconfig.yaml::france[chat.json-strong]" in out.stdout
    assert "FAILED promptfooconfig.yaml::france[chat.json-small]" in out.stdout
    assert "case `france` failed on small" in out.stdout and "FAIL contains" in out.stdout
    prompted = {r["messages"][-1]["content"] for r in llm.requests if r.get("model") == "fake-strong"}
    assert {"Capital of FRANCE?", "Answer briefly: what is the capital of Italy?"} <= prompted
    assert all(r["temperature"] == 0 for r in llm.requests if r.get("model") == "fake-strong")


def test_selection_runs_only_the_selected_provider(tmp_path: Path, llm, project) -> None:
    script_capitals(llm)
    capitals(tmp_path)
    write(tmp_path / "evals" / "capitals.yaml", ONE_PROMPT.replace("file://tests.csv", "file://../tests.csv"))
    out = pytest_run(tmp_path, "evals/", "-k", "strong", "-rA")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 passed, 2 deselected" in out.stdout
    assert "PASSED evals/capitals.yaml::italy[strong]" in out.stdout
    assert not [r for r in llm.requests if r.get("model") == "fake-small"]


def test_one_provider_keeps_plain_case_names(tmp_path: Path, llm, project) -> None:
    script_capitals(llm)
    capitals(tmp_path)
    single = ONE_PROMPT.replace(
        "  - id: openai:fake-strong\n    label: strong one\n    config: {temperature: 0, max_tokens: 50}\n", ""
    )
    write(tmp_path / "promptfooconfig.yaml", single)
    out = pytest_run(tmp_path, "promptfooconfig.yaml", "-rA")
    assert "FAILED promptfooconfig.yaml::france" in out.stdout and "PASSED promptfooconfig.yaml::italy" in out.stdout


def test_promptfoo_configs_are_collected_only_when_asked(tmp_path: Path, llm, project) -> None:
    script_capitals(llm)
    capitals(tmp_path)
    plain = pytest_run(tmp_path)
    assert plain.returncode == 5 and llm.requests == [], plain.stdout
    assert "2 failed, 6 passed" in pytest_run(tmp_path, "--flywheel-evals").stdout


def test_bad_promptfoo_config_is_a_collection_error_at_file_line(tmp_path: Path, llm, project) -> None:
    capitals(tmp_path)
    write(tmp_path / "promptfooconfig.yaml", CONFIG.replace("type: not-contains", "type: javascript"))
    out = pytest_run(tmp_path, "promptfooconfig.yaml")
    assert out.returncode == 2, out.stdout
    assert "promptfooconfig.yaml:15" in out.stdout and "javascript" in out.stdout
    assert "Traceback" not in out.stdout


def test_is_suite_knows_promptfoo_configs_as_flywheel_eval_does(tmp_path: Path) -> None:
    assert is_suite(write(tmp_path / "promptfooconfig.yml", "description: x\n"))
    assert is_suite(write(tmp_path / "pf.yaml", "prompts: [a]\nproviders: [b]\ntests: []\n"))
    assert is_suite(write(tmp_path / "pf2.yaml", "prompts: [a]\ntargets: [b]\ntests: []\n"))
    assert not is_suite(write(tmp_path / "half.yaml", "prompts: [a]\ntests: []\n"))
    assert not is_suite(write(tmp_path / "data.yaml", "target: x\nprompts: [a]\nproviders: [b]\ntests: []\n"))

"""A suite's `target:` written wrong: one line naming file:line, what is missing and the configured names."""
# ruff: noqa: F811 - pytest fixtures imported from test_evals_support are redefined as parameters

from __future__ import annotations

from pathlib import Path

import pytest
from test_evals_support import llm, project, write_suite  # noqa: F401 - fixtures

from flywheel.errors import ConfigError
from flywheel.evals.suite import load_suite

CASES = "cases:\n  - vars: {question: q}\n    checks: [{contains: a}, {contains: b}, {contains: c}]\n"
ALIASES = "default, judge, small, strong"


@pytest.mark.parametrize(
    ("target", "message", "hint"),
    [
        (
            "model",
            f"`target: model` names no model alias (configured aliases: {ALIASES})",
            "`target: model:small`",
        ),
        (
            "'model:'",
            f"`target: model:` names no model alias (configured aliases: {ALIASES})",
            "under `models:`",
        ),
        ("model:gpt4", f"unknown model alias 'gpt4' (known model aliases: {ALIASES})", "under `models:`"),
        ("model:smal", "did you mean 'small'?", "under `models:`"),
        ("'workflow:'", "`target: workflow:` names no workflow file", "workflow:PATH.yaml#STEP"),
        ("'workflow:#step'", "`target: workflow:#step` names no workflow file", "workflow:PATH.yaml"),
        ("app:nope", "unknown app 'nope' (known apps: docs_qa)", "under `apps:`"),
        ("wat", "cannot read target `wat`", "model:ALIAS"),
    ],
)
def test_a_bad_target_is_one_line_with_file_line_and_the_names(
    tmp_path: Path, project, target, message, hint
) -> None:
    path = write_suite(tmp_path / "evals" / "t.yaml", f"name: t\ntarget: {target}\n{CASES}")
    with pytest.raises(ConfigError) as err:
        load_suite(path, project)
    assert message in err.value.message and "\n" not in err.value.message
    assert err.value.where == f"{path}:2" and hint in (err.value.hint or "")


def test_spaces_around_the_alias_are_no_mistake(tmp_path: Path, project) -> None:
    path = write_suite(tmp_path / "evals" / "t.yaml", f"name: t\ntarget: 'model: small '\n{CASES}")
    suite = load_suite(path, project)
    assert str(suite.target) == "model:small"


def test_eval_compare_points_at_the_compare_command(tmp_path):
    from click.testing import CliRunner

    from flywheel.cli import main

    (tmp_path / "flywheel.yaml").write_text("models: {}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "eval", "compare", "a", "b"])
    assert result.exit_code == 2, result.output
    assert "suite compare does not exist" in result.output
    assert "flywheel compare" in result.output

"""Found by the S12 guards audit: a judge guard that names no judge model fell back to the implicit `default`
alias — the offline extractive provider, which cannot judge — so every answer was blocked at run time with no
line; a bad check argument written on its own line was reported on the guard's `check:` line."""

from __future__ import annotations

import pytest

from flywheel.apps.registry import build_app
from flywheel.apps.runtime import Runtime
from flywheel.config import Project
from flywheel.errors import ConfigError
from flywheel.guards import GuardPolicy

JUDGE_GUARD = """apps:
  support:
    kind: chat
    model: gpt
    guards:
      output:
        - check: judge
          criterion: "The answer promises no refund."
          on_fail: block
"""


def _project(tmp_path, models: str, guards: str = JUDGE_GUARD) -> Project:
    (tmp_path / "flywheel.yaml").write_text(f"models:\n{models}{guards}", encoding="utf-8")
    return Project.load(tmp_path)


def test_a_judge_guard_without_a_model_on_the_extractive_default_stops_with_its_line(tmp_path, llm):
    gpt = (
        f'  gpt: {{provider: openai_compat, base_url: "{llm.base_url}", model: fake-model, max_retries: 0}}\n'
    )
    with pytest.raises(ConfigError) as err, Runtime(_project(tmp_path, gpt)) as rt:
        build_app(rt, "support")
    assert err.value.where == f"{tmp_path / 'flywheel.yaml'}:9"  # the guard's `- check: judge` line
    assert "names no `model:`" in err.value.message and "extractive" in err.value.message
    assert "model: ALIAS" in (err.value.hint or "")
    assert llm.requests == []


def test_a_judge_guard_on_an_extractive_alias_stops_with_the_model_line(tmp_path, llm):
    gpt = (
        f'  gpt: {{provider: openai_compat, base_url: "{llm.base_url}", model: fake-model, max_retries: 0}}\n'
    )
    guards = JUDGE_GUARD.replace(
        "          on_fail: block\n", "          model: default\n          on_fail: block\n"
    )
    with pytest.raises(ConfigError) as err, Runtime(_project(tmp_path, gpt, guards)) as rt:
        build_app(rt, "support")
    assert err.value.where == f"{tmp_path / 'flywheel.yaml'}:11"
    assert "model alias 'default'" in err.value.message


def test_a_negated_judge_guard_is_held_to_its_own_model(tmp_path, llm):
    gpt = (
        f'  gpt: {{provider: openai_compat, base_url: "{llm.base_url}", model: fake-model, max_retries: 0}}\n'
    )
    negated = JUDGE_GUARD.replace("check: judge", "check: not-judge")
    with Runtime(
        _project(tmp_path, gpt, negated.replace("on_fail: block", "model: gpt\n          on_fail: block"))
    ) as rt:
        assert build_app(rt, "support") is not None  # `model: gpt` is read through `not-`
    with (
        pytest.raises(ConfigError) as err,
        Runtime(
            _project(tmp_path, gpt, negated.replace("on_fail: block", "model: gtp\n          on_fail: block"))
        ) as rt,
    ):
        build_app(rt, "support")
    assert "unknown model alias 'gtp'" in err.value.message


def test_a_judge_guard_without_a_model_calls_an_llm_default(tmp_path, llm):
    llm.add(r"<output>[^<]*refund", "It promises a refund.\nVerdict: FAIL")
    llm.add(r"<criterion>", "Nothing about refunds.\nVerdict: PASS")
    llm.add(r"refund", "Yes, we will refund you in full.")
    models = "".join(
        f'  {name}: {{provider: openai_compat, base_url: "{llm.base_url}", model: fake-model, '
        "max_retries: 0}\n"
        for name in ("default", "gpt")
    )
    with Runtime(_project(tmp_path, models)) as rt:
        answer = build_app(rt, "support").run("Can I get a refund?")
    assert answer.refusal == "guard_blocked"
    assert [(a.check, a.action) for a in answer.guard_actions] == [("judge", "block")]
    judged = [r for r in llm.requests if "<criterion>" in str(r)]
    assert len(judged) == 1 and "Yes, we will refund you in full." in str(judged[0])


@pytest.mark.parametrize(("arg", "value"), [("threshold", 1.5), ("sources", "false")])
def test_a_bad_check_argument_is_reported_on_its_own_line(arg, value):
    def where(stage, i, key=None):  # `- check: injection` on line 2, `on_fail:` on 3, the argument on 4
        return f"guards.yaml:{ {None: 2, 'check': 2, 'on_fail': 3, arg: 4}[key] }"

    with pytest.raises(ConfigError) as err:
        GuardPolicy.from_config(
            {"input": [{"check": "injection", "on_fail": "block", arg: value}]}, where=where
        )
    assert err.value.where == "guards.yaml:4", err.value
    assert arg in err.value.message


def test_a_bad_source_guard_argument_is_reported_on_its_own_line():
    def where(stage, i, key=None):
        return f"guards.yaml:{ {None: 2, 'check': 2, 'on_fail': 3, 'sources_threshold': 4}[key] }"

    with pytest.raises(ConfigError) as err:
        GuardPolicy.from_config(
            {"sources": [{"check": "injection", "on_fail": "drop", "sources_threshold": 2}]}, where=where
        )
    assert err.value.where == "guards.yaml:4"
    assert "sources_threshold must be a number between 0 and 1" in err.value.message


def test_the_injection_hint_is_a_whole_sentence():
    with pytest.raises(ConfigError) as err:
        GuardPolicy.from_config({"input": [{"check": "injection", "on_fail": "block", "threshold": 7}]})
    assert err.value.hint is not None and err.value.hint.endswith(".")


def test_the_judge_provider_is_checked_from_the_models_given():
    from flywheel.config.models import ModelAlias

    spec = {"output": [{"check": "judge", "criterion": "No refunds.", "on_fail": "block"}]}
    with pytest.raises(ConfigError, match="extractive"):
        GuardPolicy.from_config(spec, models={"default": ModelAlias(provider="extractive")})
    llm_default = ModelAlias(provider="openai_compat", base_url="http://127.0.0.1:9/v1", model="m")
    assert GuardPolicy.from_config(spec, models={"default": llm_default}).output


def test_a_bad_value_is_reported_on_the_value_line_and_an_unknown_check_on_the_check_line():
    def where(stage, i, key=None):  # `- check:` on line 2, `value:` on 3
        return f"guards.yaml:{ {None: 2, 'check': 2, 'value': 3, 'on_fail': 4}[key] }"

    with pytest.raises(ConfigError) as err:
        GuardPolicy.from_config(
            {"output": [{"check": "language", "value": "klingon", "on_fail": "block"}]}, where=where
        )
    assert err.value.where == "guards.yaml:3" and "klingon" in err.value.message
    with pytest.raises(ConfigError) as err:
        GuardPolicy.from_config(
            {"output": [{"check": "languag", "value": "zh", "on_fail": "block"}]}, where=where
        )
    assert err.value.where == "guards.yaml:2" and "did you mean 'language'" in err.value.message


def test_the_project_open_check_reports_a_judge_guard_on_the_extractive_default(tmp_path, llm):
    """check_guards (run when a project opens, before `flywheel serve` answers) was given no models, so the
    extractive judge was found only on the app's first request."""
    from flywheel.apps.registry import check_guards

    gpt = f'  gpt: {{provider: openai_compat, base_url: "{llm.base_url}", model: fake-model, max_retries: 0}}\n'
    with pytest.raises(ConfigError) as err, Runtime(_project(tmp_path, gpt)) as rt:
        check_guards(rt)
    assert err.value.where == f"{tmp_path / 'flywheel.yaml'}:9"
    assert "extractive" in err.value.message


def test_a_bad_check_argument_hint_is_the_docstrings_whole_first_paragraph():
    from flywheel.checks.base import build
    from flywheel.errors import UserError

    with pytest.raises(UserError) as err:
        build("diversity", "x")
    # the first docstring line alone stopped at "— over a case's"
    assert (err.value.hint or "").endswith("(and passes).")

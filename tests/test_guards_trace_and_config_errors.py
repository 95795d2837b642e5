"""Found by the S7 guards audit: the guard span says what the guard really did, and guard config errors name
flywheel.yaml the way every other config error does, without redundant wording."""

from __future__ import annotations

import pytest

from flywheel.apps.registry import build_app
from flywheel.apps.runtime import Runtime
from flywheel.config import Project
from flywheel.errors import ConfigError
from flywheel.guards import GuardPolicy


def guard_actions(spans) -> list[str]:
    return [s.attributes["flywheel.guard.action"] for s in spans if s.kind == "guard" and s.name == "guard.test-maxlen"]


def test_an_exhausted_reask_is_a_refrain_on_the_span_too(spans):
    from test_guards_policy import MaxLen  # noqa: F401 - registers test-maxlen

    policy = GuardPolicy.from_config({"output": [{"check": "test-maxlen", "value": 5, "on_fail": "reask",
                                                  "max_reasks": 1}]})
    out = policy.output.run("far too long", regenerate=lambda feedback, alias: "still too long")
    assert out.action == "refrain" and [a.action for a in out.actions] == ["reask", "refrain"]
    assert guard_actions(spans) == ["reask", "refrain"]  # was ["reask", "reask"]
    spans.clear()
    policy.output.run("far too long")  # no way to re-ask at all (a stream)
    assert guard_actions(spans) == ["refrain"]


def test_a_redaction_that_missed_something_is_a_block_on_the_span(spans):
    from test_guards_policy import LeakyRedactor  # noqa: F401 - registers test-leaky-redactor (redacts one banana)

    out = GuardPolicy.from_config({"input": [{"check": "test-leaky-redactor", "on_fail": "redact"}]}).input.run(
        "a banana and a banana")
    assert out.action == "block" and [a.action for a in out.actions] == ["redact", "block"]
    assert [s.attributes["flywheel.guard.action"] for s in spans if s.kind == "guard"] == ["redact", "block"]


def write(tmp_path, guards: str) -> None:
    (tmp_path / "flywheel.yaml").write_text(
        "models:\n  m: {provider: extractive}\napps:\n  support:\n    kind: chat\n    model: m\n"
        f"    guards:\n{guards}", encoding="utf-8")


@pytest.mark.parametrize(("guards", "line"), [
    ("      input:\n        - {check: pii, on_fail: blok}\n", 9),  # found when flywheel.yaml loads
    ("      input:\n        - {check: pi, on_fail: block}\n", 9),  # found when the app builds its guards
])
def test_guard_errors_name_the_file_as_the_loader_does(tmp_path, monkeypatch, guards, line):
    write(tmp_path, guards)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err, Runtime(Project.load(".")) as rt:
        build_app(rt, "support")
    assert err.value.where == f"flywheel.yaml:{line}"  # relative, like the project was given; was absolute


@pytest.mark.parametrize(("stage", "action", "message"), [
    ("input", "blok", "unknown on_fail action `blok` for guard `pii`"),
    ("output", "drop", "on_fail `drop` only applies to `sources:` guards (it removes retrieved passages)"),
    ("input", "reask", "on_fail `reask` only applies to output guards (it regenerates the answer)"),
    ("sources", "redact", "on_fail `redact` does not apply to retrieved sources (guard `pii`)"),
])
def test_on_fail_messages_say_what_is_wrong_once(tmp_path, stage, action, message):
    write(tmp_path, f"      {stage}:\n        - {{check: pii, on_fail: {action}}}\n")
    with pytest.raises(ConfigError) as loaded:
        Project.load(tmp_path)
    with pytest.raises(ConfigError) as built:  # a policy written in Python gets the same message
        GuardPolicy.from_config({stage: [{"check": "pii", "on_fail": action}]})
    assert loaded.value.message == built.value.message == message
    assert "(is unknown)" not in str(loaded.value)


def test_a_judge_guard_on_an_unknown_alias_stops_start_up_with_its_line(tmp_path, llm):
    """Was: accepted, then every answer failed at the judge call, after the model had been paid, with no line."""
    (tmp_path / "flywheel.yaml").write_text(f"""models:
  gpt: {{provider: openai_compat, base_url: "{llm.base_url}", model: fake-model, max_retries: 0}}
routes:
  judges: {{alias: gpt}}
apps:
  support:
    kind: chat
    model: gpt
    guards:
      output:
        - {{check: judge, criterion: "No refunds are promised.", model: gtp, on_fail: block}}
""", encoding="utf-8")
    with pytest.raises(ConfigError) as err, Runtime(Project.load(tmp_path)) as rt:
        build_app(rt, "support")
    assert err.value.where == f"{tmp_path / 'flywheel.yaml'}:11"
    assert err.value.message.startswith("guard `judge` calls unknown model alias 'gtp'") and "'gpt'" in err.value.message
    assert llm.requests == []
    text = (tmp_path / "flywheel.yaml").read_text(encoding="utf-8").replace("model: gtp", "model: judges")
    (tmp_path / "flywheel.yaml").write_text(text, encoding="utf-8")
    with Runtime(Project.load(tmp_path)) as rt:  # a route is a judge the gateway can call too
        assert build_app(rt, "support") is not None


def test_a_misspelt_guard_key_gets_a_did_you_mean():
    with pytest.raises(ConfigError) as err:
        GuardPolicy.from_config({"output": [{"check": "pii", "on_fail": "reask", "max_reask": 2}]})
    assert err.value.hint == "`max_reask` is not a guard key: did you mean `max_reasks`?"

"""Workflow mistakes found before anything runs, each at its file:line: settings of the wrong type (`k: four`,
`batch: 1`, which never finished), unknown model aliases; mistakes found while a step runs name the step's line;
an interrupted run prints how to resume it, and `--resume latest` finds it."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner
from workflows_support import gateway

import flywheel.cli.workflow  # noqa: F401 - registers `flywheel workflow`
from flywheel.cli import main
from flywheel.errors import UserError
from flywheel.workflows import Workflow, WorkflowServices, load_workflow
from flywheel.workflows.builders import reduce_step


def write(tmp_path, text, name="wf.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


@pytest.mark.parametrize(("setting", "value", "expected"), [
    ("k", '"four"', "`k` of step 'a' must be a whole number ≥ 1, got 'four'"),
    ("mode", "semantic", "`mode` of step 'a' must be one of hybrid, bm25, dense, got 'semantic'"),
    ("filters", "lang", "`filters` of step 'a' must be a mapping"),
])
def test_retrieve_settings_of_the_wrong_type_are_load_errors_at_their_line(tmp_path, setting, value, expected):
    path = write(tmp_path, f"""
        inputs: [q]
        steps:
          - id: a
            retrieve: "{{{{inputs.q}}}}"
            {setting}: {value}
    """)
    with pytest.raises(UserError) as info:
        load_workflow(path)
    assert info.value.where == f"{path}:5" and expected in info.value.message
    assert info.value.hint.startswith("e.g. ")


@pytest.mark.parametrize(("kind_lines", "expected"), [
    ('reduce: "{{inputs.q}}"\n    prompt: "x {{items}}"\n    batch: 1', "`batch` of step 'a' must be a whole number ≥ 2"),
    ('reduce: "{{inputs.q}}"\n    prompt: "x {{items}}"\n    batch: zero', "got 'zero'"),
    ('prompt: "x {{inputs.q}}"\n    schema: {type: object}\n    max_reasks: many', "`max_reasks` of step 'a'"),
    ('plan: "do {{inputs.q}}"\n    max_steps: lots', "`max_steps` of step 'a' must be a whole number from 1 to 32"),
    ('tool: t\n    prompt: "x {{inputs.q}}"\n    loop: "yes"', "`loop` of step 'a' must be true or false"),
])
def test_numbers_and_flags_are_checked_before_the_run(tmp_path, kind_lines, expected):
    path = tmp_path / "wf.yaml"
    path.write_text("inputs: [q]\ntools:\n  t: {function: json:dumps, schema: {type: object}}\nsteps:\n"
                    f"  - id: a\n    {kind_lines}\n", encoding="utf-8")
    with pytest.raises(UserError) as info:
        load_workflow(path)
    assert expected in info.value.message
    assert info.value.where == f"{path}:{len(kind_lines.splitlines()) + 5}"


def test_the_python_form_checks_the_same_settings():
    with pytest.raises(UserError, match="`batch` of step 'sum' must be a whole number ≥ 2, got 1"):
        Workflow(steps=[reduce_step("sum", "{{inputs.items}}", "Combine {{items}}", batch=1)], inputs=["items"])


def test_an_unknown_model_alias_stops_the_run_before_any_call(tmp_path, llm):
    path = write(tmp_path, """
        inputs: [q]
        model: default
        steps:
          - id: first
            prompt: "one {{inputs.q}}"
          - id: second
            prompt: "two {{steps.first.output}}"
            model: strnog
    """)
    wf = load_workflow(path)
    with pytest.raises(UserError) as info:
        wf.run({"q": "x"}, services=WorkflowServices(gateway=gateway(llm, strong=gateway(llm).resolve("default"))))
    assert info.value.where == f"{path}:6"
    assert "unknown model alias 'strnog'" in info.value.message and "did you mean 'strong'" in info.value.message
    assert llm.requests == []  # `first` was not paid for

    top = write(tmp_path, """
        inputs: [q]
        model: defualt
        steps:
          - id: first
            prompt: "one {{inputs.q}}"
    """, name="top.yaml")
    with pytest.raises(UserError) as info:
        load_workflow(top).run({"q": "x"}, services=WorkflowServices(gateway=gateway(llm)))
    assert info.value.where == f"{top}:2" and "'defualt'" in info.value.message


def test_tool_arguments_that_do_not_fit_name_the_steps_line(tmp_path):
    (tmp_path / "wftools.py").write_text("def status(order_id: str) -> str:\n    return 'shipped'\n")
    path = write(tmp_path, """
        inputs: [q]
        tools:
          status:
            function: wftools:status
            schema: {type: object, properties: {order_id: {type: string}}, required: [order_id]}
        steps:
          - id: look
            tool: status
            args: {id: "{{inputs.q}}"}
    """)
    out = CliRunner().invoke(main, ["--project", str(tmp_path), "workflow", "run", "wf.yaml", "-i", "q=A1"])
    assert out.exit_code == 2, out.output
    assert f"{path}:7: arguments for tool 'status' do not fit its schema" in out.output
    assert "Traceback" not in out.output


STEPS_PY = '''
import os

def fetch(topic):
    return topic.upper()

def slow(fetch):
    if os.environ.get("WF_INTERRUPT") == "1":
        raise KeyboardInterrupt
    return fetch + "!"
'''


def test_an_interrupted_run_says_how_to_resume_and_resume_latest_finds_it(tmp_path, monkeypatch):
    (tmp_path / "wfsteps_interrupt.py").write_text(STEPS_PY)
    write(tmp_path, """
        name: interruptible
        inputs: [topic]
        steps:
          - id: fetch
            python: wfsteps_interrupt:fetch
          - id: slow
            python: wfsteps_interrupt:slow
    """)
    runner = CliRunner()
    monkeypatch.setenv("WF_INTERRUPT", "1")
    out = runner.invoke(main, ["--project", str(tmp_path), "workflow", "run", "wf.yaml", "-i", "topic=tides"])
    assert out.exit_code == 130, out.output
    assert "interrupted at step 'slow'" in out.output and "--resume " in out.output
    run_id = out.output.split("--resume ")[1].split("`")[0]
    shown = runner.invoke(main, ["--project", str(tmp_path), "workflow", "show", run_id, "--json"])
    assert json.loads(shown.output)["status"] == "interrupted"

    monkeypatch.setenv("WF_INTERRUPT", "0")
    again = runner.invoke(main, ["--project", str(tmp_path), "workflow", "run", "wf.yaml", "--resume", "latest",
                                 "--json"])
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)  # stderr says which run `latest` picked
    assert data["run_id"] == run_id and data["output"] == "TIDES!"
    assert [s["status"] for s in data["steps"]] == ["reused", "done"]

    none_left = runner.invoke(main, ["--project", str(tmp_path), "workflow", "run", "wf.yaml", "--resume", "latest"])
    assert none_left.exit_code == 2 and "no unfinished run to resume" in none_left.output


def test_an_input_the_workflow_does_not_declare_is_a_typo_not_ignored(tmp_path):
    (tmp_path / "wfsteps_inputs.py").write_text("def echo(question):\n    return question\n")
    write(tmp_path, """
        name: echo
        inputs: [question]
        steps:
          - id: echo
            python: wfsteps_inputs:echo
    """)
    base = ["--project", str(tmp_path), "workflow", "run", "wf.yaml"]
    out = CliRunner().invoke(main, [*base, "-i", "question=hi", "-i", "questoin=hi"])
    assert out.exit_code == 2 and "Traceback" not in out.output
    assert "--input 'questoin': no such input; inputs: question — did you mean 'question'?" in out.output
    assert CliRunner().invoke(main, [*base, "-i", "question=hi"]).exit_code == 0

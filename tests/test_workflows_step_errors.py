"""A step whose own code raises (a tool, a python step) under `flywheel workflow run`: one line naming the run,
the step and where it raised, exit 1, no traceback; the finished steps are stored and the run resumes. And a
`flywheel eval` suite on a workflow names, when it loads, a case that lacks an input or a step output; a
misspelt input is named; the step that refused is listed with the run's steps."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

import flywheel.cli.workflow  # noqa: F401 - registers `flywheel workflow`
from flywheel.cli import main
from flywheel.config import Project
from flywheel.errors import UserError
from flywheel.evals.suite import load_suite

TOOLS_PY = """
import os

def first(text: str) -> str:
    return text.split()[0]

def flaky(word: str) -> str:
    if os.path.exists(os.path.join(os.path.dirname(__file__), "broken")):
        raise RuntimeError("the order service is down")
    return word.upper()
"""

WORKFLOW = """
name: shout
inputs: [text]
tools:
  first:
    function: wftools_err:first
    schema: {type: object, properties: {text: {type: string}}, required: [text]}
  flaky:
    function: wftools_err:flaky
    schema: {type: object, properties: {word: {type: string}}, required: [word]}
steps:
  - id: pick
    tool: first
    args: {text: "{{inputs.text}}"}
  - id: loud
    tool: flaky
    args: {word: "{{steps.pick.output}}"}
output: "{{steps.loud.output}}"
"""


def project(tmp_path):
    (tmp_path / "wftools_err.py").write_text(TOOLS_PY)
    (tmp_path / "wf.yaml").write_text(textwrap.dedent(WORKFLOW).lstrip())
    (tmp_path / "broken").write_text("")
    return tmp_path


def test_a_raising_tool_is_one_line_exit_1_and_the_run_resumes(tmp_path, monkeypatch):
    root = project(tmp_path)
    monkeypatch.chdir(root)
    runner = CliRunner()
    out = runner.invoke(main, ["--project", str(root), "workflow", "run", "wf.yaml", "--input", "text=hello world"])
    assert out.exit_code == 1, out.output
    assert "Traceback" not in out.output
    assert "failed at step 'loud': RuntimeError: the order service is down" in out.output
    assert "(at wftools_err.py:9 in flaky)" in out.output
    run_id = out.output.split("--resume ")[1].split("`")[0]
    shown = runner.invoke(main, ["--project", str(root), "workflow", "show", run_id, "--json"])
    row = json.loads(shown.output)
    assert row["status"] == "failed" and row["reason"].startswith("step 'loud': RuntimeError")

    (root / "broken").unlink()
    again = runner.invoke(main, ["--project", str(root), "workflow", "run", "wf.yaml", "--resume", run_id, "--json"])
    assert again.exit_code == 0, again.output
    data = json.loads(again.output)
    assert data["output"] == "HELLO"
    assert {s["id"]: s["status"] for s in data["steps"]} == {"pick": "reused", "loud": "done"}


def suite(tmp_path, target, vars):
    root = project(tmp_path)
    (root / "flywheel.yaml").write_text("models:\n  default: {provider: extractive}\n")
    path = root / "suite.yaml"
    path.write_text(textwrap.dedent(f"""
        name: wf
        target: {target}
        cases:
          - id: ok
            vars: {{text: "a b", steps: {{pick: a}}}}
          - id: short
            vars: {vars}
    """).lstrip())
    return path, Project.load(root)


@pytest.mark.parametrize(("target", "vars", "message"), [
    ("workflow:wf.yaml", "{txt: a}", "case `short` lacks input(s) text of workflow 'shout'"),
    ("workflow:wf.yaml#loud", "{steps: {pik: a}}", "case `short`: step 'loud' reads the output of pick"),
])
def test_a_workflow_suite_names_the_case_that_lacks_what_it_needs_when_it_loads(tmp_path, target, vars, message):
    path, proj = suite(tmp_path, target, vars)
    with pytest.raises(UserError) as info:
        load_suite(path, proj)
    assert info.value.where == f"{path}:6" and message in info.value.message


def test_a_misspelt_input_is_named_next_to_the_missing_one(tmp_path):
    from flywheel.workflows import load_workflow

    wf = load_workflow(project(tmp_path) / "wf.yaml", root=tmp_path)
    with pytest.raises(UserError) as info:
        wf.run({"txet": "hello"})
    assert "needs input(s): text; given instead: txet (did you mean text?)" in info.value.message


def test_the_step_that_refused_is_listed_with_the_runs_steps(tmp_path, llm):
    from workflows_support import gateway

    from flywheel.workflows import WorkflowServices, load_workflow

    llm.add(r"^Give JSON", "not json at all")
    path = tmp_path / "json.yaml"
    path.write_text(textwrap.dedent("""
        name: js
        steps:
          - id: first
            prompt: "Give JSON please"
            schema: {type: object}
    """).lstrip())
    result = load_workflow(path).run({}, services=WorkflowServices(gateway=gateway(llm)))
    assert result.status == "refused" and result.stopped_by == "first"
    assert [(s.id, s.status) for s in result.steps] == [("first", "refused")]

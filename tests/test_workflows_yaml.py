"""The YAML form: a workflow file runs; every mistake is a UserError with file:line and the valid choices (exit 2
from the CLI); `flywheel workflow run / show`."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner
from workflows_support import gateway

import flywheel.cli.workflow  # noqa: F401 - registers `flywheel workflow` until cli/__init__ lists it
from flywheel.cli import main
from flywheel.errors import UserError
from flywheel.workflows import WorkflowServices, load_workflow


def write(tmp_path, text, name="wf.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def error_of(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(UserError) as info:
        load_workflow(path)
    return info.value, path


def test_a_yaml_workflow_runs_with_a_check_and_an_output(tmp_path, llm):
    llm.add(r"^Answer", "Paris [1]")
    path = write(tmp_path, """
        name: capital
        inputs: [question]
        steps:
          - id: draft
            prompt: {system: "Be brief.", template: "Answer: {{inputs.question}}"}
          - id: cited
            check: {contains: "["}
            input: "{{steps.draft.output}}"
            on_fail: retry
          - id: branchy
            branch:
              if: {value: "{{steps.draft.output}}", contains: paris}
              then: [agree]
              else: [disagree]
          - id: agree
            prompt: "Say yes"
          - id: disagree
            prompt: "Say no"
        output: "{{steps.draft.output}}"
    """)
    llm.add(r"^Say yes", "yes")
    wf = load_workflow(path)
    result = wf.run({"question": "capital of France?"}, services=WorkflowServices(gateway=gateway(llm)))
    assert result.status == "done" and result.output == "Paris [1]"
    assert {s.id: s.status for s in result.steps}["disagree"] == "skipped"
    assert result.outputs["agree"] == "yes"


def test_a_cycle_is_named_with_its_line(tmp_path):
    err, path = error_of(tmp_path, """
        steps:
          - id: a
            prompt: "{{steps.b.output}}"
          - id: b
            prompt: "{{steps.a.output}}"
    """)
    assert "cycle: a → b → a" in err.message or "cycle: b → a → b" in err.message
    assert err.where in (f"{path}:2", f"{path}:4")


def test_an_unknown_step_kind_lists_the_kinds(tmp_path):
    err, path = error_of(tmp_path, """
        steps:
          - id: draft
            promt: "hello"
    """)
    assert err.where == f"{path}:3"
    assert "unknown step kind 'promt'" in err.message and "did you mean 'prompt'" in err.message
    assert "known step kinds: branch, check, map, plan, prompt, python, reduce, retrieve, tool" in err.message
    err, path = error_of(tmp_path, """
        steps:
          - id: draft
            kind: llm
            prompt: "hello"
    """)
    assert err.where == f"{path}:3" and "unknown step kind 'llm'" in err.message


def test_unknown_references_name_the_known_steps_and_inputs(tmp_path):
    err, path = error_of(tmp_path, """
        inputs: [question]
        steps:
          - id: docs
            retrieve: "{{inputs.question}}"
          - id: draft
            prompt: "{{steps.dcos.output}}"
    """)
    assert err.where == f"{path}:5"
    assert "unknown step 'dcos'" in err.message and "did you mean 'docs'" in err.message
    err, path = error_of(tmp_path, """
        inputs: [question]
        steps:
          - id: draft
            prompt: "{{inputs.questoin}}"
    """)
    assert err.where == f"{path}:3" and "unknown input 'questoin'" in err.message and "question" in err.message
    err, path = error_of(tmp_path, """
        steps:
          - id: route
            branch: {if: "x", then: [nowhere]}
    """)
    assert err.where == f"{path}:2" and "unknown step 'nowhere'" in err.message


def test_a_tool_without_a_schema_is_an_error_at_its_line(tmp_path):
    err, path = error_of(tmp_path, """
        tools:
          upper:
            function: string:capwords
        steps:
          - id: shout
            tool: upper
            args: {s: "hi"}
    """)
    assert err.where == f"{path}:2" and "tool 'upper' has no JSON schema" in err.message
    err, path = error_of(tmp_path, """
        steps:
          - id: shout
            tool: upperr
            args: {s: "hi"}
    """)
    assert err.where == f"{path}:3" and "unknown tool 'upperr'" in err.message


def test_unknown_fields_checks_and_on_fail_actions(tmp_path):
    err, path = error_of(tmp_path, """
        steps:
          - id: draft
            prompt: "x"
            temprature: 0
    """)
    assert err.where == f"{path}:4" and "unknown field `temprature`" in err.message
    err, path = error_of(tmp_path, """
        steps:
          - id: draft
            prompt: "x"
          - id: ok
            check: {containz: "x"}
            input: "{{steps.draft.output}}"
    """)
    assert err.where == f"{path}:5" and "unknown check 'containz'" in err.message
    err, path = error_of(tmp_path, """
        steps:
          - id: draft
            prompt: "x"
          - id: ok
            check: {contains: "x"}
            input: "{{steps.draft.output}}"
            on_fail: retyr
    """)
    assert err.where == f"{path}:4" and "unknown on_fail action 'retyr'" in err.message and "retry" in err.message


def test_a_syntax_error_has_its_line(tmp_path):
    err, path = error_of(tmp_path, "steps:\n  - id: a\n    prompt: [unclosed\n")
    assert err.where.startswith(f"{path}:")


# ------------------------------------------------------------------ CLI

STEPS_PY = '''
import pathlib

def split(text):
    return text.split()

def count(split):
    if pathlib.Path(__file__).with_name("down").exists():
        raise RuntimeError("the counter is down")
    return len(split)
'''


def test_cli_runs_shows_and_resumes_a_workflow(tmp_path):
    (tmp_path / "wfsteps.py").write_text(STEPS_PY)
    (tmp_path / "down").write_text("")
    write(tmp_path, """
        name: words
        inputs: [text]
        steps:
          - id: split
            python: wfsteps:split
          - id: count
            python: wfsteps:count
    """)
    runner = CliRunner()
    out = runner.invoke(main, ["--project", str(tmp_path), "workflow", "run", "wf.yaml", "--input", "text=a b c"])
    assert out.exit_code == 1 and "failed at step 'count'" in out.output, out.output
    run_id = out.output.split("workflow run ")[1].split()[0]
    (tmp_path / "down").unlink()
    again = runner.invoke(main, ["--project", str(tmp_path), "workflow", "run", "wf.yaml", "--resume", run_id,
                                 "--json"])
    assert again.exit_code == 0, again.output
    data = json.loads(again.output)
    assert data["output"] == 3 and [s["status"] for s in data["steps"]] == ["reused", "done"]
    shown = runner.invoke(main, ["--project", str(tmp_path), "workflow", "show", run_id, "--json"])
    assert shown.exit_code == 0, shown.output
    row = json.loads(shown.output)
    assert row["status"] == "done" and [s["step_id"] for s in row["steps"]] == ["split", "count"]


def test_cli_exits_2_with_file_line_on_a_bad_workflow(tmp_path):
    path = write(tmp_path, """
        steps:
          - id: a
            summon: "x"
    """)
    out = CliRunner().invoke(main, ["--project", str(tmp_path), "workflow", "run", str(path)])
    assert out.exit_code == 2
    assert f"{path}:3" in out.output and "unknown step kind 'summon'" in out.output
    out = CliRunner().invoke(main, ["--project", str(tmp_path), "workflow", "show", "nope"])
    assert out.exit_code == 2 and "no workflow run 'nope'" in out.output


def test_a_python_step_parameter_must_name_an_input_or_a_step(tmp_path):
    (tmp_path / "wfsteps2.py").write_text("def shout(txt):\n    return txt.upper()\n")
    err, path = error_of(tmp_path, """
        inputs: [text]
        steps:
          - id: loud
            python: wfsteps2:shout
    """)
    assert err.where == f"{path}:3"
    assert "takes a parameter named unknown input or step 'txt'" in err.message and "text" in err.message


def test_a_prompt_file_step_renders_with_vars(tmp_path, llm):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "greet.yaml").write_text(
        "name: greet\nsystem: Be warm.\ntemplate: \"Greet {{ who }} in French\"\n")
    llm.add(r"^Greet", "Bonjour Ann !")
    path = write(tmp_path, """
        inputs: [name]
        steps:
          - id: hello
            prompt: prompts/greet.yaml
            vars: {who: "{{inputs.name}}"}
    """)
    result = load_workflow(path).run({"name": "Ann"}, services=WorkflowServices(gateway=gateway(llm)))
    assert result.output == "Bonjour Ann !"
    body = llm.requests[-1]
    assert body["messages"][0] == {"role": "system", "content": "Be warm."}
    assert body["messages"][-1]["content"] == "Greet Ann in French"
    err, path = error_of(tmp_path, """
        steps:
          - id: hello
            prompt: prompts/missing.yaml
    """)
    assert err.where == f"{path}:3" and "does not exist" in err.message


def test_cli_runs_prompt_steps_on_the_projects_models_and_exits_1_when_stopped(tmp_path, llm):
    (tmp_path / "flywheel.yaml").write_text(textwrap.dedent(f"""
        models:
          default: {{provider: openai_compat, base_url: "{llm.base_url}", model: fake, max_retries: 0}}
    """))
    llm.add(r"^Answer", "no citation")
    write(tmp_path, """
        inputs: [question]
        steps:
          - id: draft
            prompt: "Answer {{inputs.question}}"
          - id: cited
            check: {contains: "["}
            input: "{{steps.draft.output}}"
            on_fail: stop
    """)
    out = CliRunner().invoke(main, ["--project", str(tmp_path), "workflow", "run", "wf.yaml", "-i", "question=why",
                                    "--json"])
    assert out.exit_code == 1, out.output
    data = json.loads(out.output)
    assert data["status"] == "stopped" and data["stopped_by"] == "cited" and data["outputs"]["draft"] == "no citation"
    assert data["trace_id"] and data["models"] == {"default": "fake"}

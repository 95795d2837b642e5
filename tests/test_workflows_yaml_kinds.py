"""Step kinds in the YAML form whose settings include `prompt:` (map, reduce, tool): the kind is the key whose
settings cover the others, as documented in docs/workflows.md; two real kinds on one step are still an error."""

from __future__ import annotations

import textwrap

import pytest
from workflows_support import gateway, last_user

from flywheel.errors import UserError
from flywheel.workflows import WorkflowServices, load_workflow


def write(tmp_path, text):
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def test_map_reduce_and_tool_steps_with_prompt_load_and_run(tmp_path, llm):
    from flywheel.testing.fake_llm import ToolCall

    llm.add(r"^item (\w)", lambda body: "S-" + last_user(body)[-1])
    llm.add(r"^combine", lambda body: "ALL " + last_user(body)[len("combine "):])
    llm.add(r"^weather in", ToolCall("weather", {"text": "Paris"}))
    path = write(tmp_path, """
        name: kinds
        inputs: [items]
        tools:
          weather:
            function: textwrap:dedent
            schema: {type: object, properties: {text: {type: string}}, required: [text]}
        steps:
          - id: parts
            map: "{{inputs.items}}"
            prompt: "item {{item}}"
          - id: all
            reduce: "{{steps.parts.output}}"
            prompt: "combine {{items}}"
          - id: pick
            tool: weather
            prompt: "weather in Paris?"
        output: "{{steps.all.output}}"
    """)
    wf = load_workflow(path)
    assert {s.id: s.kind for s in wf.steps} == {"parts": "map", "all": "reduce", "pick": "tool"}
    result = wf.run({"items": ["a", "b"]}, services=WorkflowServices(gateway=gateway(llm)))
    assert result.status == "done", result.reason
    assert result.outputs["parts"] == ["S-a", "S-b"]
    assert result.output.startswith("ALL ") and "S-a" in result.output and "S-b" in result.output
    assert result.outputs["pick"] == "Paris"


def test_two_real_kinds_on_one_step_are_still_an_error(tmp_path):
    path = write(tmp_path, """
        steps:
          - id: both
            prompt: "hi"
            retrieve: "hi"
    """)
    with pytest.raises(UserError) as info:
        load_workflow(path)
    assert info.value.where == f"{path}:2" and "several kinds: prompt, retrieve" in info.value.message


def test_a_plan_step_names_an_unknown_allowed_kind_at_its_line(tmp_path):
    path = write(tmp_path, """
        steps:
          - id: solve
            plan: "Do it"
            allowed: [prompt, retreive]
    """)
    with pytest.raises(UserError) as info:
        load_workflow(path)
    assert info.value.where == f"{path}:4"
    assert "unknown plan step kind 'retreive' — did you mean 'retrieve'?" in info.value.message

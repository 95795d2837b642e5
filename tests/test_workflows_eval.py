"""`flywheel eval` targets for workflows: `workflow:FILE.yaml` runs the whole workflow per case,
`workflow:FILE.yaml#STEP` runs only that step, given the outputs of the steps it reads."""

from __future__ import annotations

import asyncio
import textwrap
from types import SimpleNamespace

import pytest
from workflows_support import chat_requests, gateway, last_user

from flywheel.config import Project
from flywheel.errors import UserError
from flywheel.evals.suite import Target
from flywheel.workflows.eval_target import WorkflowEvalRunner

WORKFLOW = """
name: qa
inputs: [question]
steps:
  - id: facts
    prompt: "List facts about {{inputs.question}}"
  - id: draft
    prompt: "Answer {{inputs.question}} from: {{steps.facts.output}}"
output: "{{steps.draft.output}}"
"""


@pytest.fixture
def runtime(tmp_path, llm):
    (tmp_path / "qa.yaml").write_text(textwrap.dedent(WORKFLOW))
    return SimpleNamespace(project=Project(tmp_path), gateway=gateway(llm), store=None, retriever=None)


def call(runner, vars):
    try:
        return asyncio.run(runner.call(vars))
    finally:
        runner.close()


def test_a_whole_workflow_is_a_target(runtime, llm):
    llm.add(r"^List facts", "water is wet")
    llm.add(r"^Answer", "It is wet.")
    out = call(WorkflowEvalRunner(Target("workflow", "qa.yaml"), runtime, workers=1), {"question": "water"})
    assert out.text == "It is wet." and out.models == ["fake"] and out.cost_usd == 0.0 and out.trace_id
    assert len(chat_requests(llm)) == 2


def test_a_single_step_is_a_target_fed_by_the_case(runtime, llm):
    llm.add(r"^Answer", "Given facts.")
    runner = WorkflowEvalRunner(Target("workflow", "qa.yaml#draft"), runtime, workers=1)
    out = call(runner, {"question": "water", "steps": {"facts": "ice floats"}})
    assert out.text == "Given facts."
    assert [last_user(r) for r in chat_requests(llm)] == ["Answer water from: ice floats"]  # `facts` never ran


def test_a_step_target_names_what_the_case_lacks(runtime):
    runner = WorkflowEvalRunner(Target("workflow", "qa.yaml#draft"), runtime, workers=1)
    with pytest.raises(UserError, match="reads the output of facts"):
        call(runner, {"question": "water"})
    with pytest.raises(UserError, match="unknown step 'drfat'"):
        WorkflowEvalRunner(Target("workflow", "qa.yaml#drfat", where="suite.yaml:2"), runtime, workers=1)

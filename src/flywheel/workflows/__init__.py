"""Workflows (layer 3): small steps chained into a deterministic DAG, each step a span, runs resumable.

    from flywheel.workflows import Workflow, step, WorkflowServices, load_workflow

    @step
    def shout(text):
        return text.upper()

    Workflow(steps=[shout]).run({"text": "hi"}).output          # "HI"
    load_workflow("workflows/qa.yaml").run({"question": "…"}, services=WorkflowServices.of_runtime(rt))

See docs/workflows.md for the YAML form and the step kinds.
"""

from __future__ import annotations

from typing import Any

from flywheel.workflows.builders import (
    branch_step,
    check_step,
    map_step,
    plan_step,
    prompt_step,
    reduce_step,
    retrieve_step,
    tool_step,
)
from flywheel.workflows.dag import Workflow
from flywheel.workflows.kinds import StepContext, WorkflowServices
from flywheel.workflows.runner import RunResult, WorkflowRunner
from flywheel.workflows.steps import Step, step
from flywheel.workflows.tools import TOOLS, Tool, register_tool, tool


def load_workflow(path: Any, *, root: Any = None) -> Workflow:
    from flywheel.workflows.yaml_form import load_workflow as load

    return load(path, root=root)


__all__ = ["TOOLS", "RunResult", "Step", "StepContext", "Tool", "Workflow", "WorkflowRunner", "WorkflowServices",
           "branch_step", "check_step", "load_workflow", "map_step", "plan_step", "prompt_step", "reduce_step",
           "register_tool", "retrieve_step", "step", "tool", "tool_step"]

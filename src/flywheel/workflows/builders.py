"""Declarative steps from Python (the same records the YAML form builds):

    Workflow(name="qa", inputs=["question"], steps=[
        retrieve_step("docs", "{{inputs.question}}", k=4),
        prompt_step("draft", "Answer from these passages:\\n{{steps.docs.output}}\\n\\nQ: {{inputs.question}}"),
        check_step("cited", "{{steps.draft.output}}", check={"contains": "["}, on_fail="retry", max_retries=2),
    ])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flywheel.workflows.steps import Step


def prompt_step(id: str, prompt: str | dict[str, str], *, model: str | None = None, schema: dict | None = None,
                vars: dict[str, Any] | None = None, needs: list[str] | None = None) -> Step:
    params: dict[str, Any] = {"prompt": prompt}
    params.update({k: v for k, v in (("model", model), ("schema", schema), ("vars", vars)) if v is not None})
    return Step(id=id, kind="prompt", params=params, needs=list(needs or []))


def retrieve_step(id: str, query: str, *, k: int | None = None, filters: dict | None = None) -> Step:
    params: dict[str, Any] = {"retrieve": query}
    params.update({k_: v for k_, v in (("k", k), ("filters", filters)) if v is not None})
    return Step(id=id, kind="retrieve", params=params)


def tool_step(id: str, tool: str | list[str], *, args: dict[str, Any] | None = None, prompt: str | None = None,
              model: str | None = None, loop: bool = False, max_steps: int | None = None,
              max_cost_usd: float | None = None) -> Step:
    """`args`: call the tool with them; `prompt`: a model picks the arguments (one round; with `loop`, the
    gateway's bounded tool loop until the model answers)."""
    params: dict[str, Any] = {"tool": tool}
    params.update({k: v for k, v in (("args", args), ("prompt", prompt), ("model", model), ("max_steps", max_steps),
                                     ("max_cost_usd", max_cost_usd)) if v is not None})
    if loop:
        params["loop"] = True
    return Step(id=id, kind="tool", params=params)


def check_step(id: str, input: str, *, check: Any = None, fn: Callable[[Any], Any] | None = None,
               on_fail: str = "stop", retry: str | None = None, max_retries: int = 1, goto: str | None = None
               ) -> Step:
    """`check` is a checks-registry entry ({contains: x}); `fn(value) -> bool | (bool, reason)` a Python one."""
    params: dict[str, Any] = {"input": input, "on_fail": on_fail, "max_retries": max_retries}
    params.update({k: v for k, v in (("check", check), ("fn", fn), ("retry", retry), ("goto", goto))
                   if v is not None})
    return Step(id=id, kind="check", params=params)


def branch_step(id: str, condition: Any, *, then: list[str], otherwise: list[str] | None = None) -> Step:
    return Step(id=id, kind="branch", params={"if": condition, "then": list(then), "else": list(otherwise or [])})


def map_step(id: str, over: str, prompt: str | dict[str, str], *, model: str | None = None) -> Step:
    params: dict[str, Any] = {"map": over, "prompt": prompt}
    if model:
        params["model"] = model
    return Step(id=id, kind="map", params=params)


def reduce_step(id: str, over: str, prompt: str | dict[str, str], *, batch: int = 8, model: str | None = None
                ) -> Step:
    params: dict[str, Any] = {"reduce": over, "prompt": prompt, "batch": batch}
    if model:
        params["model"] = model
    return Step(id=id, kind="reduce", params=params)


def plan_step(id: str, task: str, *, allowed: list[str] | None = None, tools: list[str] | None = None,
              max_steps: int = 8, model: str | None = None) -> Step:
    params: dict[str, Any] = {"plan": task, "max_steps": max_steps}
    params.update({k: v for k, v in (("allowed", allowed), ("tools", tools), ("model", model)) if v is not None})
    return Step(id=id, kind="plan", params=params)

"""Plan-then-execute: a model writes a plan once, as JSON validated against a schema; the plan then runs as a
deterministic DAG of the step kinds the workflow allows.

    - id: solve
      plan: "Answer {{inputs.question}} using the tools you need."
      allowed: [retrieve, prompt, tool]      # default: prompt, retrieve, tool (never plan: no recursion)
      tools: [lookup_order]                  # tools the plan may call (each with its schema)
      max_steps: 6

A plan that does not fit the schema is re-asked once with the validation error, then refused (the run ends
`refused`); so is a plan whose steps form a cycle or reference steps it does not have. The plan is stored with
the run, so a resumed run does not plan again; its steps are stored as `solve/<id>`.
"""

from __future__ import annotations

import json
from typing import Any

from flywheel.errors import UserError
from flywheel.types import ChatRequest
from flywheel.workflows.dag import Workflow
from flywheel.workflows.steps import StepRefused, StepStopped, as_text

PLAN_KINDS = ("prompt", "retrieve", "tool")
STEP_ID = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"


def plan_schema(allowed: list[str], tools: list[str], max_steps: int) -> dict[str, Any]:
    step_props: dict[str, Any] = {
        "id": {"type": "string", "pattern": STEP_ID},
        "kind": {"enum": list(allowed)},
        "needs": {"type": "array", "items": {"type": "string"}},
    }
    if "prompt" in allowed:
        step_props["prompt"] = {"type": "string", "minLength": 1}
    if "retrieve" in allowed:
        step_props["retrieve"] = {"type": "string", "minLength": 1}
        step_props["k"] = {"type": "integer", "minimum": 1, "maximum": 50}
    if "tool" in allowed:
        step_props["tool"] = {"enum": list(tools)} if tools else {"type": "string"}
        step_props["args"] = {"type": "object"}
    return {
        "type": "object",
        "required": ["steps"],
        "additionalProperties": False,
        "properties": {
            "steps": {"type": "array", "minItems": 1, "maxItems": max_steps,
                      "items": {"type": "object", "required": ["id", "kind"], "additionalProperties": False,
                                "properties": step_props}},
            "output": {"type": "string"},
        },
    }


def _instructions(allowed: list[str], tools: dict[str, Any], max_steps: int) -> str:
    lines = [f"Plan the work as at most {max_steps} steps; they run in order of their references.",
             "Step kinds you may use:"]
    what = {"prompt": '{"id", "kind": "prompt", "prompt": text sent to a language model}',
            "retrieve": '{"id", "kind": "retrieve", "retrieve": search query, "k": number of passages}',
            "tool": '{"id", "kind": "tool", "tool": name, "args": {…arguments matching the tool\'s schema}}'}
    lines += [f"- {what[k]}" for k in allowed if k in what]
    if tools:
        lines.append("Tools:")
        lines += [f"- {name}: {t.description or ''} arguments schema {json.dumps(t.schema, ensure_ascii=False)}"
                  for name, t in tools.items()]
    lines.append("Refer to the workflow's inputs as {{inputs.NAME}} and to an earlier step's output as "
                 "{{steps.ID.output}}. `output` names the reference that is the final answer "
                 "(default: the last step).")
    return "\n".join(lines)


def run_plan(runner: Any, walk: Any, s: Any, ctx: Any, p: dict[str, Any]) -> Any:
    from flywheel.gateway.structured import StructuredOutputError, chat_structured
    from flywheel.workflows.runner import StepOutcome, _Walk
    from flywheel.workflows.steps import Step

    allowed = [k for k in (p.get("allowed") or PLAN_KINDS) if k in PLAN_KINDS]
    tool_names = [str(t) for t in (p.get("tools") or [])]
    if not tool_names:
        allowed = [k for k in allowed if k != "tool"]  # a plan calls only the tools it was given
    tools = {name: ctx.tool(name) for name in tool_names}
    max_steps = int(p.get("max_steps", 8))
    schema = plan_schema(allowed, tool_names, max_steps)
    model = p.get("model") or ctx.model
    request = ChatRequest.of(as_text(p["plan"]), system=_instructions(allowed, tools, max_steps), model=model,
                             metadata={"workflow_step": s.id})

    def make_plan() -> Any:
        try:
            return chat_structured(ctx.gateway, request, schema, max_reasks=1, name="plan").value
        except StructuredOutputError as exc:
            return {"refused": f"the plan did not fit its schema after one re-ask: {exc.errors[-1]}"}

    plan, _ = runner.memo(f"{walk.prefix}{s.id}#plan", "plan", [request.model_dump(), schema], make_plan)
    if "refused" in plan:
        raise StepRefused(s.id, plan["refused"])
    steps = []
    for i, entry in enumerate(plan["steps"]):
        params = {k: v for k, v in entry.items() if k not in ("id", "kind", "needs")}
        steps.append(Step(id=entry["id"], kind=entry["kind"], params=params, needs=list(entry.get("needs") or []),
                          where=f"plan of step '{s.id}', step {i + 1}"))
    try:
        sub = Workflow(steps=steps, name=f"{walk.wf.name}/{s.id}", inputs=list(walk.inputs), model=model,
                       tools=tools, output=plan.get("output"))
    except UserError as exc:
        raise StepRefused(s.id, f"the plan is not a valid workflow: {exc.message}") from None
    inner = _Walk(sub, walk.inputs, prefix=f"{walk.prefix}{s.id}/")
    from flywheel.workflows.tools import ToolArgumentsError

    try:
        status, reason, by = runner.walk(inner)
    except ToolArgumentsError as exc:
        raise StepRefused(s.id, f"the plan called a tool with bad arguments: {exc.problem}") from None
    for sid, outcome in inner.states.items():
        walk.states[f"{s.id}/{sid}"] = StepOutcome(f"{s.id}/{sid}", outcome.kind, outcome.status,
                                                   outcome.latency_ms, outcome.cost_usd)
    if status == "stopped":
        raise StepStopped(f"{s.id}/{by}", reason or "")
    if status == "refused":
        raise StepRefused(f"{s.id}/{by}", reason or "")
    return runner._output(inner)

"""`flywheel eval` against a workflow or one of its steps:

    target: workflow:workflows/qa.yaml          # the whole workflow; case vars are its inputs
    target: workflow:workflows/qa.yaml#draft    # only step `draft`; case vars are the inputs and the outputs
                                                # of the steps it reads: {question: …, steps: {docs: […]}}
                                                # (or those step ids as plain vars)

So each step of a chain is tested on its own. The output text is the workflow's (or step's) output as text; a
step's cost and trace are its own.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flywheel.errors import ConfigError
from flywheel.evals.targets import Output, Runner
from flywheel.tracing import tracer
from flywheel.workflows.dag import Workflow
from flywheel.workflows.kinds import Meter, WorkflowServices
from flywheel.workflows.runner import WorkflowRunner, _Walk
from flywheel.workflows.steps import as_text
from flywheel.workflows.yaml_form import load_workflow


def parse_target(name: str, root: Path, where: str | None = None) -> tuple[Workflow, str | None]:
    """(workflow, step id or None) of `path.yaml[#step]`, checked now (file:line errors come from the file)."""
    ref, _, step_id = name.partition("#")
    path = Path(ref)
    if not path.is_absolute():
        path = root / path
    if not path.is_file():
        raise ConfigError(f"workflow file {path} does not exist", where=where,
                          hint="write `target: workflow:PATH.yaml` or `workflow:PATH.yaml#STEP`")
    wf = load_workflow(path, root=root)
    if step_id and step_id not in wf.by_id:
        from flywheel.registry import unknown_name

        raise unknown_name("step", step_id, wf.by_id, where=where, used_by=f"target {name}", error=ConfigError)
    return wf, step_id or None


def check_case(wf: Workflow, step_id: str | None, vars: dict[str, Any], case_id: str, where: str) -> None:
    """When the suite loads, before anything runs: the case gives the workflow's inputs, or (a step target) the
    outputs of the steps that step reads."""
    if step_id is None:
        missing = [name for name in wf.inputs or [] if name not in vars]
        if missing:
            raise ConfigError(f"case `{case_id}` lacks input(s) {', '.join(missing)} of workflow '{wf.name}'",
                              where=where, hint="add them to the case's `vars:` (or `defaults.vars:`)")
        return
    _step_outputs(wf, step_id, vars, where=where, case_id=case_id)


def _step_outputs(wf: Workflow, step_id: str, vars: dict[str, Any], *, where: str | None = None,
                  case_id: str | None = None) -> dict[str, Any]:
    """The outputs of the steps `step_id` reads, from the case's vars (`steps: {ID: …}` or plain `ID: …`)."""
    s = wf.by_id[step_id]
    given = dict(vars.get("steps") or {})
    given.update({k: v for k, v in vars.items() if k in wf.by_id and k != step_id})
    reads = sorted(d for d in wf.edges[s.id] if s.id not in wf.controlled(wf.by_id[d]))
    missing = [d for d in reads if d not in given]
    if missing:
        case = f"case `{case_id}`: " if case_id else ""
        raise ConfigError(f"{case}step '{step_id}' reads the output of {', '.join(missing)}, which the case does "
                          "not give", where=where,
                          hint="add them to the case's vars: steps: {" + ", ".join(f"{m}: …" for m in missing) + "}")
    return given


def run_step(wf: Workflow, step_id: str, vars: dict[str, Any], services: WorkflowServices
             ) -> tuple[Any, Meter, str]:
    """(output, what its model calls cost, trace id) of one step, given the workflow inputs and the outputs of the steps it reads."""
    s = wf.by_id[step_id]
    given = _step_outputs(wf, step_id, vars)
    inputs = {k: v for k, v in vars.items() if k != "steps" and k not in wf.by_id}
    runner = WorkflowRunner(wf, services)
    runner.meter = Meter()
    walk = _Walk(wf, inputs)
    walk.outputs.update(given)
    with tracer.span(f"workflow {wf.name} step {step_id}", kind="eval", inputs=vars,
                     **{"flywheel.workflow": wf.name, "flywheel.step.id": step_id}) as sp:
        output = runner._execute(walk, s)
        sp.set(outputs=as_text(output))
    return output, runner.meter, sp.trace_id


class WorkflowEvalRunner(Runner):
    """The eval adapter for `workflow:` targets."""

    def __init__(self, target: Any, runtime: Any, workers: int):
        super().__init__(target, workers)
        self.workflow, self.step_id = parse_target(target.name, runtime.project.root, target.where)
        self.runtime = runtime

    def versions(self) -> dict[str, str]:
        return {f"workflow:{self.workflow.name}": self.workflow.version}

    def _call(self, vars: dict[str, Any]) -> Output:
        services = WorkflowServices.of_runtime(self.runtime, tenant=vars.get("tenant"))
        services.store = None  # eval repeats run again: nothing is reused from earlier runs
        start = time.perf_counter()
        if self.step_id is None:
            result = WorkflowRunner(self.workflow, services).run({k: v for k, v in vars.items() if k != "tenant"})
            if result.status != "done":
                text, refusal = f"[{result.status}] {result.reason}", result.status
            else:
                text, refusal = as_text(result.output), None
            return Output(text, (time.perf_counter() - start) * 1000, result.cost_usd, result.trace_id,
                          sorted(set(result.models.values())), [self.workflow.version],
                          _sources(result.outputs), usage=result.usage.model_dump(), refusal=refusal)
        output, meter, trace_id = run_step(self.workflow, self.step_id, vars, services)
        return Output(as_text(output), (time.perf_counter() - start) * 1000, meter.cost_usd, trace_id,
                      sorted(set(meter.models.values())), [self.workflow.version], usage=meter.usage.model_dump())

    async def call(self, vars: dict[str, Any]) -> Output:
        return await self.in_thread(self._call, vars)  # type: ignore[no-any-return]


def _sources(outputs: dict[str, Any]) -> list[str]:
    """Passages retrieve steps found, in order (what grounding checks compare against)."""
    texts: list[str] = []
    for value in outputs.values():
        if isinstance(value, list) and value and all(isinstance(v, dict) and "chunk_id" in v for v in value):
            texts += [str(v.get("text", "")) for v in value]
    return texts

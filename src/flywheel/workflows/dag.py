"""A workflow: steps and their edges, checked before anything runs.

    wf = Workflow(steps=[retrieve, answer], name="qa", inputs=["question"])
    wf.order   # step ids in the order they run (declaration order where the edges allow)

Edges come from references (`{{steps.x.output}}`), `needs:`, a python step's parameter names, and the
controllers: a branch runs before the steps of its arms, a check before its `goto` step. What is checked, each
a UserError with the step's file:line and the valid choices: duplicate ids, unknown step kinds, references to
steps or inputs that do not exist, a retry target that does not feed the check, and cycles (named in full).
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.errors import UserError
from flywheel.registry import unknown_name
from flywheel.types import content_hash
from flywheel.workflows.steps import (
    KINDS,
    ON_FAIL,
    Step,
    check_references,
    check_settings,
    code_identity,
    python_refs,
)


@dataclass
class Workflow:
    steps: list[Step]
    name: str = "workflow"
    inputs: list[str] | None = None  # None: whatever the caller passes (python workflows)
    output: Any = None  # a reference, e.g. "{{steps.answer.output}}"; default: the last step that ran, not a check
    model: str = "default"  # alias for prompt / map / reduce / plan steps that name none
    tools: dict[str, Any] = field(default_factory=dict)  # name → Tool (steps_kinds.Tool) for tool steps
    where: str | None = None  # the workflow file
    root: Path | None = None  # where prompt files and python modules of a workflow file are found
    model_where: str | None = None  # file:line of the workflow's `model:`
    output_where: str | None = None  # file:line of the workflow's `output:`
    order: list[str] = field(init=False, default_factory=list)
    edges: dict[str, set[str]] = field(init=False, default_factory=dict)  # step → steps it waits for

    def __post_init__(self) -> None:
        self.by_id = {s.id: s for s in self.steps}
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        seen: dict[str, Step] = {}
        for s in self.steps:
            if not s.id or not isinstance(s.id, str):
                raise UserError("a step needs an `id`", where=s.where, hint="add `id: NAME` to the step")
            if s.id in seen:
                raise UserError(f"two steps have the id '{s.id}'", where=s.where,
                                hint=f"rename one of them (the first is at {seen[s.id].where or 'an earlier step'})")
            seen[s.id] = s
            if s.kind not in KINDS:
                raise unknown_name("step kind", s.kind, KINDS, where=s.where, used_by=f"step '{s.id}'")
            check_settings(s)
        self.by_id = seen
        ids = set(seen)
        for s in self.steps:
            check_references(s, self.inputs, ids)
        self.edges = {s.id: self._deps(s, ids) for s in self.steps}
        for s in self.steps:
            self._check_controls(s, ids)
        self.order = self._topological()
        self._check_retry_targets()
        self._check_output(ids)

    def _check_output(self, ids: set[str]) -> None:
        """`output:` names steps and inputs of this workflow (else the run would end with an empty output)."""
        if self.output is None:
            return
        probe = Step(id="output", kind="output", params={"output": self.output}, where=self.output_where or self.where)
        check_references(probe, self.inputs, ids, owner="`output:`")
        for ref in sorted(probe.step_refs()):
            if ref not in ids:
                raise unknown_name("step", ref, ids, where=probe.where, used_by="`output:`", verb="references",
                                   hint="name a step of this workflow, e.g. {{steps.ID.output}}")
        declared = self.inputs
        missing = sorted(probe.input_refs() - set(declared)) if declared is not None else []
        if declared is not None and missing:
            raise unknown_name("input", missing[0], declared, where=probe.where, used_by="`output:`",
                               verb="references", hint="declare it under `inputs:` of the workflow")

    def _deps(self, s: Step, ids: set[str]) -> set[str]:
        deps = set(s.step_refs()) | python_refs(s, ids)
        for ref in sorted(deps):
            if ref not in ids:
                raise unknown_name("step", ref, ids - {s.id}, where=s.where, used_by=f"step '{s.id}'",
                                   verb="references", hint="reference an earlier step as {{steps.ID.output}}")
            if ref == s.id:
                raise UserError(f"step '{s.id}' references its own output", where=s.where,
                                hint="a step can only use the outputs of other steps")
        if self.inputs is not None:
            self._check_parameters(s, ids)
            for name in sorted(s.input_refs()):
                if name not in self.inputs:
                    raise unknown_name("input", name, self.inputs, where=s.where, used_by=f"step '{s.id}'",
                                       verb="references", hint="declare it under `inputs:` of the workflow")
        return deps

    def _check_parameters(self, s: Step, ids: set[str]) -> None:
        """A python step's parameters name an input or a step (or have a default)."""
        if s.fn is None:
            return
        params = list(inspect.signature(s.fn).parameters.values())
        if params and params[0].name in ("ctx", "context"):
            params = params[1:]
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.default is not p.empty:
                continue
            if p.name not in ids and p.name not in (self.inputs or []):
                raise unknown_name("input or step", p.name, [*(self.inputs or []), *(ids - {s.id})], where=s.where,
                                   used_by=f"step '{s.id}'", verb="takes a parameter named",
                                   hint="name a workflow input (under `inputs:`) or an earlier step, or give the "
                                        "parameter a default")

    def _check_controls(self, s: Step, ids: set[str]) -> None:
        """Arms of a branch and the goto of a check are steps of this workflow; they wait for their controller."""
        for target in self.controlled(s):
            if target not in ids:
                raise unknown_name("step", target, ids - {s.id}, where=s.where, used_by=f"step '{s.id}'",
                                   verb="branches to")
            self.edges[target].add(s.id)
        if s.kind == "check":
            on_fail = s.params.get("on_fail", "stop")
            if on_fail not in ON_FAIL:
                raise unknown_name("on_fail action", str(on_fail), ON_FAIL, where=s.where, used_by=f"check '{s.id}'")

    @staticmethod
    def controlled(s: Step) -> list[str]:
        """Steps that run only when `s` sends the run their way."""
        if s.kind == "branch":
            return [*s.params.get("then", []), *s.params.get("else", [])]
        if s.kind == "check" and s.params.get("on_fail") == "branch":
            return [str(s.params.get("goto", ""))]
        return []

    def _topological(self) -> list[str]:
        position = {s.id: i for i, s in enumerate(self.steps)}
        state: dict[str, int] = {}  # 1 visiting, 2 done
        order: list[str] = []

        def visit(node: str, path: list[str]) -> None:
            if state.get(node) == 2:
                return
            if state.get(node) == 1:
                cycle = [*path[path.index(node):], node]
                raise UserError(f"the steps form a cycle: {' → '.join(cycle)}", where=self.by_id[node].where,
                                hint="a step can only use outputs of steps that do not depend on it; "
                                     "remove one of these references")
            state[node] = 1
            for dep in sorted(self.edges[node], key=lambda d: position[d]):
                visit(dep, [*path, node])
            state[node] = 2
            order.append(node)

        for s in self.steps:
            visit(s.id, [])
        return order

    def _check_retry_targets(self) -> None:
        for s in self.steps:
            if s.kind != "check" or s.params.get("on_fail") != "retry":
                continue
            target = self.retry_target(s)
            if target not in self.ancestors(s.id):
                raise UserError(f"check '{s.id}' retries step '{target}', which does not feed it",
                                where=s.where, hint=f"retry one of the steps it reads: "
                                f"{', '.join(sorted(self.ancestors(s.id))) or '(none)'}")

    def retry_target(self, s: Step) -> str:
        explicit = s.params.get("retry")
        if explicit:
            return str(explicit)
        deps = sorted(self.edges[s.id], key=self.order.index)
        if not deps:
            raise UserError(f"check '{s.id}' has on_fail: retry but reads no step", where=s.where,
                            hint="name the step to run again with `retry: STEP_ID`")
        return deps[-1]

    def ancestors(self, node: str) -> set[str]:
        out: set[str] = set()
        todo = list(self.edges.get(node, ()))
        while todo:
            n = todo.pop()
            if n not in out:
                out.add(n)
                todo.extend(self.edges.get(n, ()))
        return out

    def descendants(self, node: str) -> set[str]:
        return {n for n in self.by_id if node in self.ancestors(n)}

    def run(self, inputs: dict[str, Any] | None = None, *, services: Any = None, run_id: str | None = None,
            resume: bool = False, tenant: str | None = None) -> Any:
        """Run it (a `runner.RunResult`); `services` is a `WorkflowServices` (gateway, retriever, store …)."""
        from flywheel.workflows.runner import WorkflowRunner

        return WorkflowRunner(self, services).run(inputs, run_id=run_id, resume=resume, tenant=tenant)

    # ------------------------------------------------------------------ identity
    @property
    def version(self) -> str:
        """Changes whenever what the workflow does changes (steps, their settings, functions' names and source)."""
        body = [[s.id, s.kind, s.params, s.needs, code_identity(s.fn) if s.fn else None] for s in self.steps]
        return content_hash(json.dumps([self.name, body, self.output, self.model], sort_keys=True,
                                       default=lambda v: code_identity(v) if callable(v) else str(v)))

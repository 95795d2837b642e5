"""Run a workflow: steps in DAG order, each one span, each finished step stored so a run resumes where it stopped.

    result = WorkflowRunner(wf, WorkflowServices(gateway=gw, store=store)).run({"question": "…"})
    result.status, result.output, result.run_id, result.cost_usd
    WorkflowRunner(wf, services).run(run_id=result.run_id, resume=True)   # finished steps are not run again

A step's output is stored under (run id, step id, hash of its resolved inputs). Started again with the same run
id, a step whose inputs hash the same returns the stored output (its span says `flywheel.step.reused`); one
whose inputs changed (an earlier step changed, a retry's feedback) runs. Map items and plans are stored the
same way, so a long map-reduce resumes item by item.

Control flow: a branch activates the steps of one arm (the other arm is skipped, and so is every step whose
step inputs were all skipped); a failed check stops the run (`on_fail: stop`), activates its `goto` step
(`branch`), or runs the step it names again with the check's reason as feedback (`retry`, at most
`max_retries` times, then the run stops).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from flywheel.errors import UserError
from flywheel.tracing import tracer
from flywheel.types import SpanKind, Usage, content_hash
from flywheel.workflows import kinds
from flywheel.workflows.dag import Workflow
from flywheel.workflows.kinds import Meter, StepContext, WorkflowServices
from flywheel.workflows.records import RunRecords, not_resumable
from flywheel.workflows.steps import (
    MAX_RETRIES,
    Step,
    StepRefused,
    StepStopped,
    as_text,
    code_identity,
    python_args,
    resolve,
)

log = logging.getLogger(__name__)
SPAN_KINDS: dict[str, SpanKind] = {"retrieve": "retrieval", "tool": "tool", "check": "guard"}
MODEL_KINDS = ("prompt", "map", "reduce", "plan", "tool")  # kinds that call a model (tool: with `prompt:`)
CONTROL_KEYS = ("then", "else", "goto", "retry", "on_fail", "max_retries", "check", "fn")


@dataclass
class StepOutcome:
    id: str
    kind: str
    status: str  # done | reused | skipped | stopped | refused (the step that ended the run)
    latency_ms: float = 0.0
    cost_usd: float = 0.0


@dataclass
class RunResult:
    run_id: str
    workflow: str
    status: str  # done | stopped | refused
    output: Any = None
    outputs: dict[str, Any] = field(default_factory=dict)
    steps: list[StepOutcome] = field(default_factory=list)
    reason: str | None = None
    stopped_by: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0  # model calls made by this invocation (reused steps cost nothing again)
    models: dict[str, str] = field(default_factory=dict)
    trace_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "workflow": self.workflow, "status": self.status, "output": self.output,
                "reason": self.reason, "stopped_by": self.stopped_by, "trace_id": self.trace_id,
                "cost_usd": self.cost_usd, "usage": self.usage.model_dump(), "models": self.models,
                "steps": [vars(s) for s in self.steps], "outputs": self.outputs}


def payload_hash(payload: Any) -> str:
    return content_hash(json.dumps(payload, sort_keys=True, default=code_identity, ensure_ascii=False), n=32)


class _Walk:
    """The state of one pass over a workflow's steps (the run's, or a plan's nested one)."""

    def __init__(self, wf: Workflow, inputs: dict[str, Any], prefix: str = ""):
        self.wf, self.inputs, self.prefix = wf, inputs, prefix
        self.outputs: dict[str, Any] = {}
        self.states: dict[str, StepOutcome] = {}
        self.activated: set[str] = set()
        self.controlled = {t for s in wf.steps for t in wf.controlled(s)}
        self.feedback: dict[str, tuple[str, Any, int]] = {}  # step → (feedback, rejected output, retry n)
        self.retries: dict[str, int] = {}


class WorkflowRunner:
    def __init__(self, workflow: Workflow, services: WorkflowServices | None = None):
        self.workflow = workflow
        self.services = replace(services) if services is not None else WorkflowServices()
        if self.services.root is None:
            self.services.root = workflow.root
        self.records = RunRecords(self.services.store) if self.services.store is not None else None
        self._done: dict[tuple[str, str], Any] = {}
        self._computed: set[tuple[str, str]] = set()  # computed by this invocation
        self._checks: dict[str, Any] = {}
        self.meter = Meter()
        self.run_id = ""
        self.step_id: str | None = None  # the step running now: the one that failed when a step raises

    # ------------------------------------------------------------------ the run
    def run(self, inputs: dict[str, Any] | None = None, *, run_id: str | None = None, resume: bool = False,
            tenant: str | None = None) -> RunResult:
        wf = self.workflow
        given = dict(inputs or {})
        if resume:
            if not run_id:
                raise UserError("resuming needs the run id", hint="pass --resume RUN_ID")
            if self.records is None:
                raise UserError("resuming needs the store", hint="run the workflow with a store")
            row = self.records.require(run_id)
            if row["workflow"] != wf.name:
                raise UserError(f"run '{run_id}' is a run of workflow '{row['workflow']}', not '{wf.name}'",
                                hint=f"resume it with the file of workflow '{row['workflow']}'")
            finished = not_resumable(row)
            if finished is not None:
                raise finished
            given = {**(row.get("inputs") or {}), **given}
        self._check_inputs(given)
        self._check_models()
        self.run_id = run_id or uuid.uuid4().hex
        self.meter = Meter()
        self._computed = set()
        if tenant:
            self.services.tenant = tenant
        if self.records is not None:
            self.records.start(self.run_id, wf.name, wf.version, wf.where, given, self.services.tenant)
            self._done = self.records.finished_steps(self.run_id)  # after the start: the run is ours now
        attrs = {"flywheel.app": wf.name, "flywheel.workflow": wf.name, "flywheel.workflow.run_id": self.run_id,
                 "flywheel.workflow.version": wf.version, "flywheel.tenant": self.services.tenant}
        with tracer.span(f"workflow {wf.name}", kind="app", inputs=given, **attrs) as root:
            walk = _Walk(wf, given)
            try:
                if self.records is not None:
                    self.records.set_trace(self.run_id, root.trace_id)
                status, reason, stopped_by = self.walk(walk)
            except BaseException as exc:
                if self.records is not None:
                    at = f"step '{self.step_id}': " if self.step_id else ""
                    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                    try:
                        self.records.finish(self.run_id, status, None,
                                            f"{at}{type(exc).__name__}: {exc}".rstrip(": "), root.trace_id,
                                            self.meter.cost_usd)
                    except Exception:  # the store failing must not hide why the run ended (Ctrl-C, the step's error)
                        log.exception("workflow run %s: could not record that it %s", self.run_id, status)
                raise
            output = self._output(walk) if status == "done" else None
            root.set(outputs=as_text(output) if status == "done" else reason,
                     **{"flywheel.workflow.status": status, "flywheel.cost_usd": self.meter.cost_usd})
            if status != "done":  # not a success: the trace's status is `error`, and says why
                root.set(**{"flywheel.workflow.reason": reason, "flywheel.workflow.stopped_by": stopped_by})
                root.record_error(f"workflow {status} at step '{stopped_by}': {reason}")
        if self.records is not None:
            self.records.finish(self.run_id, status, output, reason, root.trace_id, self.meter.cost_usd)
        return RunResult(self.run_id, wf.name, status, output, walk.outputs, list(walk.states.values()), reason,
                         stopped_by, self.meter.usage, self.meter.cost_usd, dict(self.meter.models), root.trace_id)

    def _check_inputs(self, given: dict[str, Any]) -> None:
        declared = self.workflow.inputs
        if declared is None:
            return
        missing = [name for name in declared if name not in given]
        if missing:
            from flywheel.registry import did_you_mean

            typos = [f"{extra} (did you mean {close[0]}?)" for extra in given if extra not in declared
                     for close in [did_you_mean(extra, missing)] if close]
            given_too = f"; given instead: {', '.join(typos)}" if typos else ""
            raise UserError(f"workflow '{self.workflow.name}' needs input(s): {', '.join(missing)}{given_too}",
                            where=self.workflow.where,
                            hint=" ".join(f"--input {n}=…" for n in missing) + f" (inputs: {', '.join(declared)})")

    def _check_models(self) -> None:
        """Every alias a step will call exists, before anything runs (a typo is the step's file:line, not a failure
        halfway through a paid run)."""
        gateway = self.services.gateway
        if gateway is None or not callable(getattr(gateway, "resolve", None)):
            return
        wf = self.workflow
        for s in wf.steps:
            if s.kind not in MODEL_KINDS or (s.kind == "tool" and "prompt" not in s.params):
                continue
            own = s.params.get("model")
            try:
                gateway.resolve(own or wf.model)
            except UserError as exc:
                raise _located(exc, s.where if own else (wf.model_where or wf.where)) from None

    def _output(self, walk: _Walk) -> Any:
        if walk.wf.output is not None:
            return resolve(walk.wf.output, walk.inputs, walk.outputs, where=walk.wf.where)
        ran = [sid for sid in walk.wf.order if sid in walk.outputs and walk.states[sid].status != "skipped"]
        # a check's verdict or a branch's arm is not an answer: the last step that made one is the output
        made = [sid for sid in ran if walk.wf.by_id[sid].kind not in ("check", "branch")] or ran
        return walk.outputs[made[-1]] if made else None

    # ------------------------------------------------------------------ the walk
    def walk(self, walk: _Walk) -> tuple[str, str | None, str | None]:
        """(status, reason, step that stopped the run) after running `walk.wf` in order."""
        wf, order = walk.wf, walk.wf.order
        i = 0
        while i < len(order):
            sid = order[i]
            s = wf.by_id[sid]
            i += 1
            if self._skipped(walk, s):
                walk.states[sid] = StepOutcome(sid, s.kind, "skipped")
                continue
            self.step_id = walk.prefix + sid
            try:
                output = self._execute(walk, s)
            except UserError as exc:  # a mistake found while the step ran (tool arguments, a map over a text)
                raise _located(exc, s.where) from None
            except StepStopped as stop:
                walk.states[sid] = StepOutcome(sid, s.kind, "stopped")
                return "stopped", stop.reason, stop.step_id
            except StepRefused as refused:
                walk.states[sid] = StepOutcome(sid, s.kind, "refused")
                return "refused", refused.reason, refused.step_id
            walk.outputs[sid] = output
            if s.kind == "branch":
                walk.activated.update(s.params.get("then" if output == "then" else "else", []))
            elif s.kind == "check" and not output["passed"]:
                jump = self._failed_check(walk, s, output)
                if isinstance(jump, tuple):
                    return jump
                if jump is not None:
                    i = order.index(jump)
        return "done", None, None

    def _skipped(self, walk: _Walk, s: Step) -> bool:
        if s.id in walk.controlled and s.id not in walk.activated:
            return True
        deps = walk.wf.edges[s.id] - {c for c in walk.wf.edges[s.id] if s.id in walk.wf.controlled(walk.wf.by_id[c])}
        return bool(deps) and all(walk.states.get(d) is not None and walk.states[d].status == "skipped" for d in deps)

    def _failed_check(self, walk: _Walk, s: Step, verdict: dict[str, Any]) -> Any:
        on_fail = s.params.get("on_fail", "stop")
        reason = verdict.get("reason") or "the check failed"
        if on_fail == "branch":
            walk.activated.add(str(s.params["goto"]))
            return None
        if on_fail == "retry":
            target = walk.wf.retry_target(s)
            count = walk.retries.get(s.id, 0) + 1
            walk.retries[s.id] = count
            limit = min(int(s.params.get("max_retries", 1)), MAX_RETRIES)
            if count <= limit:
                note = f"Your previous answer did not pass the check '{s.id}': {reason}\nAnswer again, fixing that."
                walk.feedback[target] = (note, walk.outputs.get(target), count)
                return target
            tries = f"{limit} retr{'y' if limit == 1 else 'ies'}"
            return "stopped", f"check '{s.id}' still failed after {tries}: {reason}", s.id
        return "stopped", f"check '{s.id}' failed: {reason}", s.id

    # ------------------------------------------------------------------ one step
    def _execute(self, walk: _Walk, s: Step) -> Any:
        feedback, previous, attempt = walk.feedback.get(s.id, (None, None, 0))
        ctx = StepContext(self.services, walk.wf.model, walk.wf.tools, self.meter, step_id=s.id, where=s.where,
                          app=self.workflow.name,
                          inputs=walk.inputs, feedback=feedback, previous=previous,
                          memo=lambda key, payload, compute: self.memo(walk.prefix + key, s.kind, payload, compute)[0])
        if s.kind == "python":
            wants_ctx, args = python_args(s, walk.inputs, walk.outputs)
            payload: dict[str, Any] = {"kind": "python", "fn": s.fn, "args": args}
        else:
            args = {k: v for k, v in s.params.items() if k not in CONTROL_KEYS}
            params = resolve(args, walk.inputs, walk.outputs, where=s.where)
            payload = {"kind": s.kind, "params": params}
            if s.kind == "check":
                payload["check"] = s.params.get("check") or s.params.get("fn")
            version = kinds.prompt_version(ctx, params.get("prompt"))
            if version is not None:  # an edited prompt file asks again
                payload["prompt_version"] = version
        if feedback:
            payload["feedback"], payload["retry"] = feedback, attempt  # each retry asks again
        with tracer.span(f"step {s.id}", kind=SPAN_KINDS.get(s.kind, "other"), inputs=_preview(payload),
                         **{"flywheel.step.id": s.id, "flywheel.step.kind": s.kind,
                            "flywheel.workflow.run_id": self.run_id, **ctx.span_attrs()}) as sp:
            before = self.meter.cost_usd
            start = time.perf_counter()
            if s.kind == "python":
                assert s.fn is not None
                call_args = args

                def compute() -> Any:
                    return s.fn(ctx, **call_args) if wants_ctx else s.fn(**call_args)  # type: ignore[misc]
            else:
                def compute() -> Any:
                    return self._kind(walk, s, ctx, params)
            output, reused = self.memo(walk.prefix + s.id, s.kind, payload, compute)
            latency = (time.perf_counter() - start) * 1000
            sp.set(outputs=_preview(output), **{"flywheel.step.reused": reused})
        walk.states[s.id] = StepOutcome(s.id, s.kind, "reused" if reused else "done", round(latency, 3),
                                        self.meter.cost_usd - before)
        return output

    def memo(self, key: str, kind: str, payload: Any, compute: Any) -> tuple[Any, bool]:
        """(output, reused): the stored output of `key` for this payload, else computed now and stored."""
        h = payload_hash(payload)
        if (key, h) in self._done:  # reused: stored by an earlier invocation, not by a retry of this one
            return self._done[(key, h)], (key, h) not in self._computed
        before, start = self.meter.cost_usd, time.perf_counter()
        output = compute()
        self._done[(key, h)] = output
        self._computed.add((key, h))
        if self.records is not None:
            self.records.save_step(self.run_id, key, h, kind, kinds.jsonable(output), self.meter.cost_usd - before,
                                   (time.perf_counter() - start) * 1000)
        return output, False

    def _kind(self, walk: _Walk, s: Step, ctx: StepContext, p: dict[str, Any]) -> Any:
        def fill(value: Any, extra: dict[str, Any]) -> Any:
            return resolve(value, walk.inputs, walk.outputs, extra, where=s.where)

        if s.kind == "prompt":
            return kinds.run_prompt(ctx, p)
        if s.kind == "retrieve":
            return kinds.run_retrieve(ctx, p)
        if s.kind == "tool":
            return kinds.run_tool(ctx, p)
        if s.kind == "map":
            return kinds.run_map(ctx, p, fill)
        if s.kind == "reduce":
            return kinds.run_reduce(ctx, p, fill)
        if s.kind == "check":
            return kinds.run_check(ctx, p, self._check(s))
        if s.kind == "branch":
            return "then" if kinds.condition(p.get("if")) else "else"
        if s.kind == "plan":
            from flywheel.workflows.plan import run_plan

            return run_plan(self, walk, s, ctx, p)
        raise AssertionError(s.kind)  # the DAG checked the kinds

    def _check(self, s: Step) -> Any:
        if s.id not in self._checks:
            self._checks[s.id] = build_check(s)
        return self._checks[s.id]


def build_check(s: Step) -> Any:
    """The check of a check step: a Python predicate (`fn`) or an entry of the checks registry."""
    if callable(s.params.get("fn")):
        return s.params["fn"]
    from flywheel.checks.base import from_entry

    if "check" not in s.params:
        raise UserError(f"check step '{s.id}' names no check", where=s.where,
                        hint="write `check: {contains: \"[1]\"}` or any check of `flywheel check --help`")
    return from_entry(s.params["check"], where=s.where)


def _located(exc: UserError, where: str | None) -> UserError:
    """`exc` naming `where` (the step's file:line) when it names no place itself."""
    if exc.where is None and where:
        exc.where = where
        exc.args = (exc.render(),)
    return exc


def _preview(value: Any) -> Any:
    text = as_text(value) if not isinstance(value, str) else value
    return text if len(text) <= 4000 else text[:4000] + "…"

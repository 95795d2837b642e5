"""What each step kind does once its references are resolved (the runner resolves them and keeps the order).

    prompt    a template (or prompt file) through the gateway → text (or, with `schema:`, a validated JSON value)
    retrieve  Retriever.search → [{n, text, source, location, chunk_id, score}]
    tool      a registered tool with `args:` (or arguments a model picks in one tool-call round) → its result
    check     a check from the checks registry (or a Python predicate) → {passed, score, reason}
    branch    a condition over earlier outputs → "then" | "else"
    map       one prompt per item of a list → [outputs]
    reduce    a list folded into one output by a prompt, in batches when it is long
    plan      see plan.py
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.errors import UserError
from flywheel.tracing import tracer
from flywheel.types import ChatRequest, ChatResult, Message, Usage
from flywheel.workflows.steps import StepRefused, as_text
from flywheel.workflows.tools import TOOLS, Tool


@dataclass
class WorkflowServices:
    """What steps call: the gateway (prompt, map, reduce, plan, tool-by-model), the retriever, the store (resumable
    runs), the project folder (prompt files), the default tenant."""

    gateway: Any = None
    retriever: Any = None
    store: Any = None
    root: Path | None = None
    tenant: str = "default"

    @classmethod
    def of_runtime(cls, runtime: Any, *, tenant: str | None = None) -> WorkflowServices:
        return cls(gateway=runtime.gateway, retriever=_lazy_retriever(runtime), store=runtime.store,
                   root=runtime.project.root, tenant=tenant or "default")


class _lazy_retriever:  # stands in for the retriever, built on first search
    def __init__(self, runtime: Any):
        self._runtime = runtime

    def search(self, *args: Any, **kwargs: Any) -> Any:
        return self._runtime.retriever.search(*args, **kwargs)


@dataclass
class Meter:
    """Usage, cost and models of every model call of a run (re-asks and tool-choosing calls included)."""

    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    models: dict[str, str] = field(default_factory=dict)

    def charge(self, result: ChatResult) -> None:
        self.usage = self.usage + result.usage
        self.cost_usd += result.cost_usd
        self.models[result.alias] = result.model


class MeteredGateway:
    def __init__(self, gateway: Any, meter: Meter):
        self._gateway, self._meter = gateway, meter

    def chat(self, request: ChatRequest) -> ChatResult:
        result = self._gateway.chat(request)
        self._meter.charge(result)
        return result

    async def achat(self, request: ChatRequest) -> ChatResult:
        result = await self._gateway.achat(request)
        self._meter.charge(result)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gateway, name)


@dataclass
class StepContext:
    """Handed to python steps (`ctx`) and to the kinds: services, the workflow's default model, the tools, and —
    while a check retries this step — the rejected output and the check's feedback."""

    services: WorkflowServices
    model: str
    tools: dict[str, Tool]
    meter: Meter
    step_id: str = ""
    where: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    feedback: str | None = None
    previous: Any = None
    memo: Callable[[str, Any, Callable[[], Any]], Any] | None = None  # (key, payload, compute) → stored output
    app: str = ""  # the workflow's name: on every span of the run (see span_attrs)

    def span_attrs(self) -> dict[str, Any]:
        """The app and tenant, on each span the run records (steps, map items, tools, model calls): a run killed
        mid-way never ends its root span, so `flywheel traces --app NAME` finds it by the spans that did end."""
        return {"flywheel.app": self.app, "flywheel.tenant": self.services.tenant} if self.app else {}

    def request_metadata(self) -> dict[str, Any]:
        """The metadata of the step's model calls (the gateway puts the tenant and app on their spans)."""
        return {"workflow_step": self.step_id, "tenant": self.services.tenant, **({"app": self.app} if self.app else {})}

    @property
    def gateway(self) -> Any:
        if self.services.gateway is None:
            raise UserError(f"step '{self.step_id}' calls a model but the workflow has no gateway", where=self.where,
                            hint="run it through `flywheel workflow run` or pass WorkflowServices(gateway=…)")
        return MeteredGateway(self.services.gateway, self.meter)

    @property
    def retriever(self) -> Any:
        if self.services.retriever is None:
            raise UserError(f"step '{self.step_id}' searches but the workflow has no retriever", where=self.where,
                            hint="run it in a project with ingested documents, or pass WorkflowServices(retriever=…)")
        return self.services.retriever

    def chat(self, user: str, *, system: str | None = None, model: str | None = None) -> str:
        """One model call (with the retry feedback appended while a check retries this step) → its text."""
        return self.chat_messages(messages_of(user, system), model=model).text.strip()

    def chat_messages(self, messages: list[Message], *, model: str | None = None, **fields: Any) -> ChatResult:
        if self.feedback and self.previous is not None:
            messages = [*messages, Message(role="assistant", content=as_text(self.previous)),
                        Message(role="user", content=self.feedback)]
        request = ChatRequest(messages=messages, model=model or self.model,
                              metadata=self.request_metadata(), **fields)
        return self.gateway.chat(request)

    def tool(self, name: str) -> Tool:
        found = self.tools.get(name)
        if found is None:
            found = TOOLS.get(name, where=self.where) if name in TOOLS else None
        if found is None:
            known = sorted({*self.tools, *TOOLS.names()})
            from flywheel.registry import unknown_name

            raise unknown_name("tool", name, known, where=self.where, used_by=f"step '{self.step_id}'",
                               hint="declare it under `tools:` with `function:` and `schema:`")
        found.require_schema(self.where)
        return found


def messages_of(user: str, system: str | None = None) -> list[Message]:
    return ([Message(role="system", content=system)] if system else []) + [Message(role="user", content=user)]


# ------------------------------------------------------------------ prompt, map, reduce

def prompt_file(prompt: Any) -> str | None:
    """The prompt file a `prompt:` setting names (`prompts/x.yaml`), None for inline text."""
    text = prompt.strip() if isinstance(prompt, str) else ""
    return text if text.endswith((".yaml", ".yml")) and "\n" not in text else None


def prompt_version(ctx: StepContext, prompt: Any) -> str | None:
    """The content version of the prompt file `prompt` names (None for inline text): part of what a step's stored
    output is keyed by, so a resumed run asks again after the file was edited."""
    path = prompt_file(prompt)
    if path is None:
        return None
    from flywheel.prompts import PromptRegistry

    return str(PromptRegistry(ctx.services.root).get(path, where=ctx.where).version)


def prompt_messages(ctx: StepContext, prompt: Any, vars: dict[str, Any] | None, model: str) -> list[Message]:
    """Messages of a `prompt:` setting: inline text, {system, template}, or a prompt file with `vars:`."""
    if isinstance(prompt, dict):
        return messages_of(as_text(prompt.get("template", "")), as_text(prompt.get("system")) or None)
    text = as_text(prompt)
    if prompt_file(text) is not None:
        from flywheel.prompts import PromptRegistry, family_of

        loaded = PromptRegistry(ctx.services.root).get(text.strip(), where=ctx.where)
        alias = ctx.services.gateway.resolve(model) if ctx.services.gateway is not None else None
        values: dict[str, Any] = {k: as_text(v) for k, v in (vars or {}).items()}
        rendered = loaded.render(family=family_of(alias), **values)
        return rendered.messages()
    return messages_of(text)


def run_prompt(ctx: StepContext, p: dict[str, Any]) -> Any:
    model = p.get("model") or ctx.model
    messages = prompt_messages(ctx, p["prompt"], p.get("vars"), model)
    schema = p.get("schema")
    if schema is not None:
        from flywheel.gateway.structured import StructuredOutputError, chat_structured

        if ctx.feedback and ctx.previous is not None:
            messages = [*messages, Message(role="assistant", content=as_text(ctx.previous)),
                        Message(role="user", content=ctx.feedback)]
        request = ChatRequest(messages=messages, model=model, metadata=ctx.request_metadata())
        try:
            return chat_structured(ctx.gateway, request, schema, max_reasks=int(p.get("max_reasks", 1))).value
        except StructuredOutputError as exc:
            raise StepRefused(ctx.step_id, f"no output matching the schema: {exc.errors[-1]}") from None
    return ctx.chat_messages(messages, model=model).text.strip()


def run_map(ctx: StepContext, p: dict[str, Any], fill: Callable[[Any, dict[str, Any]], Any]) -> list[Any]:
    """One prompt per item; each item's output is stored on its own, so a resumed run redoes only what is left."""
    items = p["map"]
    if not isinstance(items, list):
        raise UserError(f"map step '{ctx.step_id}' needs a list, got {type(items).__name__}", where=ctx.where,
                        hint="point `map:` at a step whose output is a list, e.g. {{steps.split.output}}")
    out = []
    for i, item in enumerate(items):
        body = fill(p["prompt"], {"item": item})
        key = f"{ctx.step_id}[{i}]"

        def compute(body: Any = body, i: int = i, item: Any = item) -> Any:
            with tracer.span(f"map {ctx.step_id}[{i}]", kind="other", inputs={"item": as_text(item)[:2000]},
                             **ctx.span_attrs()) as sp:
                text = ctx.chat_messages(prompt_messages(ctx, body, fill(p.get("vars"), {"item": item}), ctx.model),
                                         model=p.get("model")).text.strip()
                sp.set(outputs=text)
                return text

        out.append(ctx.memo(key, _item_payload(ctx, body, p, fill(p.get("vars"), {"item": item})), compute)
                   if ctx.memo else compute())
    return out


def _item_payload(ctx: StepContext, body: Any, p: dict[str, Any], vars: Any) -> list[Any]:
    """What one map item's or reduce batch's stored output is keyed by: the prompt filled in, the model, and for
    a prompt file its variables and content version (the file's path alone is the same for every item)."""
    if prompt_file(body) is None and not vars:
        return [body, p.get("model")]
    return [body, p.get("model"), vars, prompt_version(ctx, body)]


def run_reduce(ctx: StepContext, p: dict[str, Any], fill: Callable[[Any, dict[str, Any]], Any]) -> Any:
    """Fold a list into one output: `{{items}}` is a batch of at most `batch` items (numbered); when there are more,
    the batches are reduced first and their outputs reduced again, until one is left."""
    items = p["reduce"]
    if not isinstance(items, list):
        items = [items]
    batch = int(p.get("batch", 8))
    level = 0
    while True:
        groups = [items[i:i + batch] for i in range(0, len(items), batch)] or [[]]
        results = []
        for g, group in enumerate(groups):
            listed = "\n\n".join(f"[{n}] {as_text(x)}" for n, x in enumerate(group, start=1))
            body = fill(p["prompt"], {"items": listed})
            key = f"{ctx.step_id}#{level}.{g}"

            given = {"items": listed}  # a prompt file's {{items}}

            def compute(body: Any = body, given: dict[str, Any] = given) -> Any:
                return ctx.chat_messages(prompt_messages(ctx, body, given, ctx.model),
                                         model=p.get("model")).text.strip()

            payload = _item_payload(ctx, body, p, given if prompt_file(body) else None)
            results.append(ctx.memo(key, payload, compute) if ctx.memo else compute())
        if len(results) == 1:
            return results[0]
        items, level = results, level + 1


# ------------------------------------------------------------------ retrieve, tool

def run_retrieve(ctx: StepContext, p: dict[str, Any]) -> list[dict[str, Any]]:
    hits = ctx.retriever.search(as_text(p["retrieve"]), k=p.get("k"), tenant=p.get("tenant") or ctx.services.tenant,
                                filters=p.get("filters"), mode=p.get("mode", "hybrid"))
    return [{"n": n, "text": h.chunk.text, "source": h.chunk.source, "location": h.chunk.location,
             "chunk_id": h.chunk.id, "score": round(float(h.score), 6)} for n, h in enumerate(hits, start=1)]


def run_tool(ctx: StepContext, p: dict[str, Any]) -> Any:
    """With `args:` the tool is called with them; with `prompt:` a model picks the arguments (one tool-call round:
    the model's call(s) are checked against the schema and run; a call that does not fit is refused). With
    `loop: true` the gateway's bounded tool loop runs instead (`max_steps`, `max_cost_usd`): the model calls tools
    until it answers, and the output is its final text."""
    names = p["tool"] if isinstance(p["tool"], list) else [p["tool"]]
    tools = {n: ctx.tool(str(n)) for n in names}
    if "args" in p:
        one = tools[str(names[0])]
        with tracer.span(f"tool {one.name}", kind="tool", inputs=p["args"], **ctx.span_attrs()) as sp:
            result = one.call(p["args"] or {})
            sp.set(outputs=jsonable(result))
        return jsonable(result)
    model = p.get("model") or ctx.model
    if p.get("loop"):
        return _tool_loop(ctx, p, tools, model)
    choice: Any = {"type": "function", "function": {"name": str(names[0])}} if len(names) == 1 else "required"
    result = ctx.chat_messages(prompt_messages(ctx, p["prompt"], p.get("vars"), model), model=model,
                               tools=[t.spec() for t in tools.values()], tool_choice=choice)
    calls = result.tool_calls or []
    if not calls:
        raise StepRefused(ctx.step_id, f"the model called no tool (it answered: {result.text[:200]!r})")
    outputs = []
    for call in calls:
        fn = call.get("function") or {}
        name = str(fn.get("name") or "")
        if name not in tools:
            raise StepRefused(ctx.step_id, f"the model called tool '{name}', which this step does not offer")
        try:
            args = json.loads(fn.get("arguments") or "{}")
        except ValueError:
            raise StepRefused(ctx.step_id, f"the model's arguments for '{name}' are not JSON") from None
        problem = tools[name].check_args(args)
        if problem is not None:
            raise StepRefused(ctx.step_id, f"the model's arguments for '{name}' do not fit its schema: {problem}")
        with tracer.span(f"tool {name}", kind="tool", inputs=args, **ctx.span_attrs()) as sp:
            value = jsonable(tools[name].fn(**args))
            sp.set(outputs=value)
        outputs.append(value)
    return outputs[0] if len(outputs) == 1 else outputs


def _tool_loop(ctx: StepContext, p: dict[str, Any], tools: dict[str, Tool], model: str) -> str:
    from flywheel.gateway.tool_loop import run_tools

    request = ChatRequest(messages=prompt_messages(ctx, p["prompt"], p.get("vars"), model), model=model,
                          metadata=ctx.request_metadata())
    done = run_tools(ctx.gateway, request, tools, max_steps=int(p.get("max_steps", 4)),
                     max_cost_usd=p.get("max_cost_usd"))
    if done.stop_reason != "final":
        raise StepRefused(ctx.step_id, f"the tool loop stopped at its bound ({done.stop_reason}) without an answer")
    return done.text.strip()


def jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=str))


# ------------------------------------------------------------------ check, branch

def run_check(ctx: StepContext, p: dict[str, Any], check: Any) -> dict[str, Any]:
    """`check` is a built Check (checks registry) or a Python predicate output → bool | (bool, reason)."""
    value = p.get("input")
    text = as_text(value)
    if callable(check) and not hasattr(check, "run"):
        verdict = check(value)
        passed, reason = verdict if isinstance(verdict, tuple) else (bool(verdict), "")
        return {"passed": bool(passed), "score": 1.0 if passed else 0.0, "reason": str(reason)}
    from flywheel.checks.base import CheckContext, Services

    question = next((as_text(ctx.inputs[k]) for k in ("question", "input", "query") if k in ctx.inputs), "")
    gateway = ctx.gateway if ctx.services.gateway is not None else None
    result = check.run(text, CheckContext(input=question, vars=dict(ctx.inputs), services=Services(gateway=gateway)))
    return {"passed": result.passed, "score": result.score, "reason": result.reason}


_OPS = ("equals", "not_equals", "in", "contains", "matches")


def condition(spec: Any) -> bool:
    """A branch condition, its references already resolved: a value (truthy?) or {value, equals | not_equals |
    in | contains | matches}."""
    if not isinstance(spec, dict):
        return _truthy(spec)
    value = spec.get("value")
    if "equals" in spec:
        return _norm(value) == _norm(spec["equals"])
    if "not_equals" in spec:
        return _norm(value) != _norm(spec["not_equals"])
    if "in" in spec:
        return _norm(value) in [_norm(v) for v in spec["in"]]
    if "contains" in spec:
        return str(spec["contains"]).lower() in as_text(value).lower()
    if "matches" in spec:
        return re.search(str(spec["matches"]), as_text(value)) is not None
    return _truthy(value)


def _norm(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "no", "0", "none", "null")
    return bool(value)

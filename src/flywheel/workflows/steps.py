"""Workflow steps: one small thing each, composed into a deterministic DAG (see dag.py, runner.py).

    @step
    def retrieve(ctx, question):                 # parameters name workflow inputs or earlier steps
        return [h.chunk.text for h in ctx.retriever.search(question, k=3)]

    @step
    def answer(ctx, question, retrieve):         # `retrieve` is that step's output
        return ctx.chat(f"{question}\\n\\n{retrieve}")

    Workflow(steps=[retrieve, answer]).run({"question": "…"}, services=WorkflowServices(gateway=gw))

Declarative steps (the YAML form, yaml_form.py) are the same `Step` records with a `kind` and `params`; their
`{{inputs.x}}` / `{{steps.id.output}}` references are resolved here, from the values of earlier steps.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from flywheel.errors import UserError
from flywheel.types import content_hash

KINDS = ("python", "prompt", "retrieve", "tool", "check", "branch", "map", "reduce", "plan")
ON_FAIL = ("retry", "branch", "stop")
MAX_RETRIES = 5
# `{{inputs.question}}`, `{{steps.draft.output}}`, `{{steps.sql.output.rows}}`, `{{item}}` / `{{item.text}}` (map)
REFERENCE = re.compile(r"\{\{\s*((?:inputs|steps)\.[\w.-]+|item(?:\.[\w.-]+)?|items)\s*\}\}")  # \w: 问题 too
LOCAL = ("item", "items")  # names a map / reduce step fills per item or batch


# Settings with a fixed type, checked before anything runs (a reference such as "{{inputs.k}}" is not allowed
# here: these shape the run, they are not data). key → (description, test, hint)
SEARCH_MODES = ("hybrid", "bm25", "dense")


def _whole(lo: int, hi: int | None = None) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= lo and (hi is None or v <= hi)


SETTINGS: dict[str, tuple[str, Callable[[Any], bool], str]] = {
    "k": ("a whole number ≥ 1", _whole(1), "k: 4"),
    "batch": ("a whole number ≥ 2", _whole(2), "batch: 8 (how many items one reduce prompt combines)"),
    "max_reasks": ("a whole number from 0 to 5", _whole(0, 5), "max_reasks: 1"),
    "max_retries": ("a whole number from 0 to 5", _whole(0, MAX_RETRIES), "max_retries: 2"),
    "max_steps": ("a whole number from 1 to 32", _whole(1, 32), "max_steps: 4"),
    "max_cost_usd": ("a number above 0 (USD)", lambda v: isinstance(v, int | float) and not isinstance(v, bool)
                     and v > 0, "max_cost_usd: 0.05"),
    "mode": (f"one of {', '.join(SEARCH_MODES)}", lambda v: v in SEARCH_MODES, "mode: hybrid"),
    "filters": ("a mapping of metadata field → value", lambda v: isinstance(v, dict), "filters: {lang: en}"),
    "loop": ("true or false", lambda v: isinstance(v, bool), "loop: true"),
    "model": ("a model alias name", lambda v: isinstance(v, str) and bool(v.strip()), "model: default"),
    "tenant": ("a tenant name", lambda v: isinstance(v, str) and bool(v.strip()), "tenant: default"),
}


def setting_problem(key: str, value: Any) -> tuple[str, str] | None:
    """(what it must be, an example) when `value` does not fit setting `key`; None when it fits or is free."""
    rule = SETTINGS.get(key)
    if rule is None or value is None or rule[1](value):
        return None
    return rule[0], rule[2]


def check_settings(s: Step, where_of: Callable[[str], str | None] | None = None) -> None:
    """A UserError at the setting's file:line (else the step's) for the first setting of the wrong type."""
    for key, value in s.params.items():
        problem = setting_problem(key, value)
        if problem is not None:
            raise UserError(f"`{key}` of step '{s.id}' must be {problem[0]}, got {value!r}",
                            where=(where_of(key) if where_of else None) or s.where, hint=f"e.g. {problem[1]}")


# Anything written like a reference (`{{input.question}}`, `{{question}}`, `{{steps.a.outptu}}`): one that is not
# a reference would reach the model as literal braces, so it is a mistake at the step's line.
_LOOKS_LIKE_REFERENCE = re.compile(r"\{\{\s*([^\W\d][\w.-]*)\s*\}\}")
_NOT_TEMPLATED = ("check", "schema", "fn")  # a check's own settings and a JSON Schema are not filled in
LOCAL_KINDS = {"item": "map", "items": "reduce"}


def check_references(s: Step, inputs: list[str] | None, step_ids: set[str], owner: str | None = None) -> None:
    """A UserError at the step for text that looks like a reference but is not one, before anything runs."""
    found: set[str] = set()
    _collect_braces({k: v for k, v in s.params.items() if k not in _NOT_TEMPLATED}, found)
    for name in sorted(found):
        problem = _reference_problem(name, s, inputs, step_ids)
        if problem is not None:
            raise UserError(f"{owner or f'step {s.id!r}'} has `{{{{{name}}}}}`, which is not a reference{problem[0]}",
                            where=s.where, hint=problem[1])


def _reference_problem(name: str, s: Step, inputs: list[str] | None, step_ids: set[str]
                       ) -> tuple[str, str] | None:
    from flywheel.registry import did_you_mean

    forms = "references are {{inputs.NAME}}, {{steps.ID.output}} (a field: {{steps.ID.output.FIELD}})"
    parts = name.split(".")
    if parts[0] in LOCAL_KINDS and (len(parts) == 1 or parts[0] == "item"):
        if s.kind == LOCAL_KINDS[parts[0]]:
            return None
        return f": {{{{{parts[0]}}}}} exists only in a {LOCAL_KINDS[parts[0]]} step's prompt", forms
    if parts[0] == "inputs" and len(parts) >= 2:
        return None
    if parts[0] == "steps" and len(parts) >= 2:
        if len(parts) == 2 or parts[2] == "output":
            return None
        ref = ".".join(parts[:2])
        return f" — did you mean {{{{{ref}.output}}}}?", f"a field of a step's output is {{{{{ref}.output.FIELD}}}}"
    if len(parts) == 1 and parts[0] in (inputs or []):
        return f" — did you mean {{{{inputs.{name}}}}}?", forms
    if len(parts) == 1 and parts[0] in step_ids:
        return f" — did you mean {{{{steps.{name}.output}}}}?", forms
    if parts[0] == "items":
        return ": {{items}} is the batch, written as numbered text", forms
    close = did_you_mean(parts[0], ["inputs", "steps"])
    if close and len(parts) >= 2:
        return f" — did you mean {{{{{'.'.join([close[0], *parts[1:]])}}}}}?", forms
    return "", forms + "; write other braces some other way"


def _strings(value: Any) -> Iterator[str]:
    """Every string in a step's settings, nested mappings and lists included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def _collect_braces(value: Any, out: set[str]) -> None:
    out.update(m.group(1) for text in _strings(value) for m in _LOOKS_LIKE_REFERENCE.finditer(text))


class StepStopped(Exception):  # control flow, not an error
    """A check with `on_fail: stop` failed: the run stops here (its status is `stopped`)."""

    def __init__(self, step_id: str, reason: str):
        self.step_id, self.reason = step_id, reason
        super().__init__(f"step '{step_id}' stopped the run: {reason}")


class StepRefused(Exception):  # control flow, not an error
    """A step could not do its job safely (a plan that never fit its schema, a write statement): refused."""

    def __init__(self, step_id: str, reason: str):
        self.step_id, self.reason = step_id, reason
        super().__init__(f"step '{step_id}' refused: {reason}")


@dataclass
class Step:
    """One node of a workflow. `kind` picks the implementation (steps_kinds.py); `params` are its settings,
    where strings may hold references to inputs and earlier outputs; `needs` adds ordering-only edges."""

    id: str
    kind: str = "python"
    params: dict[str, Any] = field(default_factory=dict)
    needs: list[str] = field(default_factory=list)
    fn: Callable[..., Any] | None = None  # python steps
    where: str | None = None  # file:line of the step in a workflow file

    def references(self) -> set[str]:
        """`inputs.x` and `steps.y` names this step reads (its edges), from params, `needs` and the function's
        parameters (a python step's parameter names an input or an earlier step)."""
        found: set[str] = {f"steps.{n}" for n in self.needs}
        _collect_refs(self.params, found)
        return found

    def step_refs(self) -> set[str]:
        return {r.split(".")[1] for r in self.references() if r.startswith("steps.")}

    def input_refs(self) -> set[str]:
        return {r.split(".")[1] for r in self.references() if r.startswith("inputs.")}


def _collect_refs(value: Any, out: set[str]) -> None:
    for text in _strings(value):
        for m in REFERENCE.finditer(text):
            name = m.group(1)
            if name.startswith(("inputs.", "steps.")):
                out.add(".".join(name.split(".")[:2]))


def step(fn: Callable[..., Any] | None = None, *, id: str | None = None, needs: list[str] | None = None
         ) -> Any:
    """Turn a function into a workflow step. Its first parameter may be `ctx` (a StepContext); the others name
    workflow inputs or earlier steps, whose values they receive."""

    def wrap(f: Callable[..., Any]) -> Step:
        return Step(id=id or f.__name__, kind="python", fn=f, needs=list(needs or []))

    return wrap(fn) if fn is not None else wrap


def code_identity(fn: Any) -> str:
    """A function by name and source (never by address: it must survive a restart): editing a python step's body
    gives it a new identity, so a resumed run runs it again instead of reusing what the old code returned. Code it
    calls is not covered."""
    name = getattr(fn, "__qualname__", None)
    if not name:
        return type(fn).__name__
    try:
        source = content_hash(inspect.getsource(fn), n=12)
    except (OSError, TypeError):  # built-ins, functions defined in a REPL
        source = ""
    return f"{getattr(fn, '__module__', '')}:{name}" + (f"#{source}" if source else "")


def python_args(s: Step, inputs: dict[str, Any], outputs: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """(wants ctx, keyword arguments) for a python step: each parameter is an earlier step's output, else an
    input, else its default."""
    assert s.fn is not None
    params = list(inspect.signature(s.fn).parameters.values())
    wants_ctx = bool(params) and params[0].name in ("ctx", "context")
    kwargs: dict[str, Any] = {}
    for p in params[1:] if wants_ctx else params:
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        if p.name in outputs:
            kwargs[p.name] = outputs[p.name]
        elif p.name in inputs:
            kwargs[p.name] = inputs[p.name]
        elif p.default is p.empty:
            raise UserError(f"step '{s.id}' needs `{p.name}`, which is neither a workflow input nor an earlier step",
                            where=s.where, hint=f"pass --input {p.name}=… or add a step with id `{p.name}`")
    return wants_ctx, kwargs


def python_refs(s: Step, step_ids: set[str]) -> set[str]:
    """The earlier steps a python step's parameters name."""
    if s.fn is None:
        return set()
    names = [p.name for p in inspect.signature(s.fn).parameters.values()]
    return {n for n in names if n in step_ids and n != s.id}


def lookup(path: str, inputs: dict[str, Any], outputs: dict[str, Any], extra: dict[str, Any], where: str | None
           ) -> Any:
    """The value a reference names: `inputs.x`, `steps.y.output[.field…]`, `item`, `feedback`."""
    if path in extra:
        return extra[path]
    parts = path.split(".")
    if parts[0] == "inputs":
        value: Any = inputs.get(parts[1])
        rest = parts[2:]
    elif parts[0] == "steps":
        value = outputs.get(parts[1])
        rest = parts[3:] if len(parts) > 2 and parts[2] == "output" else parts[2:]
    else:  # `item.text`: a field of a map step's item
        value, rest = extra.get(parts[0]), parts[1:]
    for key in rest:
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        elif value is None:
            return None
        else:
            raise UserError(f"reference `{{{{{path}}}}}` has no field `{key}`", where=where,
                            hint=f"the value there is {type(value).__name__}: {_short(value)}")
    return value


def resolve(value: Any, inputs: dict[str, Any], outputs: dict[str, Any], extra: dict[str, Any] | None = None,
            where: str | None = None) -> Any:
    """`value` with every reference replaced: a string that is exactly one reference becomes that value (a list
    stays a list); references inside longer text are written as text (JSON for lists and mappings)."""
    extra = extra or {}
    if isinstance(value, str):
        whole = REFERENCE.fullmatch(value.strip())
        if whole and (_base(whole.group(1)) not in LOCAL or _base(whole.group(1)) in extra):
            return lookup(whole.group(1), inputs, outputs, extra, where)

        def sub(m: re.Match) -> str:
            if _base(m.group(1)) in LOCAL and _base(m.group(1)) not in extra:
                return m.group(0)  # filled later, per item
            return as_text(lookup(m.group(1), inputs, outputs, extra, where))

        return REFERENCE.sub(sub, value)
    if isinstance(value, dict):
        return {k: resolve(v, inputs, outputs, extra, where) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, inputs, outputs, extra, where) for v in value]
    return value


def _base(name: str) -> str:
    return name.split(".", 1)[0]


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, dict) and "text" in v for v in value):
        return "\n\n".join(f"[{v.get('n', n)}] {v['text']}" for n, v in enumerate(value, start=1))  # passages
    return json.dumps(value, ensure_ascii=False, default=str)


def _short(value: Any) -> str:
    text = as_text(value)
    return text if len(text) <= 80 else text[:77] + "…"

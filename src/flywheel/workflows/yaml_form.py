"""Workflows written in YAML, checked with file:line before anything runs.

    name: cited-answer
    inputs: [question]
    model: default                      # alias for steps that name none
    tools:
      lookup_order:
        function: shop.tools:lookup_order            # module:function (the project folder is importable)
        schema: {type: object, properties: {order_id: {type: string}}, required: [order_id]}
    steps:
      - id: docs
        retrieve: "{{inputs.question}}"
        k: 4
      - id: draft
        prompt: "Answer with [n] citations.\\n{{steps.docs.output}}\\n\\nQuestion: {{inputs.question}}"
      - id: cited
        check: {contains: "["}
        input: "{{steps.draft.output}}"
        on_fail: retry                  # retry (the step it reads, or `retry: ID`) | branch (`goto: ID`) | stop
        max_retries: 2
    output: "{{steps.draft.output}}"

A `tools:` entry with `mcp: {command | url, env, cwd, headers, timeout}` is an MCP server: its tools join the
workflow's under their own names, and `tool: SERVER` offers them all (workflows/mcp_servers.py).

A step's kind is the one kind key it has (prompt, retrieve, tool, check, branch, map, reduce, plan, python), or
`kind:`. Unknown kinds and fields, tools without a schema, unknown checks, prompt files that do not exist,
references to unknown steps or inputs, and cycles are UserErrors naming the file:line and the valid choices.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from flywheel.config import read_yaml, where
from flywheel.errors import ConfigError
from flywheel.registry import did_you_mean, unknown_name
from flywheel.workflows.dag import Workflow
from flywheel.workflows.steps import KINDS, Step, check_settings
from flywheel.workflows.tools import TOOLS, Tool

COMMON = ("id", "kind", "needs", "model")
FIELDS: dict[str, tuple[str, ...]] = {
    "python": ("python",),
    "prompt": ("prompt", "vars", "schema", "max_reasks"),
    "retrieve": ("retrieve", "k", "filters", "mode", "tenant"),
    "tool": ("tool", "args", "prompt", "vars", "loop", "max_steps", "max_cost_usd"),
    "check": ("check", "input", "on_fail", "retry", "max_retries", "goto"),
    "branch": ("branch",),
    "map": ("map", "prompt", "vars"),
    "reduce": ("reduce", "prompt", "batch"),
    "plan": ("plan", "allowed", "tools", "max_steps"),
}
TOP = ("name", "description", "inputs", "model", "tools", "steps", "output")


def load_workflow(path: str | Path, *, root: str | Path | None = None) -> Workflow:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"workflow file {path} does not exist", hint="give the path of a workflow .yaml file")
    data, lines = read_yaml(path)
    return parse_workflow(data, path, lines, root=Path(root) if root is not None else path.parent)


def parse_workflow(data: Any, path: Path, lines: dict, *, root: Path) -> Workflow:
    def at(*keys: Any) -> str:
        return where(path, lines, keys)

    if not isinstance(data, dict):
        raise ConfigError("a workflow file is a mapping with `steps:`", where=at(),
                          hint="see docs/workflows.md for an example")
    for key in data:
        if key not in TOP:
            raise _unknown_field(str(key), TOP, at(key), "workflow")
    steps_raw = data.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise ConfigError("`steps:` must be a non-empty list of steps", where=at("steps"),
                          hint="e.g. steps: [{id: answer, prompt: \"{{inputs.question}}\"}]")
    inputs = _inputs(data.get("inputs"), at("inputs"))
    servers: dict[str, list[str]] = {}  # MCP server name → its tools (`tool: SERVER` offers them all)
    tools = _tools(data.get("tools") or {}, at, root, (path, lines, servers))
    steps = [_step(raw, i, at, root, tools, servers) for i, raw in enumerate(steps_raw)]
    model = data.get("model", "default")
    if not isinstance(model, str):
        raise ConfigError("`model:` must be a model alias name", where=at("model"))
    return Workflow(steps=steps, name=str(data.get("name") or path.stem), inputs=inputs, output=data.get("output"),
                    model=model, tools=tools, where=f"{path}:1", root=root,
                    model_where=at("model") if "model" in data else None,
                    output_where=at("output") if "output" in data else None)


def _inputs(raw: Any, at: str) -> list[str] | None:
    if raw is None:
        return []
    if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        return list(raw)
    if isinstance(raw, dict):
        return [str(k) for k in raw]
    raise ConfigError("`inputs:` must be a list of names (or a mapping name → description)", where=at)


def _tools(raw: Any, at: Any, root: Path, mcp: tuple[Path, dict, dict[str, list[str]]]) -> dict[str, Tool]:
    if not isinstance(raw, dict):
        raise ConfigError("`tools:` must be a mapping of tool name → {function, schema, description} (or {mcp})",
                          where=at("tools"))
    out: dict[str, Tool] = {}
    for name, spec in raw.items():
        here = at("tools", name)
        if not isinstance(spec, dict):
            raise ConfigError(f"tool '{name}' must be a mapping {{function, schema, description}}", where=here)
        fields = ("mcp",) if "mcp" in spec else ("function", "schema", "description", "mcp")
        for key in spec:
            if key not in fields:
                raise _unknown_field(str(key), fields, at("tools", name, key), f"tool '{name}'")
        if "mcp" in spec:  # an MCP server: its tools, by their own names
            from flywheel.workflows.mcp_servers import mcp_server_tools

            served = mcp_server_tools(str(name), spec["mcp"], mcp[0], mcp[1], root)
            for tool in served:
                if tool in out or tool in raw:
                    raise ConfigError(f"tool '{tool}' of MCP server '{name}' has the name of another tool",
                                      where=here, hint="rename the other tool, or serve them from one place")
            out.update(served)
            mcp[2][str(name)] = list(served)
            continue
        if "function" in spec:
            fn = _import(str(spec["function"]), root, at("tools", name, "function"))
        elif name in TOOLS:
            fn = TOOLS.get(name).fn
        else:
            raise ConfigError(f"tool '{name}' names no function", where=here,
                              hint="add `function: package.module:function` (or register it in Python)")
        entry = Tool(str(name), fn, spec.get("schema"), str(spec.get("description") or ""))
        entry.require_schema(here)
        out[str(name)] = entry
    return out


def _step(raw: Any, i: int, at: Any, root: Path, tools: dict[str, Tool], servers: dict[str, list[str]]) -> Step:
    here = at("steps", i)
    if not isinstance(raw, dict):
        raise ConfigError(f"step {i + 1} must be a mapping with `id:` and one kind key", where=here,
                          hint=f"kinds: {', '.join(KINDS)}")
    sid = raw.get("id")
    if "id" in raw and sid is not None and not isinstance(sid, str):
        raise ConfigError(f"the `id:` of step {i + 1} must be a name, got {sid!r}", where=at("steps", i, "id"),
                          hint=f'quote it (id: "{sid}") or use a word, e.g. id: draft')
    if not isinstance(sid, str) or not sid.strip():
        raise ConfigError(f"step {i + 1} needs an `id:`", where=here, hint="add `id: NAME`")
    kind = _kind(raw, sid, at, i)
    allowed = (*COMMON, *FIELDS[kind])
    for key in raw:
        if key not in allowed:
            raise _unknown_field(str(key), allowed, at("steps", i, key), f"{kind} step '{sid}'")
    params = {k: v for k, v in raw.items() if k not in ("id", "kind", "needs")}
    needs = raw.get("needs") or []
    if not isinstance(needs, list):
        raise ConfigError("`needs:` must be a list of step ids", where=at("steps", i, "needs"))
    s = Step(id=sid, kind=kind, params=params, needs=[str(n) for n in needs], where=here)
    if servers and kind in ("tool", "plan"):
        _expand_servers(s, raw, servers, at("steps", i, kind if kind == "tool" else "tools"))
    check_settings(s, lambda key: at("steps", i, key))
    _check_step(s, raw, at, i, root, tools)
    return s


def _expand_servers(s: Step, raw: dict, servers: dict[str, list[str]], here: str) -> None:
    """`tool: SERVER` (or in a list) → the MCP server's tools; with `args:` the step must name one of them."""
    from flywheel.workflows.mcp_servers import expand_servers

    key = "tool" if s.kind == "tool" else "tools"
    named = raw.get(key)
    expanded = expand_servers(named, servers)
    if s.kind == "tool" and "args" in raw and isinstance(expanded, list) and expanded != named:
        raise ConfigError(f"tool step '{s.id}' has `args:` but names MCP server '{named}', which serves several "
                          f"tools: {', '.join(expanded)}", where=here, hint="name the one tool to call with them")
    raw[key] = s.params[key] = expanded


def _kind(raw: dict, sid: str, at: Any, i: int) -> str:
    if "kind" in raw:
        kind = str(raw["kind"])
        if kind not in KINDS:
            raise unknown_name("step kind", kind, KINDS, where=at("steps", i, "kind"), used_by=f"step '{sid}'",
                               error=ConfigError)
        return kind
    present = [k for k in KINDS if k in raw]
    # `prompt:` is a kind and also a setting of map, reduce and tool steps: the kind is the one key whose
    # settings cover the other kind keys present.
    owners = [k for k in present if all(o == k or o in FIELDS[k] for o in present)]
    if len(owners) == 1:
        return owners[0]
    if len(present) > 1:
        raise ConfigError(f"step '{sid}' has several kinds: {', '.join(present)}", where=at("steps", i),
                          hint="a step does one thing; split it, or say which with `kind:`")
    others = [k for k in raw if k not in COMMON]
    guess = others[0] if others else "(none)"
    raise unknown_name("step kind", str(guess), KINDS, where=at("steps", i, guess) if others else at("steps", i),
                       used_by=f"step '{sid}'", error=ConfigError,
                       hint="give the step one kind key, e.g. `prompt: \"…\"` or `retrieve: \"{{inputs.question}}\"`")


def _check_step(s: Step, raw: dict, at: Any, i: int, root: Path, tools: dict[str, Tool]) -> None:
    """What can be checked per step before the DAG is: functions, tools, checks, prompt files, shapes."""
    if s.kind == "python":
        s.fn = _import(str(raw["python"]), root, at("steps", i, "python"))
    elif s.kind == "tool" or s.kind == "plan":
        names = raw.get("tool" if s.kind == "tool" else "tools") or []
        for name in names if isinstance(names, list) else [names]:
            if name in tools:
                continue
            if name not in TOOLS:
                raise unknown_name("tool", str(name), {*tools, *TOOLS.names()}, where=at("steps", i, s.kind == "tool"
                                   and "tool" or "tools"), used_by=f"step '{s.id}'", error=ConfigError,
                                   hint="declare it under `tools:` with `function:` and `schema:`")
            TOOLS.get(str(name)).require_schema(s.where)
        if s.kind == "plan":
            _check_plan_kinds(raw.get("allowed"), at("steps", i, "allowed"), s.id)
        if s.kind == "tool" and "args" not in raw and "prompt" not in raw:
            raise ConfigError(f"tool step '{s.id}' needs `args:` (call it with them) or `prompt:` (a model picks "
                              "them)", where=s.where)
    elif s.kind == "check":
        from flywheel.workflows.runner import build_check

        if "input" not in raw:
            raise ConfigError(f"check step '{s.id}' needs `input:` (what it checks, e.g. {{{{steps.draft.output}}}})",
                              where=s.where)
        build_check(Step(id=s.id, kind="check", params=s.params, where=at("steps", i, "check")))
        if raw.get("on_fail") == "branch" and "goto" not in raw:
            raise ConfigError(f"check '{s.id}' has on_fail: branch but no `goto:` step", where=s.where,
                              hint="add `goto: STEP_ID`, the step that runs when the check fails")
        # without its on_fail a setting would be ignored and the check would stop the run instead
        for key, action in (("goto", "branch"), ("retry", "retry"), ("max_retries", "retry")):
            if key in raw and raw.get("on_fail", "stop") != action:
                raise ConfigError(f"check '{s.id}' has `{key}:` but on_fail is {raw.get('on_fail', 'stop')}",
                                  where=at("steps", i, key), hint=f"add `on_fail: {action}` (or remove `{key}:`)")
        retries = raw.get("max_retries", 1)
        if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 5:
            raise ConfigError("`max_retries` must be a whole number from 0 to 5", where=at("steps", i, "max_retries"))
    elif s.kind == "branch":
        body = raw["branch"]
        if not isinstance(body, dict) or "if" not in body or not set(body) <= {"if", "then", "else"}:
            raise ConfigError(f"branch '{s.id}' must be {{if: CONDITION, then: [steps], else: [steps]}}",
                              where=s.where, hint="a condition is a reference, or {value: REF, equals: X} "
                              "(or not_equals, in, contains, matches)")
        arms = {arm: body.get(arm) or [] for arm in ("then", "else")}
        for arm, ids in arms.items():
            if not isinstance(ids, list):
                raise ConfigError(f"`{arm}:` of branch '{s.id}' must be a list of step ids", where=s.where)
        s.params = {"if": body["if"], "then": [str(x) for x in arms["then"]], "else": [str(x) for x in arms["else"]]}
        if "model" in raw:
            s.params["model"] = raw["model"]
    if s.kind in ("prompt", "map", "reduce") or (s.kind == "tool" and "prompt" in raw):
        if "prompt" not in raw:
            raise ConfigError(f"{s.kind} step '{s.id}' needs `prompt:`", where=s.where)
        _check_prompt(raw["prompt"], at("steps", i, "prompt"), root)


def _check_plan_kinds(allowed: Any, here: str, sid: str) -> None:
    from flywheel.workflows.plan import PLAN_KINDS

    if allowed is None:
        return
    if not isinstance(allowed, list) or not allowed:
        raise ConfigError(f"`allowed:` of plan step '{sid}' must be a list of step kinds", where=here,
                          hint=f"e.g. allowed: [{', '.join(PLAN_KINDS)}]")
    for kind in allowed:
        if kind not in PLAN_KINDS:
            raise unknown_name("plan step kind", str(kind), PLAN_KINDS, where=here, used_by=f"plan step '{sid}'",
                               error=ConfigError, hint="a plan's steps can only be of these kinds")


def _check_prompt(prompt: Any, here: str, root: Path) -> None:
    if isinstance(prompt, dict):
        if "template" not in prompt or not set(prompt) <= {"system", "template"}:
            raise ConfigError("`prompt:` is a text, a prompt file (.yaml), or {system, template}", where=here)
        return
    if not isinstance(prompt, str):
        raise ConfigError("`prompt:` is a text, a prompt file (.yaml), or {system, template}", where=here)
    if prompt.strip().endswith((".yaml", ".yml")) and "\n" not in prompt.strip():
        from flywheel.prompts import PromptRegistry

        PromptRegistry(root).path_of(prompt.strip(), where=here)


def _import(target: str, root: Path, here: str) -> Any:
    module, _, attr = target.partition(":")
    if not module or not attr:
        raise ConfigError(f"`{target}` is not module:function", where=here, hint="e.g. shop.tools:lookup_order")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module}: {exc}", where=here,
                          hint="the module must be importable from the project folder") from None
    except AttributeError:
        raise ConfigError(f"{module} has no `{attr}`", where=here, hint="check the function's name") from None
    if not callable(obj):
        raise ConfigError(f"`{target}` is not a function", where=here)
    return obj


def _unknown_field(key: str, allowed: tuple[str, ...], here: str, owner: str) -> ConfigError:
    close = did_you_mean(key, allowed)
    hint = f"did you mean `{close[0]}`? " if close else ""
    return ConfigError(f"unknown field `{key}` in {owner}", where=here,
                       hint=f"{hint}valid fields: {', '.join(allowed)}")

"""A bounded tool loop: call the model, run the tools it asks for, feed the results back, until it answers.

    @tool
    def get_weather(city: str, unit: Literal["C", "F"] = "C") -> dict:
        "Current weather of a city."
        return {"temp": 21, "unit": unit}

    done = run_tools(gateway, ChatRequest.of("Weather in Paris?", model="small"), {"get_weather": get_weather},
                     max_steps=8, max_cost_usd=0.05)
    done.text, done.stop_reason, done.calls, done.cost_usd      # stop_reason: final | max_steps | max_cost

Each model call goes through the gateway (so it has its own spans, retries and cost); each tool execution is
one span `tool.<name>` (kind "tool", inputs = the arguments, outputs = the result, the error when it failed)
under one `tool_loop` span. Arguments are validated against the tool's JSON schema before the tool runs; an
invalid argument, unknown tool or a tool that raises goes back to the model as that call's result (truncated
to `max_result_chars`), so the model can correct itself. Bounds end the loop with a stop reason, not an
exception. Works with any alias whose provider speaks tools (openai_compat, anthropic): the gateway
translates the OpenAI-shaped turns appended here.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonschema
from pydantic import create_model, validate_call

from flywheel.errors import UserError
from flywheel.tracing import in_context, tracer
from flywheel.types import ChatRequest, ChatResult, Message, Usage

StopReason = Literal["final", "max_steps", "max_cost"]
MAX_RESULT_CHARS = 8000
_HINT = "decorate it with @tool (type hints give the schema) or pass `tools=` on the request with its parameters"


class Tool:
    """A Python function the model may call, with the JSON schema of its parameters. Build it with `@tool`."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None, description: str | None = None,
                 schema: dict[str, Any] | None = None):
        self.fn = fn
        self.name = name or fn.__name__
        doc = inspect.getdoc(fn) or ""
        self.description = description if description is not None else doc.split("\n\n")[0].strip()
        self.schema = schema if schema is not None else schema_of(fn, self.name)
        jsonschema.validators.validator_for(self.schema).check_schema(self.schema)
        self.is_async = inspect.iscoroutinefunction(fn)
        # pydantic converts JSON values to the annotated types (dicts to models, strings to dates …)
        self._call = validate_call(fn) if schema is None else fn

    def __call__(self, **arguments: Any) -> Any:
        return self._call(**arguments)

    def spec(self) -> dict[str, Any]:
        """The OpenAI-wire tool definition (`ChatRequest.tools` entry)."""
        fn: dict[str, Any] = {"name": self.name, "parameters": self.schema}
        if self.description:
            fn["description"] = self.description
        return {"type": "function", "function": fn}


def tool(fn: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None,
         schema: dict[str, Any] | None = None) -> Any:
    """`@tool` or `@tool(name=…, description=…, schema=…)`: the function as a `Tool`; without `schema`, the
    parameters' type hints give it (pydantic: `Annotated[str, Field(description=…)]` documents a parameter)."""
    if fn is None:
        return lambda f: Tool(f, name=name, description=description, schema=schema)
    return Tool(fn, name=name, description=description, schema=schema)


def schema_of(fn: Callable[..., Any], name: str) -> dict[str, Any]:
    """JSON schema of `fn`'s keyword parameters from their type hints; UserError when one has none."""
    fields: dict[str, Any] = {}
    hints = _hints(fn)
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.name not in hints:
            raise UserError(f"tool '{name}' has no schema: parameter '{param.name}' has no type hint", hint=_HINT)
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints[param.name], default)
    model = create_model(f"{name}_arguments", **fields)
    schema = model.model_json_schema()
    schema.pop("title", None)
    return schema


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        import typing

        return typing.get_type_hints(fn, include_extras=True)
    except Exception:  # noqa: BLE001 - unresolvable forward references: fall back to the raw annotations
        return dict(getattr(fn, "__annotations__", {}))


@dataclass
class ToolCallRecord:
    """One tool call the model made and what came of it."""

    id: str
    name: str
    arguments: Any  # the decoded arguments (the raw string when they were not JSON)
    result: str  # what went back to the model
    error: str | None = None  # invalid arguments, unknown tool, or the tool raised
    step: int = 0


@dataclass
class ToolLoopResult:
    text: str  # the final answer (the last model text when a bound stopped the loop)
    stop_reason: StopReason
    steps: int  # model calls made
    messages: list[Message]  # the whole conversation, tool turns included (continue it with a new request)
    calls: list[ToolCallRecord] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)  # every model call
    cost_usd: float = 0.0  # every model call
    latency_ms: float = 0.0
    trace_id: str | None = None
    last: ChatResult | None = None  # the last model answer


def _tool_map(tools: Mapping[str, Any]) -> dict[str, Tool]:
    """Name → Tool; plain functions get their schema from their type hints, a Tool is renamed to its key, an
    object with `fn` and `schema` (flywheel.workflows' registered tools) keeps its schema."""
    out = {}
    for key, fn in tools.items():
        if isinstance(fn, Tool):
            if fn.name != key:
                fn = copy.copy(fn)
                fn.name = key
            out[key] = fn
        elif callable(getattr(fn, "fn", None)) and isinstance(getattr(fn, "schema", None), dict):
            # a tool record from elsewhere (a workflow's registered tool): its function and schema
            out[key] = Tool(fn.fn, name=key, description=getattr(fn, "description", None), schema=fn.schema)
        else:
            out[key] = Tool(fn, name=key)
    return out


class _Loop:
    """State shared by `run_tools` and `arun_tools`; no I/O here."""

    def __init__(self, request: ChatRequest, tools: Mapping[str, Any], max_steps: int,
                 max_cost_usd: float | None, max_result_chars: int):
        if max_steps < 1:
            raise UserError("max_steps must be at least 1")
        self.tools = _tool_map(tools)
        specs = {t["function"]["name"]: t for t in request.tools or [] if isinstance(t.get("function"), dict)}
        missing = sorted(set(specs) - set(self.tools))
        if missing:
            raise UserError(f"the request offers tool(s) {', '.join(missing)} but no function runs them",
                            hint=f"pass them in tools= (known: {', '.join(sorted(self.tools)) or 'none'})")
        self.schemas = {name: (specs[name]["function"].get("parameters") or {"type": "object"}) if name in specs
                        else t.schema for name, t in self.tools.items()}
        offered = list(request.tools or []) + [t.spec() for n, t in self.tools.items() if n not in specs]
        self.request = request.model_copy(update={"tools": offered})
        self.max_steps, self.max_cost, self.max_chars = max_steps, max_cost_usd, max_result_chars
        self.steps, self.cost, self.usage = 0, 0.0, Usage()
        self.calls: list[ToolCallRecord] = []
        self.last: ChatResult | None = None
        self.t0 = time.perf_counter()

    def feed(self, result: ChatResult) -> StopReason | None:
        """Account for a model answer; the stop reason, or None when its tool calls are to be run."""
        self.steps += 1
        self.cost += result.cost_usd
        self.usage = self.usage + result.usage
        self.last = result
        if not result.tool_calls:
            return "final"
        if self.steps >= self.max_steps:
            return "max_steps"
        if self.max_cost is not None and self.cost >= self.max_cost:
            return "max_cost"
        return None

    def prepare(self, call: dict[str, Any]) -> tuple[ToolCallRecord, Tool | None, dict[str, Any]]:
        """The record of `call`, with `error` set when it cannot run, the tool and the validated arguments."""
        fn = call.get("function") or {}
        name, raw = str(fn.get("name") or ""), fn.get("arguments") or "{}"
        record = ToolCallRecord(str(call.get("id") or ""), name, raw, "", step=self.steps)
        target = self.tools.get(name)
        if target is None:
            record.error = f"unknown tool '{name}'; the tools are: {', '.join(sorted(self.tools))}"
            return record, None, {}
        try:
            args = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError as exc:
            record.error = f"the arguments are not valid JSON: {exc}"
            return record, None, {}
        record.arguments = args
        try:
            jsonschema.validate(args, self.schemas[name])
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
            record.error = f"invalid arguments for tool '{name}' at {where}: {exc.message}"
            return record, None, {}
        return record, target, args

    def finish(self, record: ToolCallRecord, value: Any = None, exc: BaseException | None = None) -> None:
        if exc is not None:
            record.error = f"tool '{record.name}' failed: {type(exc).__name__}: {exc}"
        text = f"error: {record.error}" if record.error else _as_text(value)
        if len(text) > self.max_chars:
            text = text[:self.max_chars] + f"… [truncated, {len(text) - self.max_chars} more characters]"
        record.result = text
        self.calls.append(record)

    def continue_with(self, result: ChatResult, records: list[ToolCallRecord]) -> None:
        turns = [Message(role="assistant", content=result.text, tool_calls=result.tool_calls)]
        turns += [Message(role="tool", tool_call_id=r.id, content=r.result) for r in records]
        update: dict[str, Any] = {"messages": [*self.request.messages, *turns]}
        if self.request.tool_choice not in (None, "auto", "none"):
            update["tool_choice"] = "auto"  # "required" or a named tool would never let the model answer
        self.request = self.request.model_copy(update=update)

    def done(self, reason: StopReason, span: Any) -> ToolLoopResult:
        last = self.last
        assert last is not None
        span.set(outputs=last.text, **{"flywheel.tool_loop.steps": self.steps,
                                       "flywheel.tool_loop.stop_reason": reason,
                                       "flywheel.tool_loop.tool_calls": len(self.calls)})
        messages = list(self.request.messages)
        if reason == "final":
            messages.append(Message(role="assistant", content=last.text))
        return ToolLoopResult(last.text, reason, self.steps, messages, self.calls, self.usage, self.cost,
                              (time.perf_counter() - self.t0) * 1000.0, span.trace_id, last)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    return json.dumps(value, ensure_ascii=False, default=str)


def _span(record: ToolCallRecord) -> Any:
    return tracer.span(f"tool.{record.name}", "tool", record.arguments,
                       **{"flywheel.tool.name": record.name, "flywheel.tool.call_id": record.id,
                          "flywheel.tool.step": record.step})


def _await(target: Tool, args: dict[str, Any]) -> Any:
    """An async tool run from the sync loop: on this thread, or, where an event loop already runs on it (a
    notebook cell, an async function calling `run_tools`), on a worker thread with a loop of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(target(**args))
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(in_context(lambda: asyncio.run(target(**args)))).result()


def _execute(loop: _Loop, call: dict[str, Any]) -> ToolCallRecord:
    record, target, args = loop.prepare(call)
    with _span(record) as sp:
        value: Any = None
        if target is not None:
            try:
                value = _await(target, args) if target.is_async else target(**args)
            except Exception as exc:  # noqa: BLE001 - the model hears about it and may try again
                loop.finish(record, exc=exc)
            else:
                loop.finish(record, value)
        else:
            loop.finish(record)
        _close(sp, record)
    return record


async def _aexecute(loop: _Loop, call: dict[str, Any]) -> ToolCallRecord:
    record, target, args = loop.prepare(call)
    with _span(record) as sp:
        if target is not None:
            try:
                value = await target(**args) if target.is_async else await asyncio.to_thread(
                    in_context(target), **args)
            except Exception as exc:  # noqa: BLE001 - likewise
                loop.finish(record, exc=exc)
            else:
                loop.finish(record, value)
        else:
            loop.finish(record)
        _close(sp, record)
    return record


def _close(sp: Any, record: ToolCallRecord) -> None:
    sp.set(outputs=record.result)
    if record.error:
        sp.record_error(record.error)


def _ordered(loop: _Loop, records: list[ToolCallRecord]) -> list[ToolCallRecord]:
    """Records of one turn in call order (concurrent runs finish in any order)."""
    order = {id(r): i for i, r in enumerate(records)}
    loop.calls.sort(key=lambda r: (r.step, order.get(id(r), -1)))
    return records


def run_tools(gateway: Any, request: ChatRequest, tools: Mapping[str, Any], *, max_steps: int = 8,
              max_cost_usd: float | None = None, concurrent: bool = False,
              max_result_chars: int = MAX_RESULT_CHARS) -> ToolLoopResult:
    """Run the tool loop (see the module doc). `concurrent`: the calls of one turn run on threads (their
    results still go back in the order the model asked)."""
    loop = _Loop(request, tools, max_steps, max_cost_usd, max_result_chars)
    with tracer.span("tool_loop", "other", {"tools": sorted(loop.tools)},
                     **{"flywheel.tool_loop.max_steps": max_steps}) as span:
        while True:
            result = gateway.chat(loop.request)
            reason = loop.feed(result)
            if reason is not None:
                return loop.done(reason, span)
            calls = result.tool_calls or []
            if concurrent and len(calls) > 1:
                with ThreadPoolExecutor(max_workers=min(8, len(calls))) as pool:
                    records = list(pool.map(in_context(lambda c: _execute(loop, c)), calls))
            else:
                records = [_execute(loop, c) for c in calls]
            loop.continue_with(result, _ordered(loop, records))


async def arun_tools(gateway: Any, request: ChatRequest, tools: Mapping[str, Any], *,
                     max_steps: int = 8, max_cost_usd: float | None = None, concurrent: bool = False,
                     max_result_chars: int = MAX_RESULT_CHARS) -> ToolLoopResult:
    """`run_tools` on the event loop: `gateway.achat`, async tools awaited, sync tools on a worker thread."""
    loop = _Loop(request, tools, max_steps, max_cost_usd, max_result_chars)
    with tracer.span("tool_loop", "other", {"tools": sorted(loop.tools)},
                     **{"flywheel.tool_loop.max_steps": max_steps}) as span:
        while True:
            result = await gateway.achat(loop.request)
            reason = loop.feed(result)
            if reason is not None:
                return loop.done(reason, span)
            calls = result.tool_calls or []
            if concurrent and len(calls) > 1:
                records = list(await asyncio.gather(*(_aexecute(loop, c) for c in calls)))
            else:
                records = [await _aexecute(loop, c) for c in calls]
            loop.continue_with(result, _ordered(loop, records))

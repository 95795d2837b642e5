"""Structured output: a pydantic model or JSON Schema, validated, with bounded re-asks carrying the error.

    user = chat_structured(gateway, ChatRequest.of("Extract the user: Ann, 31"), User)
    user.value   # a validated User
    user.result  # the ChatResult, with tokens and cost of every attempt (re-asks included)

Why not Instructor: it patches the SDK client and retries inside that client (tenacity), below our
gateway. Its re-asks would bypass the gateway's retries on 429/5xx, the fallback chain, per-attempt
cost and the spans we record for every call. The loop we need is small, so each re-ask here is an
ordinary `Gateway.chat` call: traced, priced, retried and able to fall back like any other.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import jsonschema
from pydantic import BaseModel, ValidationError

from flywheel.errors import FlywheelError
from flywheel.tracing import tracer
from flywheel.types import ChatRequest, ChatResult, Message

T = TypeVar("T")
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


class StructuredOutputError(FlywheelError):
    """The model did not produce valid output within the allowed re-asks."""

    def __init__(self, errors: list[str], result: ChatResult):
        self.errors, self.result = errors, result
        super().__init__(f"no valid structured output after {len(errors)} attempt(s); last error: {errors[-1]}")


@dataclass
class Structured(Generic[T]):
    value: T
    result: ChatResult  # usage / cost summed over every attempt
    reasks: int


def json_schema_of(schema: type[BaseModel] | dict) -> dict:
    return schema.model_json_schema() if isinstance(schema, type) else schema


def parse_lenient(text: str) -> Any:
    """JSON from a model's answer: plain, inside a ``` fence, or the first {...} / [...] block in prose."""
    candidates = [text.strip()]
    candidates += [m.strip() for m in _FENCE.findall(text)]
    for opener, closer in ("{}", "[]"):
        start, end = text.find(opener), text.rfind(closer)
        if 0 <= start < end:
            candidates.append(text[start:end + 1])
    last: Exception | None = None
    for c in candidates:
        try:
            return json.loads(c)
        except json.JSONDecodeError as exc:
            last = exc
    raise ValueError(f"not valid JSON ({last})" if last else "no JSON found")


def validate(data: Any, schema: type[BaseModel] | dict) -> Any:
    """The validated value, or ValueError with a message a model can act on."""
    if isinstance(schema, type):
        try:
            return schema.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors())
            raise ValueError(problems) from None
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as exc:
        path = "/".join(map(str, exc.absolute_path)) or "(root)"
        raise ValueError(f"{path}: {exc.message}") from None
    return data


def _prepare(gateway: Any, request: ChatRequest, schema: type[BaseModel] | dict, name: str) -> ChatRequest:
    js = json_schema_of(schema)
    instruction = ("Answer with one JSON value only, no prose, matching this JSON Schema:\n"
                   + json.dumps(js, ensure_ascii=False))
    messages = list(request.messages)
    if messages and messages[0].role == "system":
        messages[0] = Message(role="system", content=f"{messages[0].content}\n\n{instruction}")
    else:
        messages.insert(0, Message(role="system", content=instruction))
    fmt = request.response_format
    if fmt is None and _supports_response_format(gateway, request.model):
        fmt = {"type": "json_schema", "json_schema": {"name": name, "schema": js}}
    return request.model_copy(update={"messages": messages, "response_format": fmt})


def _supports_response_format(gateway: Any, alias_name: str) -> bool:
    """OpenAI-compatible servers (Azure OpenAI too) take `response_format`; an alias opts out with
    `json_schema: false` (`json_schema: json_object`: the provider sends the schema in llama-cpp-python's form)."""
    try:
        alias = gateway.resolve(alias_name)
    except Exception:  # noqa: BLE001 - an unknown alias fails properly in chat()
        return False
    return bool(alias.json_schema) if alias.json_schema is not None else alias.provider in ("openai_compat", "azure")


def _reask(request: ChatRequest, answer: str, error: str) -> ChatRequest:
    fix = (f"Your answer was not valid: {error}\n"
           "Reply again with the corrected JSON only.")
    return request.model_copy(update={"messages": [*request.messages, Message(role="assistant", content=answer),
                                                   Message(role="user", content=fix)]})


def _total(results: list[ChatResult]) -> ChatResult:
    last = results[-1]
    usage = results[0].usage
    for r in results[1:]:
        usage = usage + r.usage
    return last.model_copy(update={
        "usage": usage, "cost_usd": sum(r.cost_usd for r in results), "attempts": sum(r.attempts for r in results),
        "latency_ms": sum(r.latency_ms for r in results)})


class _Loop:
    """The re-ask state shared by the sync and async entry points."""

    def __init__(self, gateway: Any, request: ChatRequest, schema: type[BaseModel] | dict, max_reasks: int,
                 name: str | None):
        self.schema, self.max_reasks = schema, max_reasks
        self.name = name or (schema.__name__ if isinstance(schema, type) else "output")
        self.request = _prepare(gateway, request, schema, self.name)
        self.results: list[ChatResult] = []
        self.errors: list[str] = []

    def span(self):
        return tracer.span("gateway.structured", kind="llm", inputs={"schema": self.name},
                           **{"flywheel.structured.schema": self.name})

    def feed(self, result: ChatResult, sp: Any) -> Structured | None:
        """A validated Structured, or None after preparing the re-ask; raises when re-asks are used up."""
        self.results.append(result)
        try:
            value = validate(parse_lenient(result.text), self.schema)
        except ValueError as exc:
            self.errors.append(str(exc))
            if len(self.results) > self.max_reasks:
                sp.set(outputs=None, **{"flywheel.structured.reasks": self.max_reasks})
                raise StructuredOutputError(self.errors, _total(self.results)) from None
            self.request = _reask(self.request, result.text, str(exc))
            return None
        reasks = len(self.results) - 1
        sp.set(outputs=result.text, **{"flywheel.structured.reasks": reasks})
        return Structured(value, _total(self.results), reasks)


def chat_structured(gateway: Any, request: ChatRequest, schema: type[BaseModel] | dict, *,
                    max_reasks: int = 2, name: str | None = None) -> Structured:
    loop = _Loop(gateway, request, schema, max_reasks, name)
    with loop.span() as sp:
        while True:
            done = loop.feed(gateway.chat(loop.request), sp)
            if done is not None:
                return done


async def achat_structured(gateway: Any, request: ChatRequest, schema: type[BaseModel] | dict, *,
                           max_reasks: int = 2, name: str | None = None) -> Structured:
    loop = _Loop(gateway, request, schema, max_reasks, name)
    with loop.span() as sp:
        while True:
            done = loop.feed(await gateway.achat(loop.request), sp)
            if done is not None:
                return done

"""Tools a workflow's `tool` steps may call: Python functions registered by name, each with a JSON Schema for its
arguments (checked before the call; a tool without a schema cannot be used).

    @tool(schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    def weather(city: str) -> dict: ...

    register_tool("lookup", lookup_fn, schema={...}, description="Find a customer by email")
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonschema

from flywheel.errors import UserError
from flywheel.registry import Registry


@dataclass
class Tool:
    name: str
    fn: Callable[..., Any]
    schema: dict[str, Any] | None
    description: str = ""

    def require_schema(self, where: str | None = None) -> None:
        if not isinstance(self.schema, dict) or not self.schema:
            raise UserError(f"tool '{self.name}' has no JSON schema for its arguments", where=where,
                            hint="give it one: `schema: {type: object, properties: {…}, required: […]}` "
                                 "(register_tool(name, fn, schema=…) in Python)")
        try:
            jsonschema.Draft202012Validator.check_schema(self.schema)
        except jsonschema.SchemaError as exc:
            raise UserError(f"tool '{self.name}' has an invalid JSON schema: {exc.message}", where=where,
                            hint="see https://json-schema.org/understanding-json-schema/") from None

    def spec(self) -> dict[str, Any]:
        """The OpenAI function-tool shape the gateway speaks."""
        fn: dict[str, Any] = {"name": self.name, "parameters": self.schema}
        if self.description:
            fn["description"] = self.description
        return {"type": "function", "function": fn}

    def check_args(self, args: Any) -> str | None:
        """Why `args` do not fit the schema, or None."""
        if not isinstance(args, dict):
            return f"arguments must be a JSON object, got {type(args).__name__}"
        try:
            jsonschema.validate(args, self.schema or {})
        except jsonschema.ValidationError as exc:
            path = "/".join(map(str, exc.absolute_path)) or "(root)"
            return f"{path}: {exc.message}"
        return None

    def call(self, args: dict[str, Any]) -> Any:
        problem = self.check_args(args)
        if problem is not None:
            raise ToolArgumentsError(self.name, problem)
        return self.fn(**args)


class ToolArgumentsError(UserError):
    def __init__(self, name: str, problem: str):
        self.problem = problem
        super().__init__(f"arguments for tool '{name}' do not fit its schema: {problem}",
                         hint="fix the step's `args:`, or the tool's schema")


TOOLS: Registry[Tool] = Registry("tool", hint="register it with flywheel.workflows.register_tool(name, fn, schema=…)")


def register_tool(name: str, fn: Callable[..., Any], *, schema: dict[str, Any] | None,
                  description: str = "", replace: bool = False) -> Tool:
    entry = Tool(name, fn, schema, description or (inspect.getdoc(fn) or "").split("\n")[0])
    TOOLS.register(name, entry, replace=replace)
    return entry


def tool(*, schema: dict[str, Any], name: str | None = None, description: str = "") -> Callable[[Callable], Callable]:
    """Decorator form of `register_tool`; the function stays callable as before."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        register_tool(name or fn.__name__, fn, schema=schema, description=description, replace=True)
        return fn

    return deco

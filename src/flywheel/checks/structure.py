"""Structure checks: the output is JSON (optionally matching a JSON Schema) or well-formed XML.

- is-json                                   # the whole output parses as JSON
- is-json: {type: object, required: [id]}   # … and validates against this JSON Schema
- contains-json: {schema: {...}}            # some ```json block / {...} inside the output does
- is-xml                                    # well-formed XML
- is-xml: [answer, answer/source]           # … with these element paths present
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

from flywheel.checks.base import Check, CheckContext, register
from flywheel.types import CheckResult

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n(.*?)```", re.DOTALL)


def _schema_validator(arg: Any, name: str) -> Any:
    """None, a JSON Schema mapping, or {schema: mapping}; the schema itself is checked up front."""
    if arg is None:
        return None
    schema = arg.get("schema") if isinstance(arg, dict) and set(arg) == {"schema"} else arg
    if not isinstance(schema, dict):
        raise TypeError(f"{name} takes an optional JSON Schema mapping, got {arg!r}")
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"invalid JSON Schema: {exc.message}") from None
    return cls(schema)


def _validate(value: Any, validator: Any) -> CheckResult:
    if validator is None:
        return CheckResult(passed=True, score=1.0, reason="valid JSON")
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if not errors:
        return CheckResult(passed=True, score=1.0, reason="valid JSON matching the schema")
    first = errors[0]
    at = "/".join(str(p) for p in first.absolute_path) or "(root)"
    return CheckResult(
        passed=False,
        score=0.0,
        reason=f"schema violation at {at}: {first.message}",
        details={"errors": [e.message for e in errors[:10]]},
    )


@register
class IsJson(Check):
    """is-json or is-json: SCHEMA — the whole output is JSON, optionally valid against a JSON Schema."""

    name = "is-json"
    scope = "answer"  # the whole answer parses, not each sentence

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        self.validator = _schema_validator(arg, self.name)

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        try:
            value = json.loads(output)
        except ValueError as exc:
            return CheckResult(passed=False, score=0.0, reason=f"not JSON: {exc}")
        return _validate(value, self.validator)


@register
class ContainsJson(Check):
    """contains-json or contains-json: SCHEMA — a JSON value (fenced or {...}/[...]) appears in the output."""

    name = "contains-json"
    scope = "answer"

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        self.validator = _schema_validator(arg, self.name)

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        last: CheckResult | None = None
        for value in _json_values(output):
            last = _validate(value, self.validator)
            if last.passed:
                return last
        return last or CheckResult(passed=False, score=0.0, reason="no JSON found in the output")


def _json_values(text: str) -> list[Any]:
    found: list[Any] = []
    for block in _FENCE.findall(text):
        try:
            found.append(json.loads(block))
        except ValueError:
            pass
    decoder = json.JSONDecoder()
    i = 0
    while len(found) < 20:
        starts = [p for p in (text.find("{", i), text.find("[", i)) if p >= 0]
        if not starts:
            break
        i = min(starts)
        try:
            value, end = decoder.raw_decode(text, i)
        except ValueError:
            i += 1
            continue
        found.append(value)
        i = end
    return found


@register
class IsXml(Check):
    """is-xml or is-xml: [root/child, …] — the output is well-formed XML with the listed element paths."""

    name = "is-xml"
    scope = "answer"

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        required = arg.get("required_elements") if isinstance(arg, dict) else arg
        if required is None:
            self.required: list[str] = []
        elif isinstance(required, list) and all(isinstance(r, str) and r for r in required):
            self.required = required
        else:
            raise ValueError(
                f"is-xml takes a list of element paths like [answer, answer/source], got {arg!r}"
            )

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        try:
            root = ET.fromstring(output.strip())
        except ET.ParseError as exc:
            return CheckResult(passed=False, score=0.0, reason=f"not well-formed XML: {exc}")
        missing = [p for p in self.required if not _has_path(root, p)]
        if missing:
            return CheckResult(
                passed=False,
                score=1 - len(missing) / len(self.required),
                reason=f"missing elements {missing}",
                details={"missing": missing},
            )
        return CheckResult(passed=True, score=1.0, reason="well-formed XML")


def _has_path(root: ET.Element, path: str) -> bool:
    parts = [p for p in re.split(r"[/.]", path) if p]
    if not parts or parts[0] != root.tag:
        return root.find(".//" + "/".join(parts)) is not None
    return len(parts) == 1 or root.find("/".join(parts[1:])) is not None

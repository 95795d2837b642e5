"""promptfoo's Nunjucks `{{ … }}` in flywheel's one-pass renderer: `{{ var }}` stays as it is; an expression
with a path or filters (`{{ item.name | trim }}`, `{{ doc | dump }}`) becomes a plain placeholder whose value
is computed per test case (`Template.values`), so the prompt stays a flywheel Prompt with a stable version.

Filters: dump, trim, upper, lower, capitalize, title, length, safe, first, last, join(sep), default(value),
replace(old, new). `{% … %}` tags (loops, ifs) and any other filter are a UserError at the file:line.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flywheel.errors import UserError

_EXPR = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.DOTALL)
_TAG = re.compile(r"\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATH = re.compile(
    r"([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\s*(?:\d+|'[^']*'|\"[^\"]*\")\s*\])*)$"
)
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*(\d+|'[^']*'|\"[^\"]*\")\s*\]")
_FILTER = re.compile(r"([A-Za-z_]+)\s*(?:\((.*)\))?$", re.DOTALL)
_MISSING = object()


def _capitalize(s: Any) -> str:
    text = str(s)
    return text[:1].upper() + text[1:].lower()


FILTERS: dict[str, Callable[..., Any]] = {
    "dump": lambda v, indent=None: json.dumps(v, ensure_ascii=False, indent=indent),
    "trim": lambda v: str(v).strip(),
    "upper": lambda v: str(v).upper(),
    "lower": lambda v: str(v).lower(),
    "capitalize": _capitalize,
    "title": lambda v: str(v).title(),
    "length": lambda v: len(v),
    "safe": lambda v: v,
    "first": lambda v: v[0],
    "last": lambda v: v[-1],
    "join": lambda v, sep="": str(sep).join(str(x) for x in v),
    "replace": lambda v, old, new: str(v).replace(str(old), str(new)),
}


@dataclass(frozen=True)
class Expr:
    """One `{{ … }}` expression: a variable, a path into it, and filters with their literal arguments."""

    var: str
    path: tuple[str | int, ...]
    filters: tuple[tuple[str, tuple[Any, ...]], ...]

    def value(self, vars: Mapping[str, Any], where: str) -> Any:
        value: Any = vars.get(self.var, _MISSING)
        for step in self.path:
            if value is _MISSING:
                break
            try:
                value = value[step]
            except (KeyError, IndexError, TypeError):
                value = _MISSING
        for name, args in self.filters:
            if name == "default":
                value = args[0] if value is _MISSING or value is None else value
                continue
            if value is _MISSING:
                break
            try:
                value = FILTERS[name](value, *args)
            except Exception as exc:  # noqa: BLE001 - a filter that cannot apply is the user's template
                raise UserError(f"filter `{name}` cannot apply to {self.var}: {exc}", where=where) from None
        if value is _MISSING:
            raise UserError(
                f"undefined variable `{self.var}{''.join(f'.{p}' for p in self.path)}` in a template",
                where=where,
                hint=f"given vars: {', '.join(sorted(vars)) or '(none)'}; add it to the "
                'test\'s `vars:` (or `defaultTest.vars:`), or use `| default("…")`',
            )
        return value


def parse(expr: str, where: str) -> Expr:
    head, *filters = [p.strip() for p in _split_pipes(expr)]
    m = _PATH.match(head)
    if m is None:
        raise UserError(
            f"cannot read template expression `{{{{ {expr} }}}}`",
            where=where,
            hint="flywheel reads variables, paths (a.b, a[0]) and filters (| dump, | trim …)",
        )
    path: list[str | int] = []
    for attr, index in _STEP.findall(m.group(2)):
        path.append(attr if attr else ast.literal_eval(index))
    parsed = []
    for f in filters:
        fm = _FILTER.match(f)
        name = fm.group(1) if fm else f
        if fm is None or (name not in FILTERS and name != "default"):
            raise UserError(
                f"unsupported template filter `{name}` in `{{{{ {expr} }}}}`",
                where=where,
                hint=f"supported filters: {', '.join(sorted([*FILTERS, 'default']))}",
            )
        try:
            args = ast.literal_eval(f"({fm.group(2)},)") if fm.group(2) and fm.group(2).strip() else ()
        except (ValueError, SyntaxError):
            raise UserError(
                f"filter `{name}` takes literal arguments, got ({fm.group(2)})",
                where=where,
                hint='e.g. | join(", ") or | default("none")',
            ) from None
        parsed.append((name, tuple(args)))
    if any(n == "default" for n, _ in parsed) and parsed[0][0] != "default":
        raise UserError(
            "`| default(…)` must be the first filter",
            where=where,
            hint='write {{ x | default("none") | upper }}',
        )
    return Expr(m.group(1), tuple(path), tuple(parsed))


def _split_pipes(expr: str) -> list[str]:
    """`a | join(", ") | trim` → ["a", 'join(", ")', "trim"]: pipes inside quotes stay."""
    parts, current, quote = [], "", ""
    for ch in expr:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "|":
            parts.append(current)
            current = ""
            continue
        current += ch
    return [*parts, current]


@dataclass
class Template:
    """A promptfoo template as flywheel template text plus the placeholders computed per case."""

    text: str
    derived: dict[str, Expr]

    def variables(self) -> set[str]:
        """The test vars the template reads (a `default` filter makes its variable optional)."""
        plain = {m.group(1) for m in _EXPR.finditer(self.text) if m.group(1) not in self.derived}
        return plain | {e.var for e in self.derived.values() if not any(n == "default" for n, _ in e.filters)}

    def values(self, vars: Mapping[str, Any], where: str) -> dict[str, Any]:
        """The derived placeholders' values for one case's vars."""
        return {name: _text(expr.value(vars, where)) for name, expr in self.derived.items()}


def _text(value: Any) -> Any:
    if isinstance(value, bool):  # promptfoo (JavaScript) prints true / false
        return json.dumps(value)
    return value if isinstance(value, str | int | float) else json.dumps(value, ensure_ascii=False)


def translate(text: str, where: str) -> Template:
    """promptfoo template → flywheel template (`{{name}}` only) and the derived placeholders it needs."""
    tag = _TAG.search(text)
    if tag is not None:
        raise UserError(
            f"template tags are not supported: `{tag.group(0)[:40]}`",
            where=where,
            hint="flywheel renders {{ variables }} with filters (| dump, | trim …), not {% %} logic; "
            "compute the value into a var instead",
        )
    derived: dict[str, Expr] = {}

    def sub(m: re.Match[str]) -> str:
        expr = m.group(1)
        if _NAME.fullmatch(expr):
            return "{{" + expr + "}}"
        parsed = parse(expr, where)
        base = "__".join([parsed.var, *(str(p) for p in parsed.path), *(n for n, _ in parsed.filters)])
        name, n = base, 1
        while name in derived and derived[name] != parsed:
            n += 1
            name = f"{base}_{n}"
        derived[name] = parsed
        return "{{" + name + "}}"

    from flywheel.prompts.render import template_problem

    translated = _EXPR.sub(sub, text)
    problem = template_problem(translated)
    if problem:
        raise UserError(f"prompt: {problem}", where=where)
    return Template(translated, derived)


def render_value(value: Any, vars: Mapping[str, Any], where: str) -> Any:
    """An assertion's value with the test's vars filled in (texts, and texts inside lists and mappings)."""
    from flywheel.prompts.render import render

    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        template = translate(value, where)
        given = {**{k: _text(v) for k, v in vars.items()}, **template.values(vars, where)}
        return render(template.text, given, where=where)
    if isinstance(value, list):
        return [render_value(v, vars, where) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, vars, where) for k, v in value.items()}
    return value

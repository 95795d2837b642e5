"""Rendering prompt templates: `{{ name }}` placeholders, per-family source blocks, language detection.

The renderer is deliberately tiny and safe: it substitutes `{{ name }}` in ONE pass (a value containing
`{{` is never expanded again, so retrieved text cannot inject template syntax), has no loops, filters or
attribute access, and a missing variable is an error rather than an empty string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from flywheel.config import ModelAlias
from flywheel.errors import UserError
from flywheel.text import detect_language

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_OPEN_OR_CLOSE = re.compile(r"\{\{|\}\}")
_JINJA_TAG = re.compile(r"\{%-?\s*[A-Za-z]\w*.{0,200}?%\}|\{#.{0,200}?#\}", re.DOTALL)  # {% if x %}, {# note #}

SourceStyle = Literal["xml", "markdown", "json"]
PromptFormat = Literal["auto", "xml", "markdown", "json"]
# Model families that read XML-tagged context best; every other family gets Markdown sections.
XML_FAMILIES = frozenset({"anthropic", "claude"})
# Providers that continue a trailing assistant message (prefill); elsewhere the prefill is not sent.
PREFILL_PROVIDERS = frozenset({"anthropic"})


def placeholders(template: str) -> list[str]:
    """The variable names a template uses, in order of first use."""
    seen: dict[str, None] = {}
    for m in PLACEHOLDER.finditer(template):
        seen.setdefault(m.group(1), None)
    return list(seen)


def template_problem(template: str) -> str | None:
    """Why a template is malformed (a stray or unclosed `{{` / `}}`, a Jinja tag), or None when it is fine."""
    found = template_problem_at(template)
    return found[0] if found else None


def template_problem_at(template: str) -> tuple[str, int] | None:
    """(why, offset in `template`) for the first malformed placeholder or Jinja tag, or None when it is fine.

    `{% … %}` and `{# … #}` are refused: the renderer has no tags, so `{% if x %}` would reach the model as text."""
    tag = _JINJA_TAG.search(template)
    inside = {i for p in PLACEHOLDER.finditer(template) for i in range(p.start(), p.end())}
    bad = next((m for m in _OPEN_OR_CLOSE.finditer(template) if m.start() not in inside), None)
    if tag is not None and (bad is None or tag.start() < bad.start()):
        shown = tag.group(0) if len(tag.group(0)) <= 60 else tag.group(0)[:57] + "..."
        return (f"`{shown}` is a Jinja tag; flywheel templates only substitute {{{{ name }}}} (no if, for, "
                "filters or comments), so it would reach the model as literal text"), tag.start()
    if bad is None:
        return None
    snippet = template[max(0, bad.start() - 20): bad.end() + 20].replace("\n", " ")
    return f"malformed placeholder near `{snippet}` (write {{{{ name }}}} with a plain variable name)", bad.start()


def render(template: str, variables: Mapping[str, Any], *, where: str | None = None) -> str:
    """Substitute every `{{ name }}`; a name missing from `variables` raises UserError."""
    missing = [n for n in placeholders(template) if n not in variables]
    if missing:
        from flywheel.registry import did_you_mean

        close = [c for n in missing for c in did_you_mean(n, sorted(variables))[:1]]
        mean = f" — did you mean {' or '.join(close)}?" if close else ""
        raise UserError(f"prompt template uses undefined variable(s): {', '.join(missing)}{mean}", where=where,
                        hint=f"pass them when rendering, or remove them; given: {', '.join(sorted(variables))}")

    def sub(m: re.Match) -> str:
        value = variables[m.group(1)]
        return "" if value is None else str(value)

    return PLACEHOLDER.sub(sub, template)


# ---------------------------------------------------------------- model families


def family_of(alias: ModelAlias | None) -> str:
    """The prompt-formatting family of a model alias: `family:` when set, else guessed from provider/model."""
    if alias is None:
        return "openai"
    if alias.family:
        return alias.family.lower()
    model = (alias.model or "").lower()
    if alias.provider == "anthropic" or "claude" in model:
        return "anthropic"
    for family in ("qwen", "deepseek", "llama", "mistral", "gemma", "glm", "kimi", "moonshot", "gpt"):
        if family in model:
            return "openai" if family == "gpt" else family
    return "extractive" if alias.provider == "extractive" else "openai"


def source_style(family: str, format: PromptFormat = "auto") -> SourceStyle:
    """The structured-input style: the prompt's `format:` when set, else XML sections for Anthropic/Claude-family
    models and Markdown sections for everyone else."""
    if format != "auto":
        return format
    return "xml" if family.lower() in XML_FAMILIES else "markdown"


def supports_prefill(alias: ModelAlias | None) -> bool:
    """Whether the alias's provider continues a trailing assistant message (Anthropic does)."""
    return alias is not None and alias.provider in PREFILL_PROVIDERS


@dataclass(frozen=True)
class SourceItem:
    """One retrieved passage as the prompt shows it; `id` is the n the model cites as [n]."""

    id: int
    text: str
    source: str = ""
    location: str | None = None
    title: str | None = None


def source_items(value: Any) -> list[SourceItem]:
    """Passages as prompt sources: SourceItems as they are; a text, a list of texts, or of mappings
    {text, source?, location?, title?, id?} numbered from 1 in order (a mapping's own `id` is kept)."""
    if value is None or value == "":
        return []
    rows = value if isinstance(value, list | tuple) else [value]
    items = []
    for n, row in enumerate(rows, start=1):
        if isinstance(row, SourceItem):
            items.append(row)
        elif isinstance(row, Mapping):
            if "text" not in row:
                raise UserError(f"source {n} has no `text`", hint="give each source {text, source?, location?, "
                                "title?}, or a plain text")
            items.append(SourceItem(id=int(row.get("id") or n), text=str(row["text"]),
                                    source=str(row.get("source") or ""), location=row.get("location"),
                                    title=row.get("title")))
        else:
            items.append(SourceItem(id=n, text=str(row)))
    return items


def _xml_attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace("\n", " ")


def format_sources(items: Sequence[SourceItem], block: str, style: SourceStyle, separator: str = "\n\n",
                   *, where: str | None = None) -> str:
    """Render each passage with the style's block template and join them.

    Attribute-like fields are XML-escaped in the xml style; passage text is inserted verbatim so that a quote
    the model copies from it is byte-identical to the source (the grounding check relies on that).
    """
    if style == "json":  # one array of objects (the text is JSON-escaped: a copied quote may differ in escapes)
        rows = [{k: v for k, v in {"id": i.id, "source": i.source, "location": i.location, "title": i.title,
                                   "text": i.text.strip()}.items() if v not in (None, "")} for i in items]
        return json.dumps(rows, ensure_ascii=False, indent=2) if rows else ""
    out = []
    for item in items:
        fields = {"id": item.id, "text": item.text.strip(), "source": item.source,
                  "location": item.location or "", "title": item.title or ""}
        if style == "xml":
            fields.update({k: _xml_attr(str(fields[k])) for k in ("source", "location", "title")})
        text = render(block, fields, where=where)
        out.append("\n".join(line.rstrip() for line in text.splitlines()))
    return separator.join(out)


# ---------------------------------------------------------------- language


def language_of(text: str) -> str:
    """The language to answer `text` in: `flywheel.text.detect_language`, English when it has no letters."""
    return detect_language(text) or "en"


def pick_language(messages: Mapping[str, str], language: str, default: str = "en") -> str:
    """The message for `language`, else for `default`, else the first one."""
    if language in messages:
        return messages[language]
    if default in messages:
        return messages[default]
    return next(iter(messages.values()), "")

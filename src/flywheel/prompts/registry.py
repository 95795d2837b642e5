"""Prompt files: YAML with a system message and a `{{ var }}` template, versioned by content hash.

    # prompts/docs_qa.yaml
    name: docs_qa
    description: …
    system: |- …
    template: |- … {{sources}} … {{question}}
    sources: {xml: "<source id=\"{{id}}\">…", markdown: "### [{{id}}] …", separator: "\\n\\n"}
    no_answer: {en: "I don't know …", zh: "我不知道…"}

A prompt is looked up by name in the project's `prompts/` folder first and in the prompts packaged with
flywheel (`flywheel/prompts/builtin/`) second, or loaded from an explicit path. Its `version` is a hash of
everything that changes what the model sees (system, template, source blocks, no-answer messages) — not of
comments, key order or the description — and is recorded on spans as `flywheel.prompt.version`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flywheel.config import read_yaml, validation_error
from flywheel.errors import ConfigError
from flywheel.prompts.render import (
    SourceItem,
    SourceStyle,
    format_sources,
    pick_language,
    placeholders,
    render,
    source_style,
    template_problem,
)
from flywheel.types import Message, content_hash

PROMPTS_DIR = "prompts"
SOURCE_FIELDS = frozenset({"id", "text", "source", "location", "title"})
_SUFFIXES = (".yaml", ".yml")


class SourceBlocks(BaseModel):
    model_config = ConfigDict(extra="forbid")
    xml: str = '<source id="{{id}}" name="{{source}}" location="{{location}}">\n{{text}}\n</source>'
    markdown: str = "### [{{id}}] {{source}} {{location}}\n{{text}}"
    separator: str = "\n\n"


class PromptFile(BaseModel):
    """The schema of a prompt file."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    description: str = ""
    system: str = ""
    template: str
    sources: SourceBlocks = Field(default_factory=SourceBlocks)
    no_answer: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt filled in for one request."""

    name: str
    version: str
    system: str
    user: str
    style: SourceStyle

    def messages(self) -> list[Message]:
        head = [Message(role="system", content=self.system)] if self.system else []
        return [*head, Message(role="user", content=self.user)]


@dataclass(frozen=True)
class Prompt:
    name: str
    template: str
    system: str = ""
    description: str = ""
    sources: SourceBlocks = field(default_factory=SourceBlocks)
    no_answer: dict[str, str] = field(default_factory=dict)
    path: str | None = None  # where it was loaded from (None: built in Python)

    @cached_property
    def version(self) -> str:
        body = {"system": self.system, "template": self.template, "sources": self.sources.model_dump(),
                "no_answer": self.no_answer}
        return content_hash(json.dumps(body, sort_keys=True, ensure_ascii=False), n=12)

    def variables(self) -> list[str]:
        """Variables the caller must supply (`sources` is built from the passages given to render)."""
        return [v for v in placeholders(self.system + "\n" + self.template) if v != "sources"]

    def render(self, *, sources: Sequence[SourceItem] = (), family: str = "openai", **variables: Any) -> RenderedPrompt:
        """Fill the template. `sources` become `{{sources}}`, formatted as XML or Markdown for `family`."""
        style = source_style(family)
        block = self.sources.xml if style == "xml" else self.sources.markdown
        values = dict(variables)
        values["sources"] = format_sources(sources, block, style, self.sources.separator, where=self.path)
        return RenderedPrompt(
            name=self.name, version=self.version, style=style,
            system=render(self.system, values, where=self.path),
            user=render(self.template, values, where=self.path),
        )

    def no_answer_message(self, language: str, default: str = "I don't know.") -> str:
        return pick_language(self.no_answer, language) if self.no_answer else default


def load_prompt(path: str | Path) -> Prompt:
    """Read and validate a prompt file; mistakes raise ConfigError naming file:line."""
    path = Path(path)
    data, lines = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError("a prompt file must be a mapping with at least `template:`", where=f"{path}:1",
                          hint="see flywheel/prompts/builtin/docs_qa.yaml for an example")
    try:
        spec = PromptFile.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, path, lines) from None

    def line_of(*keys: str) -> str:
        return f"{path}:{lines.get(tuple(keys), lines.get(keys[:1], 1))}"

    checks = {("system",): spec.system, ("template",): spec.template,
              ("sources", "xml"): spec.sources.xml, ("sources", "markdown"): spec.sources.markdown}
    for keys, text in checks.items():
        problem = template_problem(text)
        if problem:
            raise ConfigError(f"`{'.'.join(keys)}`: {problem}", where=line_of(*keys),
                              hint="placeholders look like {{question}}; write literal braces outside {{ }}")
    for style in ("xml", "markdown"):
        unknown = set(placeholders(getattr(spec.sources, style))) - SOURCE_FIELDS
        if unknown:
            raise ConfigError(f"`sources.{style}` uses unknown field(s) {', '.join(sorted(unknown))}",
                              where=line_of("sources", style),
                              hint=f"a source block may use {', '.join(sorted(SOURCE_FIELDS))}")
    return Prompt(name=spec.name or path.stem, template=spec.template, system=spec.system,
                  description=spec.description, sources=spec.sources, no_answer=dict(spec.no_answer),
                  path=str(path))


def builtin_dir() -> Path:
    return Path(str(resources.files("flywheel.prompts").joinpath("builtin")))


class PromptRegistry:
    """Prompts of one project: `<root>/prompts/<name>.yaml`, falling back to the packaged ones."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).resolve() if root is not None else None
        self._cache: dict[tuple[str, int, int], Prompt] = {}

    def _candidates(self, name: str) -> list[Path]:
        dirs = ([self.root / PROMPTS_DIR] if self.root else []) + [builtin_dir()]
        return [d / f"{name}{suffix}" for d in dirs for suffix in _SUFFIXES]

    def path_of(self, ref: str, *, where: str | None = None) -> Path:
        """Resolve a prompt name (`docs_qa`) or path (`prompts/docs_qa.yaml`, relative to the project)."""
        if ref.endswith(_SUFFIXES) or "/" in ref or "\\" in ref:
            path = Path(ref)
            if not path.is_absolute() and self.root is not None:
                path = self.root / path
            if not path.is_file():
                raise ConfigError(f"prompt file {path} does not exist", where=where,
                                hint="fix the path, or run `flywheel init` to write prompts/docs_qa.yaml")
            return path
        for path in self._candidates(ref):
            if path.is_file():
                return path
        raise ConfigError(f"unknown prompt '{ref}'", where=where,
                        hint=f"known prompts: {', '.join(self.names()) or 'none'}; "
                             f"add {PROMPTS_DIR}/{ref}.yaml to the project")

    def get(self, ref: str, *, where: str | None = None) -> Prompt:
        """The prompt named (or at path) `ref`, re-read when its file changes."""
        path = self.path_of(ref, where=where)
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        prompt = self._cache.get(key)
        if prompt is None:
            prompt = self._cache[key] = load_prompt(path)
        return prompt

    def names(self) -> list[str]:
        dirs = ([self.root / PROMPTS_DIR] if self.root else []) + [builtin_dir()]
        found = {p.stem for d in dirs if d.is_dir() for p in d.iterdir() if p.suffix in _SUFFIXES}
        return sorted(found)

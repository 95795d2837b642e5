"""A prompt and one rendering of it: system + template, source blocks, n-shot examples, prefill, reasoning scaffold,
structured-input format. `Prompt.content()` is everything that changes what the model sees; its hash is the
version recorded on spans (`flywheel.prompt.version`), eval runs and the store.

Keys added after the first release (examples, shots, prefill, reasoning, format) enter the content only when they
differ from their defaults, so a prompt file that does not use them keeps the version it always had.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict

from flywheel.errors import UserError
from flywheel.prompts.examples import Example, Shots, examples_body, format_examples, select_examples
from flywheel.prompts.reasoning import Reasoning, strip_reasoning
from flywheel.prompts.render import (
    PLACEHOLDER,
    XML_FAMILIES,
    PromptFormat,
    SourceItem,
    SourceStyle,
    format_sources,
    pick_language,
    placeholders,
    render,
    source_items,
    source_style,
)
from flywheel.protocols import Embedder
from flywheel.types import Message, content_hash

# Asked in the user turn when the provider cannot continue a trailing assistant message.
PREFILL_FALLBACK = "Begin your answer with exactly: {prefill}"
BUILT_VARIABLES = frozenset({"sources", "examples"})  # filled by render, not by the caller


class SourceBlocks(BaseModel):
    model_config = ConfigDict(extra="forbid")
    xml: str = '<source id="{{id}}" name="{{source}}" location="{{location}}">\n{{text}}\n</source>'
    markdown: str = "### [{{id}}] {{source}} {{location}}\n{{text}}"
    separator: str = "\n\n"


def text_where(path: str | None, start: tuple[int, bool] | None, text: str, offset: int) -> str | None:
    """`path:line` of `text[offset]` for a field whose key is on line `start[0]`: exact in a literal `|` block
    (`start[1]`), whose text begins on the next line; else the key's line."""
    if path is None or start is None:
        return path
    line, block = start
    return f"{path}:{line + 1 + text[:offset].count(chr(10)) if block else line}"


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt filled in for one request."""

    name: str
    version: str
    system: str
    user: str
    style: SourceStyle
    turns: tuple[Message, ...] = ()  # n-shot examples as user/assistant turns, before the request
    prefill: str = ""  # the assistant prefix the prompt asks for
    prefill_sent: bool = False  # sent as a trailing assistant message (the provider continues it)
    reasoning_tag: str | None = None  # the reasoning scaffold is on: strip <tag>…</tag> from answers
    examples: tuple[int, ...] = ()  # indexes of the examples used, in order

    def messages(self) -> list[Message]:
        head = [Message(role="system", content=self.system)] if self.system else []
        tail = [Message(role="assistant", content=self.prefill)] if self.prefill_sent else []
        return [*head, *self.turns, Message(role="user", content=self.user), *tail]

    def finish(self, text: str) -> str:
        """The model's reply as the final answer: the prefill put back in front where it was sent as the start of
        the assistant turn (the provider returns only the continuation), then the reasoning removed."""
        if self.prefill_sent and not text.startswith(self.prefill):
            text = self.prefill + text
        return strip_reasoning(text, self.reasoning_tag) if self.reasoning_tag else text


@dataclass(frozen=True)
class Prompt:
    name: str
    template: str
    system: str = ""
    description: str = ""
    sources: SourceBlocks = field(default_factory=SourceBlocks)
    no_answer: dict[str, str] = field(default_factory=dict)
    path: str | None = None  # where it was loaded from (None: built in Python)
    examples: tuple[Example, ...] = ()
    shots: Shots = field(default_factory=Shots)
    prefill: str = ""
    reasoning: Reasoning | None = None
    format: PromptFormat = "auto"
    warnings: tuple[str, ...] = ()  # e.g. fewer than 5 examples
    label: str | None = None  # the store label it was loaded by
    # Where each text field starts in its file: {field: (line, literal block)}, for errors at the exact line.
    lines: dict[str, tuple[int, bool]] = field(default_factory=dict, compare=False, repr=False)

    def content(self) -> dict[str, Any]:
        """What the model sees, as plain data: hashed into the version and stored with it."""
        body: dict[str, Any] = {"system": self.system, "template": self.template,
                                "sources": self.sources.model_dump(), "no_answer": dict(self.no_answer)}
        if self.examples:
            body["examples"] = examples_body(self.examples)
            if self.shots != Shots():
                body["shots"] = self.shots.model_dump()
        if self.prefill:
            body["prefill"] = self.prefill
        if self.reasoning is not None:
            body["reasoning"] = self.reasoning.model_dump()
        if self.format != "auto":
            body["format"] = self.format
        return body

    @cached_property
    def version(self) -> str:
        return content_hash(json.dumps(self.content(), sort_keys=True, ensure_ascii=False), n=12)

    @classmethod
    def from_content(cls, name: str, content: Mapping[str, Any], *, description: str = "", path: str | None = None,
                     label: str | None = None) -> Prompt:
        """The prompt a stored `content()` describes."""
        return cls(name=name, template=content["template"], system=content.get("system", ""),
                   description=description, sources=SourceBlocks.model_validate(content.get("sources", {})),
                   no_answer=dict(content.get("no_answer", {})), path=path,
                   examples=tuple(Example.model_validate(e) for e in content.get("examples", [])),
                   shots=Shots.model_validate(content.get("shots", {})), prefill=content.get("prefill", ""),
                   reasoning=(Reasoning.model_validate(content["reasoning"]) if content.get("reasoning") is not None
                              else None),
                   format=content.get("format", "auto"), label=label)

    def variables(self) -> list[str]:
        """Variables the caller must supply (`sources` and `examples` are built by render)."""
        return [v for v in placeholders(self.system + "\n" + self.template) if v not in BUILT_VARIABLES]

    def style_for(self, family: str) -> SourceStyle:
        return source_style(family, self.format)

    def render(self, *, sources: Sequence[SourceItem | Mapping[str, Any] | str] = (), family: str = "openai",
               prefill: bool | None = None,
               embedder: Embedder | None = None, **variables: Any) -> RenderedPrompt:
        """Fill the template for a model of `family`.

        `sources` (SourceItems, or {text, source, location, title} mappings or texts numbered from 1) become
        `{{sources}}` in the prompt's structured-input style (`format:`; auto = XML for the
        Anthropic/Claude family, Markdown otherwise). Examples are picked per `shots:` (the query is the
        `shots.query` variable, else `question`, else `input`; `embedder` replaces lexical similarity) and go
        into `{{examples}}` where the template has it, else before the request as user/assistant turns.
        `prefill`: whether the provider continues a trailing assistant message (`supports_prefill(alias)`);
        None guesses it from the family (Claude-family models do).
        """
        self.check_variables(variables)
        style = self.style_for(family)
        block = self.sources.xml if style == "xml" else self.sources.markdown
        values = dict(variables)
        values["sources"] = format_sources(source_items(list(sources)), block, style, self.sources.separator,
                                           where=self.path)
        chosen = self._chosen(values, embedder)
        picked = [self.examples[i] for i in chosen]
        inline = "examples" in placeholders(self.system + "\n" + self.template)
        values["examples"] = format_examples(picked, style) if inline else ""
        turns = () if inline else tuple(m for e in picked for m in e.turns())
        system = render(self.system, values, where=self.path)
        if self.reasoning is not None:
            system = f"{system}\n\n{self.reasoning.scaffold()}" if system else self.reasoning.scaffold()
        user = render(self.template, values, where=self.path)
        sent = bool(self.prefill) and (family.lower() in XML_FAMILIES if prefill is None else prefill)
        if self.prefill and not sent:
            user = f"{user}\n\n{PREFILL_FALLBACK.format(prefill=self.prefill)}"
        return RenderedPrompt(name=self.name, version=self.version, style=style, system=system, user=user,
                              turns=turns, prefill=self.prefill, prefill_sent=sent,
                              reasoning_tag=self.reasoning.tag if self.reasoning is not None else None,
                              examples=tuple(chosen))

    def where(self, field_name: str, text: str = "", offset: int = 0) -> str | None:
        """`path:line` of `text[offset]`, `text` being the value of `field_name` (exact inside a `|` block)."""
        return text_where(self.path, self.lines.get(field_name), text, offset)

    def check_variables(self, given: Mapping[str, Any] | Collection[str]) -> None:
        """A placeholder the caller did not pass is an error at its file:line, naming what was passed (`given`:
        the variables, or only their names — an app checks its prompt when it is built)."""
        missing = [v for v in self.variables() if v not in given]
        if not missing:
            return
        from flywheel.registry import did_you_mean

        first = missing[0]
        field_name, text = next((f, t) for f, t in (("system", self.system), ("template", self.template))
                                if first in placeholders(t))
        offset = next(m.start() for m in PLACEHOLDER.finditer(text) if m.group(1) == first)
        close = [c for n in missing for c in did_you_mean(n, sorted(given))[:1]]
        mean = f" — did you mean {' or '.join(close)}?" if close else ""
        passed = ", ".join(sorted(given)) or "none"
        raise UserError(f"prompt '{self.name}' uses undefined variable(s): {', '.join(missing)}{mean}",
                        where=self.where(field_name, text, offset),
                        hint=f"pass them when rendering, or remove them from the prompt; given: {passed} "
                             "(`sources` and `examples` are filled in by flywheel)")

    def _chosen(self, values: Mapping[str, Any], embedder: Embedder | None) -> list[int]:
        if not self.examples:
            return []
        if self.shots.query and self.shots.query not in values:  # a typo would silently pick the first examples
            given = ", ".join(sorted(set(values) - BUILT_VARIABLES))
            raise UserError(f"`shots.query` names the variable '{self.shots.query}', which was not given",
                            where=self.path, hint=f"name one of the variables passed: {given}")
        keys = [self.shots.query] if self.shots.query else ["question", "input"]
        query = next((str(values[k]) for k in keys if values.get(k)), None)
        return select_examples(self.examples, self.shots, query, embedder)

    def strip_reasoning(self, text: str) -> str:
        """`text` without the reasoning blocks this prompt asks for (unchanged when reasoning is off)."""
        return strip_reasoning(text, self.reasoning.tag) if self.reasoning is not None else text

    def no_answer_message(self, language: str, default: str = "I don't know.") -> str:
        return pick_language(self.no_answer, language) if self.no_answer else default

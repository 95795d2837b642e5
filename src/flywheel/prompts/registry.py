"""Prompt files: YAML with a system message and a `{{ var }}` template, versioned by content hash.

    # prompts/docs_qa.yaml
    name: docs_qa
    description: …
    system: |- …
    template: |- … {{sources}} … {{question}}
    sources: {xml: "<source id=\"{{id}}\">…", markdown: "### [{{id}}] …", separator: "\\n\\n"}
    no_answer: {en: "I don't know …", zh: "我不知道…"}
    examples: [{input: …, output: …}, …]     # n-shot; `shots:` picks and orders them per request
    shots: {k: 3, select: similar, shuffle: false, seed: 0}
    prefill: "…"                             # the start of the assistant's answer
    reasoning: true                          # think in <thinking>…</thinking>, stripped from the answer
    format: auto                             # auto | xml | markdown | json (structured input)

A prompt is looked up by name in the project's `prompts/` folder first and in the prompts packaged with
flywheel (`flywheel/prompts/builtin/`) second, or loaded from an explicit path, or by label / version from the
store (`flywheel.prompts.versions`). Its `version` is a hash of everything that changes what the model sees —
not of comments, key order or the description — and is recorded on spans as `flywheel.prompt.version`.
"""

from __future__ import annotations

import logging
import re
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from flywheel.config import read_yaml, validation_error
from flywheel.config import where as where_in
from flywheel.config.yaml_io import anchored, read_user_text
from flywheel.errors import ConfigError, UserError
from flywheel.prompts.examples import MIN_EXAMPLES, Example, ExampleTurn, Shots
from flywheel.prompts.prompt import Prompt, RenderedPrompt, SourceBlocks, text_where
from flywheel.prompts.reasoning import Reasoning
from flywheel.prompts.render import PromptFormat, placeholders, template_problem_at
from flywheel.protocols import StoreLike
from flywheel.registry import did_you_mean, unknown_name

__all__ = ["Prompt", "PromptFile", "PromptRegistry", "RenderedPrompt", "SourceBlocks", "builtin_dir",
           "load_prompt", "load_prompt_file"]

log = logging.getLogger(__name__)

PROMPTS_DIR = "prompts"
SOURCE_FIELDS = frozenset({"id", "text", "source", "location", "title"})
_SUFFIXES = (".yaml", ".yml")
MAX_NAME = 200  # the store's column


def name_problem(value: str) -> str | None:
    """Why `value` cannot be a prompt's name, or None. The name keys the store and is how apps and the CLI refer
    to the prompt, so it must not read as a path (`prompt: a/b` is a file) nor differ by a stray space."""
    if value != value.strip():
        return f"has leading or trailing spaces ({value!r}); write {value.strip()!r}"
    if len(value) > MAX_NAME:
        return f"is {len(value)} characters long; at most {MAX_NAME}"
    if "/" in value or "\\" in value or value.lower().endswith(_SUFFIXES):
        return f"{value!r} reads as a file path; a name has no '/', '\\' or .yaml ending"
    if not value.isprintable():
        return f"{value!r} contains a control character (a tab or line break)"
    return None


class PromptFile(BaseModel):
    """The schema of a prompt file."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    description: str = ""
    system: str = ""
    template: str
    sources: SourceBlocks = Field(default_factory=SourceBlocks)
    no_answer: dict[str, str] = Field(default_factory=dict)
    examples: list[Example] = Field(default_factory=list)
    shots: Shots = Field(default_factory=Shots)
    prefill: str = ""
    reasoning: bool | Reasoning = False
    format: PromptFormat = "auto"

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None  # the file name
        problem = name_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("no_answer", mode="before")
    @classmethod
    def _one_message(cls, value: Any) -> Any:
        return {"en": value} if isinstance(value, str) else value  # one message for every language

    @field_validator("reasoning", mode="before")
    @classmethod
    def _reasoning_shape(cls, value: Any) -> Any:
        # without this, `reasoning: maybe` reads "reasoning.bool: Input should be a valid boolean (+1 more)"
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, dict):  # validated here: a bad tag would also read "reasoning.bool: …"
            try:
                return Reasoning.model_validate(value)
            except ValidationError as exc:
                first = exc.errors()[0]
                at = ".".join(str(p) for p in first["loc"])
                why = ("a tag starts with a letter and has up to 40 letters, digits, '_' or '-' (e.g. scratchpad)"
                       if first["type"] == "string_pattern_mismatch" else first["msg"])
                raise ValueError(f"`{at}`: {why}, got {first.get('input')!r}") from None
        raise ValueError(f"must be true, false or {{tag: NAME}}, got {value!r}")


# The models whose keys a mapping at each position of a prompt file may use, for "did you mean" on a typo.
_KEYS_AT: dict[tuple[str, ...], type[BaseModel]] = {
    (): PromptFile, ("sources",): SourceBlocks, ("shots",): Shots, ("reasoning",): Reasoning,
    ("examples", "*"): Example, ("examples", "*", "messages", "*"): ExampleTurn,
}


def _unknown_keys(data: Any, path: Path, lines: dict, at: tuple = ()) -> None:
    """A key no field has, with the closest valid ones and the list of all, at its file:line."""
    if isinstance(data, list):
        for i, item in enumerate(data):
            _unknown_keys(item, path, lines, (*at, i))
        return
    if not isinstance(data, dict):
        return
    pattern = tuple("*" if isinstance(p, int) else p for p in at)
    model = _KEYS_AT.get(pattern)
    if model is None:
        return
    valid = list(model.model_fields)
    for key, value in data.items():
        if key not in valid:
            close = did_you_mean(str(key), valid)
            field = ".".join(map(str, (*at, key)))
            mean = (" — did you mean " + " or ".join(f"`{c}`" for c in close) + "?") if close else ""
            raise ConfigError(f"unknown field `{key}`{mean} (at `{field}`)", where=where_in(path, lines, (*at, key)),
                              hint=f"valid fields here: {', '.join(valid)}")
        _unknown_keys(value, path, lines, (*at, key))


def load_prompt_file(path: str | Path) -> Prompt:
    """Read and validate a prompt file; mistakes raise ConfigError naming file:line."""
    path = Path(path)
    text = read_user_text(path)
    data, lines = read_yaml(path, text)
    raw = text.splitlines()
    if not isinstance(data, dict):
        raise ConfigError("a prompt file must be a mapping with at least `template:`", where=f"{path}:1",
                          hint="see flywheel/prompts/builtin/docs_qa.yaml for an example")
    _unknown_keys(data, path, lines)
    try:
        spec = PromptFile.model_validate(data)
    except ValidationError as exc:
        error = validation_error(exc, path, lines)
        if error.hint == _GENERIC_HINT:  # `flywheel init` writes no prompt with examples, shots or prefill
            loc = exc.errors()[0]["loc"]
            error = ConfigError(error.message, where=error.where,
                                hint=_EXAMPLE_HINT if loc and loc[0] == "examples" else _FILE_HINT)
        raise error from None

    def line_of(*keys: str) -> str:
        return f"{path}:{lines.get(tuple(keys), lines.get(keys[:1], 1))}"

    starts = {".".join(keys): _text_start(raw, lines.get(keys)) for keys in _TEXT_FIELDS if keys in lines}

    if not spec.template.strip():
        raise ConfigError("`template` is empty: it is the user message the model answers", where=line_of("template"),
                          hint="write the request, e.g. template: \"Question: {{question}}\"")

    checks = {("system",): spec.system, ("template",): spec.template,
              ("sources", "xml"): spec.sources.xml, ("sources", "markdown"): spec.sources.markdown}
    for keys, text in checks.items():
        found = template_problem_at(text)
        if found:
            problem, offset = found
            at = text_where(str(path), starts.get(".".join(keys)), text, offset) or line_of(*keys)
            raise ConfigError(f"`{'.'.join(keys)}`: {problem}", where=at,
                              hint="placeholders look like {{question}}; write literal braces outside {{ }}")
    for style in ("xml", "markdown"):
        unknown = set(placeholders(getattr(spec.sources, style))) - SOURCE_FIELDS
        if unknown:
            raise ConfigError(f"`sources.{style}` uses unknown field(s) {', '.join(sorted(unknown))}",
                              where=line_of("sources", style),
                              hint=f"a source block may use {', '.join(sorted(SOURCE_FIELDS))}")
    warnings: list[str] = []
    if 0 < len(spec.examples) < MIN_EXAMPLES:
        warnings.append(f"{line_of('examples')}: only {len(spec.examples)} example(s); n-shot prompts work best "
                        f"with at least {MIN_EXAMPLES} representative ones")
    if "examples" in placeholders(spec.system + "\n" + spec.template) and not spec.examples:
        warnings.append(f"{line_of('template')}: `{{{{examples}}}}` is used but the file has no `examples:`")
    reasoning = (spec.reasoning if isinstance(spec.reasoning, Reasoning)
                 else Reasoning() if spec.reasoning else None)
    return Prompt(name=spec.name or path.stem, template=spec.template, system=spec.system,
                  description=spec.description, sources=spec.sources, no_answer=dict(spec.no_answer),
                  path=str(path), examples=tuple(spec.examples), shots=spec.shots, prefill=spec.prefill,
                  reasoning=reasoning, format=spec.format, warnings=tuple(warnings), lines=starts)


_GENERIC_HINT = "see the commented example written by `flywheel init`"
_EXAMPLE_HINT = ("write each example as {input: …, output: …}, or as {messages: [{role: user, content: …}, "
                 "{role: assistant, content: …}]} ending with the assistant (docs/prompts.md)")
_FILE_HINT = "see the prompt file format in docs/prompts.md (`flywheel prompts show docs_qa` prints one)"
_TEXT_FIELDS = (("system",), ("template",), ("sources", "xml"), ("sources", "markdown"))


def _text_start(raw: list[str], key_line: int | None) -> tuple[int, bool]:
    """(key line, whether the value is a literal `|` block, whose text starts on the next line)."""
    line = key_line or 1
    text = raw[line - 1] if 0 < line <= len(raw) else ""
    return line, re.search(r":\s*\|[-+0-9]*\s*(#.*)?$", text) is not None


def _looks_like_path(ref: str | Path) -> bool:
    return isinstance(ref, Path) or str(ref).endswith(_SUFFIXES) or "/" in str(ref) or "\\" in str(ref)


def load_prompt(ref: str | Path, *, label: str | None = None, version: str | None = None,
                store: StoreLike | None = None, root: str | Path | None = None) -> Prompt:
    """A prompt by path (`prompts/qa.yaml`), by name (project `prompts/` then packaged), or — with `label` or
    `version` — the content stored for that name in `store`, whatever the file says today."""
    if label is None and version is None:
        if _looks_like_path(ref):
            return load_prompt_file(ref)
        return PromptRegistry(root, store=store).get(str(ref))
    name = Path(ref).stem if _looks_like_path(ref) else str(ref)
    if store is None:
        raise UserError(f"loading prompt '{name}' by {'label' if label else 'version'} needs the store",
                        hint="pass store=Store.open(project.store_url)")
    from flywheel.prompts.versions import PromptVersions

    return PromptVersions(store).load(name, label=label, version=version)


def builtin_dir() -> Path:
    return Path(str(resources.files("flywheel.prompts").joinpath("builtin")))


class PromptRegistry:
    """Prompts of one project: `<root>/prompts/<name>.yaml`, falling back to the packaged ones."""

    def __init__(self, root: str | Path | None = None, *, store: StoreLike | None = None,
                 log_warnings: bool = True):
        self.root = Path(root).resolve() if root is not None else None
        self.store = store  # when given, every version loaded is recorded there (once per process)
        self.log_warnings = log_warnings  # a prompt's warnings (too few examples) logged when it is (re)read
        self._cache: dict[tuple[str, int, int], Prompt] = {}
        self._recorded: set[tuple[str, str]] = set()

    def _dirs(self) -> list[Path]:
        return ([self.root / PROMPTS_DIR] if self.root else []) + [builtin_dir()]

    def _candidates(self, name: str) -> list[Path]:
        return [d / f"{name}{suffix}" for d in self._dirs() for suffix in _SUFFIXES]

    def path_of(self, ref: str, *, where: str | None = None) -> Path:
        """Resolve a prompt name (`docs_qa`) or path (`prompts/docs_qa.yaml`, relative to the project)."""
        if ref.endswith(_SUFFIXES) or "/" in ref or "\\" in ref:
            path = anchored(ref, self.root)  # relative to the project; `~` is the home folder
            if not path.is_file():
                raise ConfigError(f"prompt file {path} does not exist", where=where,
                                hint="fix the path, or run `flywheel init` to write prompts/docs_qa.yaml")
            return path
        files = self.files()
        for folder in self._dirs():  # the project's prompts first, by file name then by `name:`; then packaged
            for suffix in _SUFFIXES:
                if (folder / f"{ref}{suffix}").is_file():
                    return folder / f"{ref}{suffix}"
            declaring = [p for p in files if p.parent == folder and _declared_name(p) == ref]
            if len(declaring) > 1:
                raise ConfigError(f"prompt '{ref}' is declared by {len(declaring)} files: "
                                  f"{', '.join(str(p) for p in declaring)}", where=where,
                                  hint="give each file its own `name:` (or name the file you mean by its path)")
            if declaring:
                return declaring[0]
        raise unknown_name("prompt", ref, self.names(), where=where, error=ConfigError,
                           hint=f"add {PROMPTS_DIR}/{ref}.yaml to the project")

    def get(self, ref: str, *, where: str | None = None, label: str | None = None,
            version: str | None = None) -> Prompt:
        """The prompt named (or at path) `ref`, re-read when its file changes; with `label` or `version`, the
        content stored under that label / version (needs the registry's store)."""
        if label is not None or version is not None:
            if self.store is None:
                raise UserError(f"prompt '{ref}' pinned to {'label ' + label if label else 'version ' + str(version)}"
                                " needs the store", where=where, hint="open the registry with store=…")
            from flywheel.prompts.versions import PromptVersions

            # A path names the prompt its file declares (`name:`), which is what the store knows it by.
            renamed = None if _looks_like_path(ref) else self.renamed(ref)
            name = (load_prompt_file(self.path_of(ref, where=where)).name if _looks_like_path(ref)
                    else renamed[1] if renamed else ref)
            return PromptVersions(self.store).load(name, label=label, version=version, where=where)
        path = self.path_of(ref, where=where)
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        prompt = self._cache.get(key)
        if prompt is None:
            prompt = self._cache[key] = load_prompt_file(path)
            for w in prompt.warnings if self.log_warnings else ():
                log.warning("prompt %s", w)
        self._record(prompt)
        return prompt

    def _record(self, prompt: Prompt) -> None:
        if self.store is None or (prompt.name, prompt.version) in self._recorded:
            return
        from flywheel.prompts.versions import PromptVersions

        PromptVersions(self.store).record(prompt)
        self._recorded.add((prompt.name, prompt.version))

    def files(self) -> list[Path]:
        """Every prompt file: the project's, then the packaged ones the project does not override (by file name)."""
        found: dict[str, Path] = {}
        for d in self._dirs():
            for p in sorted(d.iterdir()) if d.is_dir() else []:
                if p.suffix in _SUFFIXES:
                    found.setdefault(p.stem, p)
        return list(found.values())

    def names(self) -> list[str]:
        """Every prompt by the name the store knows it by: its `name:`, else its file name."""
        return sorted({_declared_name(p) for p in self.files()})

    def renamed(self, ref: str) -> tuple[Path, str] | None:
        """(file, declared name) when `ref` is the file name of a prompt whose `name:` says otherwise."""
        for path in self._candidates(ref):
            if path.is_file():
                declared = _declared_name(path)
                return (path, declared) if declared != ref else None
        return None


def _declared_name(path: Path) -> str:
    """The `name:` of a prompt file (its file name when it has none, or cannot be read: loading it says why)."""
    try:
        data, _ = read_yaml(path)
    except UserError:
        return path.stem
    name = data.get("name") if isinstance(data, dict) else None
    # a name the loader refuses lists under the file name, so loading it reports the problem at its line
    return name if isinstance(name, str) and name.strip() and name_problem(name) is None else path.stem

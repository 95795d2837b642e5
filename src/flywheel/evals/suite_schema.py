"""The shape of an eval suite file as pydantic models, and their errors as ConfigError with file:line.

The schema checks keys (an unknown one gets "did you mean" and the valid keys), types and ranges, like
flywheel.yaml's. What a schema cannot say is checked by flywheel.evals.suite right after, in the same load:
that a target imports, that a model alias exists in flywheel.yaml, each check's name and argument (against
the check registry), case ids unique across the suite.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from flywheel.config import validate_tenant
from flywheel.errors import ConfigError, UserError
from flywheel.registry import did_you_mean

M = TypeVar("M", bound=BaseModel)


def _text(value: Any) -> Any:
    """Names and references may be written as numbers (`id: 3`); a YAML boolean (`reference: No`) is not
    the text the user meant, so it stays an error instead of becoming "False"."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_text)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DefaultsSpec(_Spec):
    vars: dict[str, Any] | None = None
    checks: list[Any] | None = None
    timeout_s: float = Field(default=60.0, gt=0, strict=True)
    judge: str | None = Field(default=None, min_length=1, strict=True)
    tenant: str | None = None

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, value: str | None) -> str | None:
        try:
            return None if value is None else validate_tenant(value)
        except UserError as exc:
            raise ValueError(exc.message) from None


class TurnSpec(_Spec):
    """One turn of a multi-turn case: the user's message and the checks on the answer to it."""

    input: Text = Field(min_length=1)
    checks: list[Any] | None = None
    reference: Text | None = None


class CaseSpec(_Spec):
    id: Text | None = None  # absent: `case-N`
    vars: dict[str, Any] | None = None
    reference: Text | None = None
    checks: list[Any] | None = None
    metadata: dict[str, Any] | None = None
    description: Text | None = None
    turns: list[TurnSpec] | None = Field(default=None, min_length=1)  # a conversation, run in one session
    choices: list[Text] | None = Field(default=None, min_length=2)  # a multiple-choice question's options
    answer: int | Text | None = None  # the right choice: its index (from 0) or its text

    @field_validator("answer", mode="before")
    @classmethod
    def _answer(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("`answer` must be a choice's index (0, 1, …) or its text, got a boolean")  # noqa: TRY004
        return value

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: Any) -> Any:
        # only runs when `id:` is written: an empty one is a mistake, not a request for `case-N`
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ValueError("`id` is empty")
        return value


class SuiteSpec(_Spec):
    name: Text | None = None
    description: Text | None = None
    target: str = Field(min_length=1, strict=True)
    prompt: str | dict[str, str] | None = None
    threshold: float = Field(default=1.0, ge=0.0, le=1.0, strict=True)
    defaults: DefaultsSpec | None = None
    cases: list[Any] | str

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, value: Any) -> Any:
        parts = isinstance(value, dict) and set(value) <= {"system", "template"} and "template" in value
        if value is None or isinstance(value, str) or (parts and all(isinstance(v, str) for v in value.values())):
            return value
        raise ValueError("`prompt` must be a template text, {system, template}, or a prompt file (*.yaml)")

    @field_validator("cases", mode="before")
    @classmethod
    def _cases(cls, value: Any) -> Any:
        if isinstance(value, list | str):
            return value
        raise ValueError("`cases` must be a list of cases or the path of a .jsonl / .csv file")


CASE_KEYS = frozenset(CaseSpec.model_fields)

# What each field must be ("`threshold` must be …, got 2") and how to write it.
_EXPECT = {
    "name": "text",
    "description": "text",
    "target": "text",
    "threshold": "a number between 0 and 1",
    "defaults": "a mapping",
    "vars": "a mapping of names to values",
    "checks": "a list of checks",
    "timeout_s": "a number of seconds above 0",
    "judge": "a model alias",
    "tenant": "a tenant name",
    "id": "a text",
    "reference": "a text (quote it: YAML reads yes/no/on/off as booleans)",
    "metadata": "a mapping",
    "turns": "a list of turns ({input, checks})",
    "input": "the user's message (text)",
    "choices": "a list of at least two options",
    "answer": "a choice's index (from 0) or its text",
}
_HINTS = {
    "target": "write `target: app:docs_qa`, `target: model:ALIAS` (with `prompt:`), "
    "`target: workflow:FILE.yaml[#STEP]` or `target: package.module:function`",
    "prompt": 'write `prompt: "Answer briefly: {{question}}"`',
    "threshold": "the share of cases that must pass, e.g. `threshold: 0.9`",
    "cases": "add `cases:` as a list, or the path of a .jsonl / .csv file",
    "defaults": f"valid keys: {', '.join(sorted(DefaultsSpec.model_fields))}",
    "vars": 'write `vars: {question: "How do I pin a model version?"}`',
    "checks": "write `checks: [{contains: x}, {max_words: 100}]`",
    "timeout_s": "seconds per case, e.g. `timeout_s: 60`",
    "judge": "name a model alias from flywheel.yaml, e.g. `judge: strong`",
    "id": "give every case a short unique `id`, e.g. `id: pin-version`",
    "reference": "write the reference answer as text",
    "metadata": "write `metadata: {topic: billing}`",
    "tenant": "a tenant is a non-empty name of at most 100 printable characters, e.g. `tenant: acme`",
    "turns": 'write `turns: [{input: "Hi, I am Ann.", checks: [...]}, {input: "What is my name?", checks: '
             '[{contains: Ann}]}]`',
    "input": 'write `input: "What is my name?"`',
    "choices": 'write `choices: ["Paris", "Rome", "Madrid"]` and `answer: 0` (or `answer: Paris`)',
    "answer": "the index of the right choice (0 is the first) or its text",
}


def validate(
    model: type[M], data: Any, locate: Callable[[tuple], str], *, prefix: tuple = (), label: str = ""
) -> M:
    """`model.model_validate(data)`, the first error (by line) as a ConfigError at its file:line.

    `locate` gives the file:line of a key path; `prefix` is the path of `data` in the file (for the field
    names in messages) and `label` says which case it is (" in case 3")."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = min(errors, key=lambda e: _line(locate(_loc(e))))
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        message, hint = _describe(model, first, prefix, label)
        raise ConfigError(message + more, where=locate(_loc(first)), hint=hint) from None


def _loc(err: Any) -> tuple:
    return tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))


def _line(where: str) -> int:
    tail = where.rpartition(":")[2]
    return int(tail) if tail.isdigit() else 0


def _describe(model: type[BaseModel], err: Any, prefix: tuple, label: str) -> tuple[str, str | None]:
    loc = _loc(err)
    key = str(loc[-1]) if loc else ""
    field = ".".join(str(p) for p in (*prefix, *loc))
    if err["type"] == "extra_forbidden":
        valid = sorted(_model_at(model, loc[:-1]).model_fields)
        close = did_you_mean(key, valid, n=1)
        guess = f" — did you mean `{close[0]}`?" if close else ""
        return f"unknown key `{key}`{label}{guess}", f"valid keys: {', '.join(valid)}"
    if err["type"] == "missing":
        return f"the suite needs `{field}:`{label}", _HINTS.get(key)
    if err["type"] == "value_error":
        msg = err["msg"].removeprefix("Value error, ")
        msg = msg if msg.startswith("`") else f"`{field}`: {msg}"
        return f"{msg}{label}", _HINTS.get(key)
    expect = _EXPECT.get(key)
    got = repr(err.get("input"))
    got = got if len(got) <= 60 else got[:57] + "..."
    if expect is None:
        return f"`{field}`{label}: {err['msg']}, got {got}", _HINTS.get(key)
    return f"`{field}`{label} must be {expect}, got {got}", _HINTS.get(key)


def _model_at(model: type[BaseModel], path: tuple) -> type[BaseModel]:
    """The nested model a key path leads to (`("defaults",)` → DefaultsSpec, `("turns", 0)` → TurnSpec)."""
    for part in path:
        if isinstance(part, int):  # a list index: the list's item model was found at its key
            continue
        field = model.model_fields.get(str(part))
        args = list(getattr(field.annotation, "__args__", (field.annotation,))) if field else []
        args += [inner for a in args for inner in getattr(a, "__args__", ())]  # list[TurnSpec] → TurnSpec
        found = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if not found:
            break
        model = found[0]
    return model

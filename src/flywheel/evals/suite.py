"""Eval suites: YAML files naming a target, defaults, a pass-rate threshold and cases with checks.

    # evals/docs_qa.yaml
    name: docs-qa smoke
    target: app:docs_qa          # or model:ALIAS (with `prompt:`), or a Python callable pkg.module:function
    prompt: "Answer: {{question}}"  # model targets: a template, {system, template}, or a prompt file
    threshold: 0.9               # the share of cases that must pass (default 1.0)
    defaults:
      vars: {tenant: default}    # merged under every case's vars
      checks: [{max_words: 200}] # appended to every case's checks
      timeout_s: 60              # per case (target call + checks)
      judge: strong              # model alias for LLM checks that name none
    cases:                       # or: cases: cases.jsonl / cases.csv (relative to this file)
      - id: pin-model
        vars: {question: "How do I pin a model version?"}
        reference: "Set `version:` on the model alias."
        checks: [{contains: version}, {max_words: 120}, {judge: "It says where the version is configured."}]

A case may instead be a conversation or a multiple-choice question (see docs/multiturn.md):

      - id: remembers-name         # turns run in order in one session; the case passes when every turn does
        turns:
          - {input: "Hi, I'm Ann.", checks: [{max_words: 30}]}
          - {input: "What is my name?", checks: [{contains: Ann}]}
      - id: capital-mc             # scored by log-probabilities where the provider returns them, else by
        vars: {question: "Capital of France?"}   # generation (the answer's letter or text)
        choices: [Paris, Rome, Madrid]
        answer: 0                  # the index of the right choice, or its text

The shape is validated by the pydantic schema in flywheel.evals.suite_schema; every mistake is a UserError
naming file:line and the valid choices. A hand-written case with fewer than three checks
gets a warning: an assertion test should state at least three expectations (a case promoted from a trace,
with `metadata.source_trace_id`, and a multiple-choice case are exempt).
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.checks.base import Check, from_entry
from flywheel.config import Project, read_yaml
from flywheel.config import where as line_of
from flywheel.errors import ConfigError, UserError
from flywheel.evals.case_files import read_case_file
from flywheel.evals.choices import MAX_CHOICES
from flywheel.evals.suite_schema import CaseSpec, DefaultsSpec, SuiteSpec, validate
from flywheel.registry import unknown_alias, unknown_name
from flywheel.types import content_hash

MIN_CHECKS = 3
TARGET_KINDS = ("app", "model", "workflow")  # and package.module:function
SUITE_SUFFIXES = (".yaml", ".yml")


@dataclass
class EvalCase:
    id: str
    vars: dict[str, Any]
    checks: list[Check]
    entries: list[Any]  # the check entries as written (for the suite hash and reports)
    reference: str | None = None
    where: str = ""  # file:line of the case
    metadata: dict[str, Any] = field(default_factory=dict)
    turns: list[EvalTurn] = field(default_factory=list)  # a multi-turn case: run in order, in one session
    choices: list[str] = field(default_factory=list)  # a multiple-choice case's options
    answer: int | None = None  # the index of the right choice

    @property
    def kind(self) -> str:
        return "turns" if self.turns else "choice" if self.choices else "single"


@dataclass
class EvalTurn:
    input: str
    checks: list[Check]
    entries: list[Any]
    reference: str | None = None
    where: str = ""


@dataclass
class Target:
    kind: str  # app | model | workflow | python
    name: str  # app name, model alias, or module:function
    prompt: Any = None  # model targets: a flywheel.prompts Prompt
    function: Callable[..., Any] | None = None  # python targets
    where: str = ""
    prompt_where: str = ""  # file:line of an inline `prompt:` (model targets)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # alias -> request fields (temperature)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}" if self.kind != "python" else self.name


@dataclass
class Suite:
    name: str
    path: Path
    target: Target
    cases: list[EvalCase]
    threshold: float = 1.0
    timeout_s: float = 60.0
    judge: str | None = None
    tenant: str | None = None
    warnings: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)  # the model matrix the file asks for (promptfoo)

    @property
    def hash(self) -> str:
        """Changes whenever what the suite asks changes (target, prompt, cases, checks, threshold)."""
        body = {
            "name": self.name,
            "target": str(self.target),
            "threshold": self.threshold,
            "prompt": getattr(self.target.prompt, "version", None),
            "judge": self.judge,
            "cases": [[c.id, c.vars, c.reference, [k.spec() for k in c.checks], *_shape(c)] for c in self.cases],
        }
        if self.target.params:  # only when set, so the hashes of suites without them stay what they were
            body["params"] = self.target.params
        return content_hash(json.dumps(body, sort_keys=True, default=str, ensure_ascii=False))


def _shape(case: EvalCase) -> list[Any]:
    """What a multi-turn or multiple-choice case adds to the suite hash (nothing for a plain case)."""
    if case.turns:
        return [[[t.input, t.reference, [k.spec() for k in t.checks]] for t in case.turns]]
    if case.choices:
        return [case.choices, case.answer]
    return []


# ---------------------------------------------------------------- discovery


def discover(paths: list[str] | tuple[str, ...], project: Project) -> list[Path]:
    """Suite files named on the command line (files or folders), or every YAML file in `<project>/evals/`."""
    if not paths:
        folder = project.root / "evals"
        if not folder.is_dir():
            raise UserError(
                f"no suites given and {folder} does not exist",
                hint="pass a suite file (flywheel eval evals/smoke.yaml) or run `flywheel init`",
            )
        paths = [str(folder)]
    found: list[Path] = []
    for p in paths:
        path = Path(p)
        if not path.is_absolute() and not path.exists():
            path = project.root / path
        if path.is_dir():
            found.extend(sorted(f for f in path.iterdir() if f.suffix in SUITE_SUFFIXES))
        elif path.is_file():
            found.append(path)
        else:
            hint = "pass a YAML suite file or a folder of them"
            if str(p) in ("compare", "promote", "skew", "report"):  # another command's name typed after `eval`
                hint = f"`{p}` is its own command: `flywheel {p} …`; `flywheel eval` takes suite files"
            raise UserError(f"suite {p} does not exist", hint=hint)
    if not found:
        raise UserError(f"no YAML suites in {', '.join(map(str, paths))}", hint="suites are *.yaml files")
    return found


# ---------------------------------------------------------------- loading


def load_suites(path: str | Path, project: Project | None = None) -> list[Suite]:
    """The suites one file holds: a flywheel suite, or one per prompt of a promptfoo config."""
    from flywheel.evals.promptfoo import is_promptfoo, load_promptfoo

    path = Path(path)
    project = project or Project(path.parent)
    data, lines = read_yaml(path)
    if is_promptfoo(data, path):
        return load_promptfoo(path, project, data, lines)
    return [load_suite(path, project)]


def load_suite(path: str | Path, project: Project | None = None) -> Suite:
    """Read and validate one suite file; every check is built now, so bad entries fail before any run.
    A promptfoo config with one prompt is read too (`load_suites` reads one with several)."""
    path = Path(path)
    project = project or Project(path.parent)
    data, lines = read_yaml(path)
    from flywheel.evals.promptfoo import is_promptfoo, load_promptfoo

    if is_promptfoo(data, path):
        suites = load_promptfoo(path, project, data, lines)
        if len(suites) > 1:
            raise ConfigError(f"{path.name} is a promptfoo config with {len(suites)} prompts",
                              where=f"{path}:1", hint="`flywheel eval` runs them all; here, keep one prompt")
        return suites[0]

    def at(*keys: Any) -> str:
        return line_of(path, lines, keys)

    if not isinstance(data, dict):
        raise ConfigError(
            "a suite must be a mapping with `target:` and `cases:`",
            where=f"{path}:1",
            hint="see the example in `flywheel init`'s evals/ folder",
        )
    spec = validate(SuiteSpec, data, lambda loc: at(*loc))
    target = _target(spec, project, at)
    defaults = spec.defaults or DefaultsSpec()
    default_vars = defaults.vars or {}
    default_checks = [(e, at("defaults", "checks", i)) for i, e in enumerate(defaults.checks or [])]
    if defaults.judge is not None:
        _known_alias(defaults.judge, project, at("defaults", "judge"))
    suite = Suite(
        name=spec.name or path.stem,
        path=path,
        target=target,
        cases=[],
        threshold=spec.threshold,
        judge=defaults.judge,
        timeout_s=defaults.timeout_s,
        tenant=defaults.tenant,
    )
    rows: Sequence[tuple[Any, str, tuple | None]]
    if isinstance(spec.cases, str):
        rows = read_case_file(path.parent / spec.cases, at("cases"))
    else:
        rows = [(c, at("cases", i), ("cases", i)) for i, c in enumerate(spec.cases)]
    seen: dict[str, str] = {}
    if target.kind == "workflow":
        from flywheel.workflows.eval_target import check_case, parse_target

        workflow, step_id = parse_target(target.name, project.root, target.where)
    for n, (raw, case_where, keypath) in enumerate(rows, start=1):
        case = _case(raw, n, case_where, keypath, at, default_vars, default_checks, project)
        if case.id in seen:
            raise ConfigError(
                f"duplicate case id `{case.id}` (first at {seen[case.id]})",
                where=case_where,
                hint="give every case a unique `id`",
            )
        seen[case.id] = case_where
        _has_prompt_vars(case, target, at(*keypath, "vars") if keypath is not None else case_where)
        if case.turns and target.kind in ("python", "workflow"):
            raise ConfigError(
                f"case `{case.id}` has `turns:` but the target {target} keeps no conversation",
                where=case_where,
                hint="multi-turn cases need an app: target (a chat app keeps the session) or a model: target",
            )
        if target.kind == "workflow":
            check_case(workflow, step_id, case.vars, case.id, case_where)
        stated = sum(len(t.checks) for t in case.turns) if case.turns else len(case.checks)
        # a multiple-choice case is scored by its answer; a promoted one states what its label says
        if stated < MIN_CHECKS and not case.choices and not _promoted(case):
            suite.warnings.append(
                f"{case_where}: case `{case.id}` states {stated} check(s); "
                f"state at least {MIN_CHECKS} expectations"
            )
        suite.cases.append(case)
    if not suite.cases:
        raise ConfigError("the suite has no cases", where=at("cases"), hint="add at least one case")
    return suite


def _promoted(case: EvalCase) -> bool:
    """A case `flywheel promote` wrote from a trace. Its checks are derived from what the reviewer's label
    says (a judge, plus the numbers or terms the correction gives), so padding it to three would invent
    expectations nobody stated; the three-expectations lint is for hand-written cases."""
    return bool(case.metadata.get("source_trace_id"))


def _has_prompt_vars(case: EvalCase, target: Target, where: str) -> None:
    """A model target's prompt may only use variables the case gives (checked before any run starts);
    `{{sources}}` and `{{examples}}` are built by the prompt's render."""
    prompt = target.prompt
    if prompt is None:
        return
    used = prompt.variables()
    given = {*case.vars, "input", "question"} if case.turns else set(case.vars)  # each turn's text fills them
    missing = sorted({n for n in used if n not in given})
    if missing:
        at = f"{prompt.path}" if getattr(prompt, "path", None) else target.prompt_where
        raise ConfigError(
            f"case `{case.id}` has no variable(s) {', '.join(missing)} used by the prompt ({at})",
            where=where,
            hint=f"add {', '.join(missing)} to the case's `vars:` (or `defaults.vars:`), or fix the template",
        )


def _known_alias(alias: str, project: Project, where: str) -> None:
    if alias not in project.config.models:
        raise unknown_alias(alias, project.config.models, where=where, error=ConfigError)


def _target(spec: SuiteSpec, project: Project, at: Callable[..., str]) -> Target:
    raw = spec.target.strip()
    where = at("target")
    kind, _, name = (part.strip() for part in raw.partition(":"))
    if kind == "app":
        if spec.prompt is not None:
            raise ConfigError(
                "`prompt:` is for model targets; an app uses the prompt set in flywheel.yaml",
                where=at("prompt"),
                hint="remove it, or change `apps:` in flywheel.yaml",
            )
        app = name or "docs_qa"
        if app != "docs_qa" and app not in project.config.apps:  # docs_qa works unconfigured, with defaults
            raise unknown_name("app", app, {"docs_qa", *project.config.apps}, where=where, error=ConfigError,
                               hint="use one of those, or add it under `apps:` in flywheel.yaml")
        return Target("app", app, where=where)
    if kind == "model":
        if not name:
            aliases = sorted(project.config.models)
            configured = f"configured aliases: {', '.join(aliases)}" if aliases else "no aliases are configured"
            example = next((a for a in project.config.models if a != "default"), "default" if aliases else "ALIAS")
            raise ConfigError(f"`target: {raw}` names no model alias ({configured})", where=where,
                              hint=f"write `target: model:{example}`; aliases are the names under `models:` in "
                              "flywheel.yaml")
        _known_alias(name, project, where)
        prompt = _prompt(spec.prompt, project, at("prompt"))
        return Target("model", name, prompt=prompt, where=where, prompt_where=at("prompt"))
    if kind == "workflow":
        from flywheel.workflows.eval_target import parse_target

        if not name.partition("#")[0].strip():
            raise ConfigError(f"`target: {raw}` names no workflow file", where=where,
                              hint="write `target: workflow:PATH.yaml` or `workflow:PATH.yaml#STEP`, the path "
                              "relative to the project folder")
        parse_target(name, project.root, where)
        return Target("workflow", name, where=where)
    if not name or not all(part.isidentifier() for part in kind.split(".")):
        raise ConfigError(
            f"cannot read target `{raw}`",
            where=where,
            hint="valid targets: app:NAME, model:ALIAS, workflow:FILE.yaml[#STEP], or package.module:function",
        )
    return Target("python", raw, function=_import(kind, name, project, where), where=where)


def _prompt(raw: str | dict[str, str] | None, project: Project, where: str) -> Any:
    """The schema has checked the shape: None, a template text, a prompt file, or {system, template}."""
    from flywheel.prompts.registry import Prompt, PromptRegistry
    from flywheel.prompts.render import template_problem

    if raw is None:
        return None  # the case's input variable is sent as the user message
    if isinstance(raw, str) and raw.strip().endswith((".yaml", ".yml")):
        return PromptRegistry(project.root).get(raw.strip(), where=where)
    system, template = ("", raw) if isinstance(raw, str) else (raw.get("system") or "", raw["template"])
    for text in (system, template):
        problem = template_problem(text)
        if problem:
            raise ConfigError(f"`prompt`: {problem}", where=where)
    return Prompt(name="suite", template=template, system=system)


def _import(module: str, attr: str, project: Project, where: str) -> Callable[..., Any]:
    for folder in (str(project.root),):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        fn = getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        from flywheel.registry import did_you_mean

        close = did_you_mean(module, TARGET_KINDS) if "." not in module else []
        guess = f" — did you mean `{close[0]}:{attr}`?" if close else ""
        raise ConfigError(
            f"cannot import `{module}`: {exc}{guess}",
            where=where,
            hint="valid targets: app:NAME, model:ALIAS, workflow:FILE.yaml[#STEP], or package.module:function "
            "importable from the project folder",
        ) from None
    except AttributeError:
        raise ConfigError(
            f"`{module}` has no `{attr}`", where=where, hint="name a function defined there"
        ) from None
    if not callable(fn):
        raise ConfigError(f"`{module}:{attr}` is not callable", where=where, hint="name a function")
    return fn


def _case(
    raw: Any,
    n: int,
    where: str,
    keypath: tuple | None,
    at: Callable[..., str],
    default_vars: dict,
    default_checks: list[tuple[Any, str]],
    project: Project,
) -> EvalCase:
    def here(*keys: Any) -> str:
        return at(*keypath, *keys) if keypath is not None else where

    if not isinstance(raw, dict):
        raise ConfigError(
            f"case {n} must be a mapping with `vars:` and `checks:`",
            where=where,
            hint='write `- {id: pin, vars: {question: "…"}, checks: [{contains: x}]}`',
        )
    spec = validate(CaseSpec, raw, lambda loc: here(*loc), label=f" in case {n}")
    entries = spec.checks or []
    located = [(e, here("checks", i)) for i, e in enumerate(entries)] + default_checks
    checks = _built(located, project)
    case = EvalCase(
        id=spec.id or f"case-{n}",
        vars={**default_vars, **(spec.vars or {})},
        checks=checks,
        entries=[e for e, _ in located],
        reference=spec.reference,
        where=where,
        metadata=spec.metadata or {},
    )
    if spec.turns is not None:
        if spec.choices is not None:
            raise ConfigError(f"case {n} has both `turns:` and `choices:`", where=here("choices"),
                              hint="a case is a conversation (turns) or a multiple-choice question, not both")
        for i, turn in enumerate(spec.turns):  # the case's own checks and the defaults apply to every turn
            mine = [(e, here("turns", i, "checks", j)) for j, e in enumerate(turn.checks or [])]
            case.turns.append(EvalTurn(turn.input, _built(mine, project) + checks, [e for e, _ in mine],
                                       turn.reference, here("turns", i)))
    elif spec.choices is not None:
        case.choices, case.answer = list(spec.choices), _answer_index(spec.choices, spec.answer, n, here)
    elif spec.answer is not None:
        raise ConfigError(f"case {n} has `answer:` but no `choices:`", where=here("answer"),
                          hint='add `choices: ["…", "…"]`, or write the expected text as `reference:`')
    return case


def _built(located: list[tuple[Any, str]], project: Project) -> list[Check]:
    checks = [from_entry(e, where=w) for e, w in located]
    for check, (_, w) in zip(checks, located, strict=True):
        model = getattr(check, "model", None) or getattr(getattr(check, "inner", None), "model", None)
        if check.needs_llm and model:
            _known_alias(model, project, w)
    return checks


def _answer_index(choices: list[str], answer: int | str | None, n: int, here: Callable[..., str]) -> int:
    """The right choice's index: `answer` as written (an index from 0, or the text of a choice)."""
    listed = ", ".join(f"{i}: {c}" for i, c in enumerate(choices))
    if len(choices) > MAX_CHOICES:  # the options are lettered A to Z
        raise ConfigError(f"case {n} has {len(choices)} choices; at most {MAX_CHOICES} (A to Z)",
                          where=here("choices"), hint="split the question, or drop the least likely options")
    if len({c.strip().casefold() for c in choices}) != len(choices):
        raise ConfigError(f"case {n} lists the same choice twice", where=here("choices"),
                          hint="every choice must be different")
    if answer is None:
        raise ConfigError(f"case {n} has `choices:` but no `answer:`", where=here("choices"),
                          hint=f"add `answer:` with the right choice's index or text ({listed})")
    if isinstance(answer, int):
        if 0 <= answer < len(choices):
            return answer
        raise ConfigError(f"`answer: {answer}` in case {n} is not a choice index", where=here("answer"),
                          hint=f"choices are numbered from 0: {listed}")
    matches = [i for i, c in enumerate(choices) if c.strip().casefold() == answer.strip().casefold()]
    if not matches:
        raise ConfigError(f"`answer: {answer}` in case {n} is none of the choices", where=here("answer"),
                          hint=f"write the index or the exact text of one of: {listed}")
    return matches[0]


# ---------------------------------------------------------------- case files

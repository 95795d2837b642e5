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

Every mistake is a UserError naming file:line and the valid choices. A case with fewer than three checks
gets a warning: an assertion test should state at least three expectations.
"""

from __future__ import annotations

import csv
import importlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flywheel.checks.base import Check, from_entry
from flywheel.config import Project, load_yaml, read_yaml
from flywheel.errors import ConfigError, UserError
from flywheel.registry import unknown_alias
from flywheel.types import content_hash

SUITE_KEYS = {"name", "description", "target", "prompt", "threshold", "defaults", "cases"}
DEFAULT_KEYS = {"vars", "checks", "timeout_s", "judge", "tenant"}
CASE_KEYS = {"id", "vars", "reference", "checks", "metadata", "description"}
MIN_CHECKS = 3
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


@dataclass
class Target:
    kind: str  # app | model | python
    name: str  # app name, model alias, or module:function
    prompt: Any = None  # model targets: a flywheel.prompts Prompt
    function: Callable[..., Any] | None = None  # python targets
    where: str = ""
    prompt_where: str = ""  # file:line of an inline `prompt:` (model targets)

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

    @property
    def hash(self) -> str:
        """Changes whenever what the suite asks changes (target, prompt, cases, checks, threshold)."""
        body = {
            "name": self.name,
            "target": str(self.target),
            "threshold": self.threshold,
            "prompt": getattr(self.target.prompt, "version", None),
            "judge": self.judge,
            "cases": [[c.id, c.vars, c.reference, [k.spec() for k in c.checks]] for c in self.cases],
        }
        return content_hash(json.dumps(body, sort_keys=True, default=str, ensure_ascii=False))


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
            raise UserError(f"suite {p} does not exist", hint="pass a YAML suite file or a folder of them")
    if not found:
        raise UserError(f"no YAML suites in {', '.join(map(str, paths))}", hint="suites are *.yaml files")
    return found


# ---------------------------------------------------------------- loading


def load_suite(path: str | Path, project: Project | None = None) -> Suite:
    """Read and validate one suite file; every check is built now, so bad entries fail before any run."""
    path = Path(path)
    project = project or Project(path.parent)
    data, lines = read_yaml(path)

    def at(*keys: Any) -> str:
        p = tuple(keys)
        while p and p not in lines:
            p = p[:-1]
        return f"{path}:{lines.get(p, 1)}"

    if not isinstance(data, dict):
        raise ConfigError(
            "a suite must be a mapping with `target:` and `cases:`",
            where=f"{path}:1",
            hint="see the example in `flywheel init`'s evals/ folder",
        )
    _no_unknown(data, SUITE_KEYS, at, ())
    name = str(data.get("name") or path.stem)
    target = _target(data, project, at)
    threshold = _number(data.get("threshold", 1.0), "threshold", at("threshold"), low=0.0, high=1.0)
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(
            "`defaults` must be a mapping",
            where=at("defaults"),
            hint=f"valid keys: {', '.join(sorted(DEFAULT_KEYS))}",
        )
    _no_unknown(defaults, DEFAULT_KEYS, at, ("defaults",))
    default_vars = defaults.get("vars") or {}
    if not isinstance(default_vars, dict):
        raise ConfigError("`defaults.vars` must be a mapping", where=at("defaults", "vars"))
    default_entries = defaults.get("checks") or []
    if not isinstance(default_entries, list):
        raise ConfigError(
            "`defaults.checks` must be a list",
            where=at("defaults", "checks"),
            hint="write `checks: [{max_words: 200}]`",
        )
    default_checks = [(e, at("defaults", "checks", i)) for i, e in enumerate(default_entries)]
    judge = defaults.get("judge")
    if judge is not None:
        _known_alias(str(judge), project, at("defaults", "judge"))
    suite = Suite(
        name=name,
        path=path,
        target=target,
        cases=[],
        threshold=threshold,
        judge=judge,
        timeout_s=_number(
            defaults.get("timeout_s", 60.0), "defaults.timeout_s", at("defaults", "timeout_s"), low=0.001
        ),
        tenant=defaults.get("tenant"),
    )
    raw_cases = data.get("cases")
    if raw_cases is None:
        raise ConfigError(
            "the suite has no `cases:`",
            where=f"{path}:1",
            hint="add `cases:` as a list, or the path of a .jsonl / .csv file",
        )
    if isinstance(raw_cases, str):
        rows = read_case_file(path.parent / raw_cases, at("cases"))
    elif isinstance(raw_cases, list):
        rows = [(c, at("cases", i), ("cases", i)) for i, c in enumerate(raw_cases)]
    else:
        raise ConfigError(
            "`cases` must be a list of cases or the path of a .jsonl / .csv file", where=at("cases")
        )
    seen: dict[str, str] = {}
    for n, (raw, where, keypath) in enumerate(rows, start=1):
        case = _case(raw, n, where, keypath, at, default_vars, default_checks, project)
        if case.id in seen:
            raise ConfigError(
                f"duplicate case id `{case.id}` (first at {seen[case.id]})",
                where=where,
                hint="give every case a unique `id`",
            )
        seen[case.id] = where
        _has_prompt_vars(case, target, at(*keypath, "vars") if keypath is not None else where)
        if len(case.checks) < MIN_CHECKS:
            suite.warnings.append(
                f"{where}: case `{case.id}` states {len(case.checks)} check(s); "
                f"state at least {MIN_CHECKS} expectations"
            )
        suite.cases.append(case)
    if not suite.cases:
        raise ConfigError("the suite has no cases", where=at("cases"), hint="add at least one case")
    return suite


def _has_prompt_vars(case: EvalCase, target: Target, where: str) -> None:
    """A model target's prompt may only use variables the case gives (checked before any run starts)."""
    from flywheel.prompts.render import placeholders

    prompt = target.prompt
    if prompt is None:
        return
    used = placeholders(prompt.system or "") + placeholders(prompt.template)
    missing = sorted({n for n in used if n not in case.vars})
    if missing:
        at = f"{prompt.path}" if getattr(prompt, "path", None) else target.prompt_where
        raise ConfigError(
            f"case `{case.id}` has no variable(s) {', '.join(missing)} used by the prompt ({at})",
            where=where,
            hint=f"add {', '.join(missing)} to the case's `vars:` (or `defaults.vars:`), or fix the template",
        )


def _no_unknown(data: dict, valid: set[str], at: Callable[..., str], prefix: tuple) -> None:
    for key in data:
        if key not in valid:
            raise ConfigError(
                f"unknown key `{key}`", where=at(*prefix, key), hint=f"valid keys: {', '.join(sorted(valid))}"
            )


def _number(value: Any, what: str, where: str, low: float, high: float | None = None) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value < low
        or (high is not None and value > high)
    ):
        span = f"between {low:g} and {high:g}" if high is not None else f"above {low:g}"
        raise ConfigError(f"`{what}` must be a number {span}, got {value!r}", where=where)
    return float(value)


def _known_alias(alias: str, project: Project, where: str) -> None:
    if alias not in project.config.models:
        raise unknown_alias(alias, project.config.models, where=where, error=ConfigError)


def _target(data: dict, project: Project, at: Callable[..., str]) -> Target:
    raw = data.get("target")
    where = at("target")
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(
            "the suite needs `target:`",
            where=where,
            hint="write `target: app:docs_qa`, `target: model:ALIAS` (with `prompt:`) "
            "or `target: package.module:function`",
        )
    raw = raw.strip()
    kind, _, name = raw.partition(":")
    if kind == "app":
        if data.get("prompt") is not None:
            raise ConfigError(
                "`prompt:` is for model targets; an app uses the prompt set in flywheel.yaml",
                where=at("prompt"),
                hint="remove it, or change `apps:` in flywheel.yaml",
            )
        return Target("app", name or "docs_qa", where=where)
    if kind == "model":
        _known_alias(name, project, where)
        prompt = _prompt(data.get("prompt"), project, at)
        return Target("model", name, prompt=prompt, where=where, prompt_where=at("prompt"))
    if not name or not all(part.isidentifier() for part in kind.split(".")):
        raise ConfigError(
            f"cannot read target `{raw}`",
            where=where,
            hint="valid targets: app:NAME, model:ALIAS, or package.module:function",
        )
    return Target("python", raw, function=_import(kind, name, project, where), where=where)


def _prompt(raw: Any, project: Project, at: Callable[..., str]) -> Any:
    from flywheel.prompts.registry import Prompt, PromptRegistry
    from flywheel.prompts.render import template_problem

    where = at("prompt")
    if raw is None:
        return None  # the case's input variable is sent as the user message
    if isinstance(raw, str) and raw.strip().endswith((".yaml", ".yml")):
        return PromptRegistry(project.root).get(raw.strip(), where=where)
    if isinstance(raw, str):
        system, template = "", raw
    elif isinstance(raw, dict) and set(raw) <= {"system", "template"} and "template" in raw:
        system, template = str(raw.get("system") or ""), str(raw["template"])
    else:
        raise ConfigError(
            "`prompt` must be a template text, {system, template}, or a prompt file (*.yaml)",
            where=where,
            hint='write `prompt: "Answer briefly: {{question}}"`',
        )
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
        raise ConfigError(
            f"cannot import `{module}`: {exc}",
            where=where,
            hint="valid targets: app:NAME, model:ALIAS, or package.module:function importable "
            "from the project folder",
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
        raise ConfigError(f"case {n} must be a mapping with `vars:` and `checks:`", where=where)
    for key in raw:
        if key not in CASE_KEYS:
            raise ConfigError(
                f"unknown key `{key}` in case {n}",
                where=here(key),
                hint=f"valid keys: {', '.join(sorted(CASE_KEYS))}",
            )
    case_vars = raw.get("vars") or {}
    if not isinstance(case_vars, dict):
        raise ConfigError("`vars` must be a mapping of names to values", where=here("vars"))
    entries = raw.get("checks") or []
    if not isinstance(entries, list):
        raise ConfigError(
            "`checks` must be a list",
            where=here("checks"),
            hint="write `checks: [{contains: x}, {max_words: 100}]`",
        )
    located = [(e, here("checks", i)) for i, e in enumerate(entries)] + default_checks
    checks = [from_entry(e, where=w) for e, w in located]
    for check, (_, w) in zip(checks, located, strict=True):
        model = getattr(check, "model", None) or getattr(getattr(check, "inner", None), "model", None)
        if check.needs_llm and model:
            _known_alias(model, project, w)
    reference = raw.get("reference")
    return EvalCase(
        id=str(raw.get("id") or f"case-{n}"),
        vars={**default_vars, **case_vars},
        checks=checks,
        entries=[e for e, _ in located],
        reference=None if reference is None else str(reference),
        where=where,
        metadata=raw.get("metadata") or {},
    )


# ---------------------------------------------------------------- case files


def read_case_file(path: Path, where: str) -> list[tuple[dict, str, None]]:
    """Cases from JSONL (one case per line) or CSV (columns: id, reference, checks, check:NAME, vars)."""
    if not path.is_file():
        raise ConfigError(
            f"case file {path} does not exist", where=where, hint="the path is relative to the suite"
        )
    if path.suffix == ".jsonl":
        return _jsonl_cases(path)
    if path.suffix == ".csv":
        return _csv_cases(path)
    raise ConfigError(f"cannot read cases from {path.name}", where=where, hint="use a .jsonl or .csv file")


def _jsonl_cases(path: Path) -> list[tuple[dict, str, None]]:
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise ConfigError(
                f"invalid JSON: {exc}", where=f"{path}:{i}", hint="one JSON object per line"
            ) from None
        if not isinstance(obj, dict):
            raise ConfigError("each line must be a JSON object", where=f"{path}:{i}")
        rows.append((_flat_case(obj), f"{path}:{i}", None))
    return rows


def _csv_cases(path: Path) -> list[tuple[dict, str, None]]:
    rows = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            where = f"{path}:{reader.line_num}"
            case: dict[str, Any] = {"vars": {}, "checks": []}
            for key, value in row.items():
                if key is None or value is None or value == "":
                    continue
                if key == "checks":
                    case["checks"].extend(_yaml_cell(value, where))
                elif key.startswith("check:"):
                    case["checks"].append({key[6:]: _yaml_cell(value, where, scalar=True)})
                elif key in ("id", "reference"):
                    case[key] = value
                else:
                    case["vars"][key] = value
            rows.append((case, where, None))
    return rows


def _yaml_cell(value: str, where: str, scalar: bool = False) -> Any:
    try:
        parsed = load_yaml(value)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"cannot read cell {value!r}: {exc}",
            where=where,
            hint="write checks as YAML, e.g. [{contains: x}, {max_words: 50}]",
        ) from None
    if scalar:
        # a `check:NAME` cell holds one argument: numbers stay numbers, anything YAML would turn into
        # a bool, null or mapping ("Yes", "version:") is the text the user wrote
        return parsed if isinstance(parsed, (str, int, float)) and not isinstance(parsed, bool) else value
    if not isinstance(parsed, list):
        raise ConfigError(
            "the `checks` column must hold a YAML list",
            where=where,
            hint="write [{contains: x}, {max_words: 50}]",
        )
    return parsed


def _flat_case(obj: dict) -> dict:
    """JSONL rows may nest `vars` or put variables at the top level next to id/reference/checks."""
    if "vars" in obj:
        return obj
    known = {k: obj[k] for k in CASE_KEYS if k in obj}
    known["vars"] = {k: v for k, v in obj.items() if k not in CASE_KEYS}
    return known

"""Run a promptfoo config (`promptfooconfig.yaml`: `prompts` + `providers` + `tests`) as flywheel eval suites,
natively: no npm, no promptfoo.

Each prompt becomes one suite with a `model:` target; the providers become its model matrix (the aliases of
flywheel.yaml they name, run side by side like `--models`; a provider's `prompts:` limits it to those prompts);
each test (after `file://` vars are read, `$ref`s resolved, `scenarios` crossed and list vars expanded) becomes
a case whose assertions are flywheel checks (flywheel.evals.promptfoo_asserts). Runs are ordinary flywheel
runs: stored, reported, resumable, comparable.

    from flywheel.evals.promptfoo import load_promptfoo
    suites = load_promptfoo("promptfooconfig.yaml", project)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flywheel.config import Project, read_user_text, read_yaml
from flywheel.config import where as line_of
from flywheel.errors import UserError
from flywheel.evals.promptfoo_asserts import Located, checks_of_test, to_check
from flywheel.evals.promptfoo_prompts import PromptSpec, flywheel_prompt, read_prompts, used_vars
from flywheel.evals.promptfoo_providers import echo_target, grader_alias, provider_alias, read_providers
from flywheel.evals.promptfoo_templates import render_value
from flywheel.evals.promptfoo_tests import (
    TEST_KEYS,
    TestRow,
    expand,
    file_ref,
    load_var,
    read_scenarios,
    read_tests,
    resolve_refs,
    yaml12_bools,
)
from flywheel.evals.suite import MIN_CHECKS, EvalCase, Suite, Target

CONFIG_KEYS = frozenset(
    {
        "description",
        "prompts",
        "providers",
        "targets",
        "tests",
        "defaultTest",
        "scenarios",
        "assertionTemplates",
    }
)
IGNORED_KEYS = frozenset(
    {
        "outputPath",
        "sharing",
        "evaluateOptions",
        "tags",
        "writeLatestResults",
        "metadata",
        "commandLineOptions",
        "env",
        "derivedMetrics",
    }
)
# keys promptfoo runs as code: why flywheel cannot, and what to do instead
CODE_KEYS = {
    "nunjucksFilters": "custom Nunjucks filters are JavaScript, and flywheel runs no JavaScript",
    "filters": "custom Nunjucks filters are JavaScript, and flywheel runs no JavaScript",
    "extensions": "extension hooks are JavaScript/Python code run by promptfoo",
}
CODE_HINT = (
    "compute the value into a var instead (built-in filters: dump, trim, upper, lower, capitalize, title, "
    "length, first, last, join, replace, default), or write a flywheel suite with a Python target"
)


def is_promptfoo(data: Any, path: Path) -> bool:
    """A promptfoo config: named promptfooconfig.y(a)ml, or its top level has prompts + providers + tests."""
    if path.stem == "promptfooconfig":
        return True
    return (
        isinstance(data, dict)
        and "target" not in data
        and "prompts" in data
        and bool({"tests", "scenarios"} & set(data))
        and bool({"providers", "targets"} & set(data))
    )


def load_promptfoo(
    path: str | Path, project: Project, data: Any = None, lines: dict | None = None
) -> list[Suite]:
    """One suite per prompt; every mistake is a UserError at its file:line."""
    path = Path(path)
    if data is None or lines is None:
        data, lines = read_yaml(path)
    line_map: dict = lines
    data = yaml12_bools(data, line_map, read_user_text(path))

    def at(*keys: Any) -> str:
        return line_of(path, line_map, keys)

    if not isinstance(data, dict):
        raise UserError(
            "a promptfoo config must be a mapping with prompts, providers and tests", where=f"{path}:1"
        )
    for key in data:
        if key in CODE_KEYS:
            raise UserError(f"promptfoo key `{key}`: {CODE_KEYS[key]}", where=at(key), hint=CODE_HINT)
        if key not in CONFIG_KEYS | IGNORED_KEYS:
            raise UserError(
                f"promptfoo key `{key}` is not supported by flywheel eval",
                where=at(key),
                hint=f"supported keys: {', '.join(sorted(CONFIG_KEYS))} (ignored: "
                f"{', '.join(sorted(IGNORED_KEYS))})",
            )
    for key in ("prompts", "tests"):
        if not data.get(key) and not (key == "tests" and data.get("scenarios")):
            raise UserError(
                f"the promptfoo config has no `{key}`",
                where=at(key) if key in data else f"{path}:1",
                hint="a promptfoo config needs prompts, providers and tests",
            )
    providers_key = "providers" if "providers" in data else "targets"
    if not data.get(providers_key):
        raise UserError(
            "the promptfoo config has no `providers`",
            where=f"{path}:1",
            hint="list the models to run, e.g. `providers: [openai:chat:gpt-4o-mini]`",
        )
    warnings: list[str] = []
    if "derivedMetrics" in data:
        warnings.append(
            f"{at('derivedMetrics')}: `derivedMetrics` are not computed; flywheel reports each check's "
            "pass rate and each case's score"
        )
    resolve_refs(data, at)
    providers = read_providers(data[providers_key], providers_key, project, at, warnings, path.parent)
    prompts = read_prompts(data["prompts"], path.parent, at)
    default = data.get("defaultTest") or {}
    if isinstance(default, str) and file_ref(default):
        default = load_var(default, path.parent, at("defaultTest"))
    if not isinstance(default, dict):
        raise UserError(
            "`defaultTest` must be a mapping (vars, assert, options, threshold)", where=at("defaultTest")
        )
    _known_test_keys(default, at("defaultTest"))
    judge = grader_alias(default.get("options"), at("defaultTest", "options"), project)
    rows = read_tests(data.get("tests"), path, line_map) + read_scenarios(data.get("scenarios"), at)
    name = str(data.get("description") or path.stem)
    suites = []
    for prompt in prompts:
        runs = [p for p in providers if p.prompts is None or {prompt.label, prompt.ref} & set(p.prompts)]
        if not runs:
            warnings.append(
                f"{prompt.where}: prompt `{prompt.label}` is run by no provider (their `prompts:`)"
            )
            continue
        aliases = [p.alias for p in runs]
        echo = [p for p in runs if p.alias == "echo"]
        if echo and len(runs) > 1:
            raise UserError(
                "the `echo` provider cannot run beside models in flywheel",
                where=echo[0].where,
                hint="put the echo run in a config of its own",
            )
        target = (
            echo_target(prompt, echo[0].where)
            if echo
            else Target(
                "model",
                aliases[0],
                prompt=flywheel_prompt(prompt),
                where=at(providers_key),
                prompt_where=prompt.where,
                params={p.alias: p.params for p in runs if p.params},
            )
        )
        suite = Suite(
            name=name if len(prompts) == 1 else f"{name} · {prompt.label}",
            path=path,
            target=target,
            cases=[],
            judge=judge,
            models=[] if echo else aliases,
            warnings=warnings,
        )
        suite.cases = _cases(rows, default, prompt, path.parent, project, judge, warnings, at)
        suites.append(suite)
    warnings[:] = dict.fromkeys(
        warnings
    )  # the suites share one list; each prompt repeats the tests' warnings
    return suites


# ---------------------------------------------------------------- tests → cases


def _known_test_keys(test: dict[str, Any], where: str) -> None:
    unknown = set(test) - TEST_KEYS
    if unknown:
        raise UserError(
            f"test key(s) {', '.join(sorted(map(str, unknown)))} are not supported",
            where=where,
            hint=f"valid keys: {', '.join(sorted(TEST_KEYS))}",
        )


def _cases(
    rows: list[TestRow],
    default: dict[str, Any],
    prompt: PromptSpec,
    base: Path,
    project: Project,
    judge: str | None,
    warnings: list[str],
    at: Callable[..., str],
) -> list[EvalCase]:
    cases: list[EvalCase] = []
    default_vars = _vars(default.get("vars"), base, at("defaultTest", "vars"))
    default_asserts = [
        (a, at("defaultTest", "assert", i))
        for i, a in enumerate(_list(default.get("assert"), at("defaultTest")))
    ]
    descriptions = [str(r.data.get("description") or "") for r in rows]
    for n, row in enumerate(rows, start=1):
        test = row.data
        _known_test_keys(test, row.where)
        grader = grader_alias(test.get("options"), row.at("options"), project) or judge
        threshold = test.get("threshold", default.get("threshold"))
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int | float)):
            raise UserError(
                f"`threshold` must be a number between 0 and 1, got {threshold!r}", where=row.at("threshold")
            )
        own = [(a, row.at("assert", i)) for i, a in enumerate(_list(test.get("assert"), row.where))]
        description = descriptions[n - 1]
        base_id = description if description and descriptions.count(description) == 1 else f"test-{n}"
        combos = expand({**default_vars, **_vars(test.get("vars"), base, row.at("vars"))})
        for k, raw_vars in enumerate(combos, start=1):
            missing = sorted(v for v in used_vars(prompt) if v not in raw_vars)
            if missing:
                raise UserError(
                    f"test {n} has no var(s) {', '.join(missing)} used by the prompt ({prompt.where})",
                    where=row.at("vars"),
                    hint="add them to the test's `vars:` or `defaultTest.vars:`",
                )
            values = prompt.template.values(raw_vars, prompt.where)
            if prompt.system is not None:
                values.update(prompt.system.values(raw_vars, prompt.where))
            parts = [
                _located(a, w, raw_vars, grader, warnings, project, base) for a, w in own + default_asserts
            ]
            checks = checks_of_test(parts, threshold)
            case_id = base_id if len(combos) == 1 else f"{base_id}#{k}"
            case = EvalCase(
                id=case_id,
                vars={**{k2: _text(v) for k2, v in raw_vars.items()}, **values},
                checks=checks,
                entries=[a for a, _ in own + default_asserts],
                where=row.where,
                metadata={"description": description} if description else {},
            )
            if len(parts) < MIN_CHECKS:
                warnings.append(
                    f"{row.where}: test `{case_id}` states {len(parts)} assertion(s); "
                    f"state at least {MIN_CHECKS} expectations"
                )
            cases.append(case)
    if not cases:
        raise UserError("the promptfoo config has no tests", where=at("tests"), hint="add at least one test")
    return cases


def _located(
    raw: Any,
    where: str,
    vars: dict[str, Any],
    grader: str | None,
    warnings: list[str],
    project: Project,
    base: Path,
) -> Located:
    """One assertion as a check; its value may be `file://` (text, or a parsed .json / .yaml such as a JSON
    Schema) and is rendered with the test's vars."""
    part = to_check(
        raw,
        where,
        lambda v: render_value(load_var(v, base, where), vars, where),
        lambda pid, w: provider_alias(pid if isinstance(pid, str) else str(pid.get("id")), project, w),
        warnings,
        vars,
    )
    for check in _leaves(part.check):
        if not check.needs_llm or getattr(check, "model", None) is not None:
            continue
        if grader is not None:
            check.model = grader  # type: ignore[attr-defined]
        elif (
            project.config.models["default"].provider == "extractive"
        ):  # answers from sources, judges nothing
            raise UserError(
                f"`{raw.get('type')}` needs a grading model; flywheel.yaml's `default` alias is "
                "extractive (no LLM)",
                where=where,
                hint="set `defaultTest: {options: {provider: ALIAS}}`, `provider:` on the "
                "assertion, or add a `default` alias",
            )
    return part


def _leaves(check: Any) -> list[Any]:
    """The checks that run: a `not-` wrapper's inner check, an assert-set's parts (recursively)."""
    check = getattr(check, "inner", check)
    parts = getattr(check, "parts", None)
    return [leaf for p in parts for leaf in _leaves(p.check)] if parts is not None else [check]


def _vars(value: Any, base: Path, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str) and file_ref(value):
        loaded = load_var(value, base, where)
        value = loaded if isinstance(loaded, dict) else None
    if not isinstance(value, dict):
        raise UserError("`vars` must be a mapping of names to values", where=where)
    return {str(k): load_var(v, base, where) for k, v in value.items()}


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise UserError(
            "`assert` must be a list of assertions", where=where, hint="write `assert: [{type: …}]`"
        )
    return value


def _text(value: Any) -> Any:
    """A var as promptfoo's templates print it: JSON for lists and mappings, `true` / `false`, `2` for 2.0."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return (
        value
        if value is None or isinstance(value, str | int | float)
        else json.dumps(value, ensure_ascii=False)
    )

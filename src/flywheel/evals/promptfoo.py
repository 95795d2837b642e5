"""Run a promptfoo config (`promptfooconfig.yaml`: `prompts` + `providers` + `tests`) as flywheel eval suites,
natively: no npm, no promptfoo.

Each prompt becomes one suite with a `model:` target; the providers become its model matrix (the aliases of
flywheel.yaml they name, run side by side like `--models`); each test (after `file://` vars are read and list
vars expanded) becomes a case whose assertions are flywheel checks (flywheel.evals.promptfoo_asserts).
Runs are ordinary flywheel runs: stored, reported, resumable, comparable.

    from flywheel.evals.promptfoo import load_promptfoo
    suites = load_promptfoo("promptfooconfig.yaml", project)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.config import Project, read_yaml
from flywheel.config import where as line_of
from flywheel.errors import UserError
from flywheel.evals.promptfoo_asserts import Located, checks_of_test, to_check
from flywheel.evals.promptfoo_providers import grader_alias, provider_alias, read_providers
from flywheel.evals.promptfoo_templates import Template, render_value, translate
from flywheel.evals.promptfoo_tests import TEST_KEYS, TestRow, expand, file_ref, load_var, read_tests, resolve
from flywheel.evals.suite import MIN_CHECKS, EvalCase, Suite, Target

CONFIG_KEYS = frozenset({"description", "prompts", "providers", "targets", "tests", "defaultTest"})
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
    }
)


def is_promptfoo(data: Any, path: Path) -> bool:
    """A promptfoo config: named promptfooconfig.y(a)ml, or its top level has prompts + providers + tests."""
    if path.stem == "promptfooconfig":
        return True
    return (
        isinstance(data, dict)
        and "target" not in data
        and {"prompts", "tests"} <= set(data)
        and bool({"providers", "targets"} & set(data))
    )


@dataclass
class PromptSpec:
    label: str
    template: Template
    system: Template | None
    shots: list[dict[str, Any]]
    where: str


def load_promptfoo(
    path: str | Path, project: Project, data: Any = None, lines: dict | None = None
) -> list[Suite]:
    """One suite per prompt; every mistake is a UserError at its file:line."""
    path = Path(path)
    if data is None or lines is None:
        data, lines = read_yaml(path)
    line_map: dict = lines

    def at(*keys: Any) -> str:
        return line_of(path, line_map, keys)

    if not isinstance(data, dict):
        raise UserError(
            "a promptfoo config must be a mapping with prompts, providers and tests", where=f"{path}:1"
        )
    for key in data:
        if key not in CONFIG_KEYS | IGNORED_KEYS:
            raise UserError(
                f"promptfoo key `{key}` is not supported by flywheel eval",
                where=at(key),
                hint=f"supported keys: {', '.join(sorted(CONFIG_KEYS))} (ignored: "
                f"{', '.join(sorted(IGNORED_KEYS))})",
            )
    for key in ("prompts", "tests"):
        if not data.get(key):
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
    providers = read_providers(data[providers_key], providers_key, project, at, warnings)
    prompts = _prompts(data["prompts"], path.parent, at)
    default = data.get("defaultTest") or {}
    if not isinstance(default, dict):
        raise UserError(
            "`defaultTest` must be a mapping (vars, assert, options, threshold)", where=at("defaultTest")
        )
    _known_test_keys(default, at("defaultTest"))
    judge = grader_alias(default.get("options"), at("defaultTest", "options"), project)
    rows = read_tests(data["tests"], path, line_map)
    name = str(data.get("description") or path.stem)
    aliases = [p.alias for p in providers]
    suites = []
    for prompt in prompts:
        target = Target(
            "model",
            aliases[0],
            prompt=_flywheel_prompt(prompt),
            where=at(providers_key),
            prompt_where=prompt.where,
            params={p.alias: p.params for p in providers if p.params},
        )
        suite = Suite(
            name=name if len(prompts) == 1 else f"{name} · {prompt.label}",
            path=path,
            target=target,
            cases=[],
            judge=judge,
            models=aliases,
            warnings=warnings,
        )
        suite.cases = _cases(rows, default, prompt, path.parent, project, judge, warnings, at)
        suites.append(suite)
    warnings[:] = dict.fromkeys(
        warnings
    )  # the suites share one list; each prompt repeats the tests' warnings
    return suites


# ---------------------------------------------------------------- prompts


def _prompts(value: Any, base: Path, at: Callable[..., str]) -> list[PromptSpec]:
    entries: list[tuple[Any, str | None, str]] = []
    if isinstance(value, dict):  # {file://a.txt: label}
        entries = [(k, v, at("prompts", k)) for k, v in value.items()]
    else:
        for i, item in enumerate(value if isinstance(value, list) else [value]):
            where = at("prompts", i) if isinstance(value, list) else at("prompts")
            if isinstance(item, dict):
                unknown = set(item) - {"id", "raw", "label"}
                if unknown:
                    raise UserError(
                        f"prompt key(s) {', '.join(sorted(map(str, unknown)))} are not supported",
                        where=where,
                        hint="a prompt is text, file://…, or {raw|id, label}",
                    )
                entries.append((item.get("raw", item.get("id")), item.get("label"), where))
            else:
                entries.append((item, None, where))
    prompts: list[PromptSpec] = []
    for raw, label, where in entries:
        if not isinstance(raw, str) or not raw.strip():
            raise UserError(f"a prompt must be text or file://PATH, got {raw!r}", where=where)
        ref = file_ref(raw)
        if ref is None:
            prompts.append(_prompt(raw, label or _short(raw), where))
            continue
        for path in resolve(base, ref, where, "prompt"):
            prompts.extend(_file_prompts(path, label, where))
    labels = [p.label for p in prompts]
    for i, p in enumerate(prompts):
        if labels.count(labels[i]) > 1:  # two prompts with one label: number them, suite names stay unique
            p.label = f"{labels[i]} #{labels[:i].count(labels[i]) + 1}"
    return prompts


def _file_prompts(path: Path, label: str | None, where: str) -> list[PromptSpec]:
    suffix = path.suffix.lower()
    if suffix in (".py", ".js", ".ts", ".mjs", ".cjs"):
        raise UserError(
            f"prompt file {path.name}: flywheel runs no code to build prompts",
            where=where,
            hint="write the prompt as text (.txt) or a chat array (.json / .yaml)",
        )
    if suffix in (".json", ".yaml", ".yml"):
        data, _ = read_yaml(path)
        return [_chat(data, label or path.name, f"{path}:1")]
    text = path.read_text(encoding="utf-8")
    parts = [p.strip("\n") for p in text.split("\n---\n")] if "\n---\n" in text else [text]
    return [
        _prompt(p, label or (path.name if len(parts) == 1 else f"{path.name}: {i}"), f"{path}:1")
        for i, p in enumerate(parts, start=1)
    ]


def _prompt(text: str, label: str, where: str) -> PromptSpec:
    stripped = text.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        try:
            return _chat(json.loads(stripped), label, where)
        except ValueError:
            pass  # not JSON: a text prompt that happens to be in brackets
    return PromptSpec(label, translate(text, where), None, [], where)


def _chat(messages: Any, label: str, where: str) -> PromptSpec:
    """A chat array: system messages, earlier user/assistant turns (sent before the request, as n-shot
    examples), and the final user message (the template)."""
    ok = (
        isinstance(messages, list)
        and messages
        and all(
            isinstance(m, dict)
            and m.get("role") in ("system", "user", "assistant")
            and isinstance(m.get("content"), str)
            for m in messages
        )
    )
    if not ok or messages[-1]["role"] != "user":
        raise UserError(
            "a chat prompt must be a list of {role, content} messages ending with a user message",
            where=where,
            hint='[{"role": "system", "content": "…"}, {"role": "user", "content": "{{q}}"}]',
        )
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages[:-1] if m["role"] != "system"]
    if any("{{" in m["content"] for m in turns):
        raise UserError(
            "variables in earlier chat turns are not supported",
            where=where,
            hint="put {{ variables }} in the system message or the last user message",
        )
    if turns and turns[-1]["role"] != "assistant":
        raise UserError(
            "a chat prompt's user messages must alternate with assistant messages",
            where=where,
            hint="merge consecutive user messages into the last one",
        )
    shots = [{"messages": [{"role": m["role"], "content": m["content"]} for m in turns]}] if turns else []
    return PromptSpec(
        label,
        translate(messages[-1]["content"], where),
        translate(system, where) if system else None,
        shots,
        where,
    )


def _flywheel_prompt(spec: PromptSpec) -> Any:
    from flywheel.prompts.examples import Example
    from flywheel.prompts.registry import Prompt

    return Prompt(
        name=_slug(spec.label),
        template=spec.template.text,
        system=spec.system.text if spec.system else "",
        examples=tuple(Example.model_validate(s) for s in spec.shots),
    )


def _short(text: str, n: int = 40) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text).strip("-")[:60] or "prompt"


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
            missing = sorted(v for v in _used(prompt) if v not in raw_vars)
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


def _used(prompt: PromptSpec) -> set[str]:
    used = prompt.template.variables()
    return used | prompt.system.variables() if prompt.system is not None else used


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
    check = getattr(part.check, "inner", part.check)
    if check.needs_llm and getattr(check, "model", None) is None:
        if grader is not None:
            check.model = grader  # type: ignore[union-attr]
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
    return (
        value
        if value is None or isinstance(value, str | int | float | bool)
        else json.dumps(value, ensure_ascii=False)
    )

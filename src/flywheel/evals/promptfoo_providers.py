"""promptfoo providers as flywheel.yaml model aliases: `openai:chat:MODEL`, `openai:MODEL`,
`anthropic:messages:MODEL` (and other `kind:MODEL` ids) name the alias whose `model` is MODEL (the same
provider kind first); an alias name (or `flywheel:ALIAS`) names itself. A provider's `config` gives the
request fields flywheel sends per call (temperature, max_tokens, stop, response_format); credentials stay on
the alias.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.config import Project
from flywheel.errors import UserError

REQUEST_PARAMS = {
    "temperature": "temperature",
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "stop": "stop",
    "response_format": "response_format",
}
CREDENTIAL_KEYS = frozenset(
    {"apiKey", "apiKeyEnvar", "apiBaseUrl", "apiHost", "baseUrl", "organization", "headers"}
)
# request hints that change cost or speed, never the answer: ignored with a warning
NO_EFFECT_KEYS = frozenset({"cache_control", "showThinking", "passthrough"})
# test options promptfoo runs as code, or that flywheel's judge does not take
OPTION_WHY = {
    "transform": (
        "`transform` is JavaScript, and flywheel runs no JavaScript",
        (
            "assert on the text itself: `is-json` / `contains-json` (with a JSON Schema as value), `regex`, "
            "`icontains` …"
        ),
    ),
    "rubricPrompt": (
        "flywheel's judge keeps its own grading prompt (its hash ties every score to it)",
        "write the grading instructions into the `llm-rubric` value",
    ),
}
PROVIDER_KINDS = {"openai": "openai_compat", "anthropic": "anthropic"}


@dataclass
class Provider:
    alias: str
    params: dict[str, Any]
    label: str
    where: str
    prompts: list[str] | None = None  # the prompt labels it runs (None: all)


def read_providers(
    value: Any,
    key: str,
    project: Project,
    at: Callable[..., str],
    warnings: list[str],
    base: Path | None = None,
) -> list[Provider]:
    """The providers of the config; `base` (the config's folder) resolves `file://` config values."""
    items = value if isinstance(value, list) else [value]
    found: list[Provider] = []
    for i, item in enumerate(items):
        where = at(key, i) if isinstance(value, list) else at(key)
        config: Any = {}
        label = None
        if isinstance(item, dict) and "id" not in item and len(item) == 1:  # `- openai:gpt-4o: {config: …}`
            ((pid, options),) = item.items()
            item = {"id": pid, **(options or {})}
        if isinstance(item, dict):
            unknown = set(item) - {"id", "config", "label", "delay", "prompts"}
            if unknown:
                raise UserError(
                    f"provider key(s) {', '.join(sorted(map(str, unknown)))} are not supported",
                    where=where,
                    hint="a provider is `id` (+ `config`, `label`, `prompts`)",
                )
            pid, config, label = item.get("id"), item.get("config") or {}, item.get("label")
            prompts = item.get("prompts")
            if prompts is not None:
                prompts = [prompts] if isinstance(prompts, str) else prompts
                if not isinstance(prompts, list) or not all(isinstance(x, str) for x in prompts):
                    raise UserError("a provider's `prompts` must list prompt labels", where=where)
        else:
            pid, prompts = item, None
        if not isinstance(pid, str) or not pid.strip():
            raise UserError(
                f"a provider needs an id, got {item!r}",
                where=where,
                hint="e.g. openai:chat:gpt-4o-mini, anthropic:messages:claude-3-5-haiku, or an alias",
            )
        alias = "echo" if pid.strip() == "echo" else provider_alias(pid.strip(), project, where)
        if not isinstance(config, dict):
            raise UserError("a provider's `config` must be a mapping", where=where)
        params = _params(config, pid, where, warnings, base)
        clash = next((p for p in found if p.alias == alias), None)
        if clash is not None:
            raise UserError(
                f"providers `{clash.label}` and `{label or pid}` both run the alias `{alias}`",
                where=where,
                hint="the matrix compares aliases: add a second alias in flywheel.yaml "
                "(with its own `params:`) and name it as this provider's id",
            )
        found.append(Provider(alias, params, str(label or pid), where, prompts))
    return found


def provider_alias(pid: str, project: Project, where: str) -> str:
    """The flywheel.yaml alias a promptfoo provider id names: the alias itself (or `flywheel:ALIAS`), else the
    alias whose `model` is the id's model (same provider kind first)."""
    models = project.config.models
    name = pid.removeprefix("flywheel:")
    if name in models:
        return name
    kind, _, rest = pid.partition(":")
    model = (
        rest.split(":", 1)[1]
        if kind in ("openai", "anthropic", "azure", "ollama", "vertex", "bedrock")
        and rest.startswith(("chat:", "messages:", "completion:"))
        else rest
    )
    if not model:
        model, kind = pid, ""
    same = sorted(a for a, m in models.items() if m.model == model and m.provider == PROVIDER_KINDS.get(kind))
    other = sorted(a for a, m in models.items() if m.model == model)
    if same or other:
        return (same or other)[0]
    listed = (
        ", ".join(f"{a} ({m.provider}{' ' + m.model if m.model else ''})" for a, m in sorted(models.items()))
        or "none"
    )
    name_for = model.replace(":", "-").replace("/", "-")
    key_env = "ANTHROPIC_API_KEY" if kind == "anthropic" else "OPENAI_API_KEY"
    provider = PROVIDER_KINDS.get(kind, "openai_compat")
    raise UserError(
        f"provider `{pid}`: no model alias in flywheel.yaml has `model: {model}`",
        where=where,
        hint=f"aliases: {listed}. Add one under `models:` in flywheel.yaml, e.g. `{name_for}: "
        f"{{provider: {provider}, model: {model}, api_key_env: {key_env}}}`, or name an alias as the "
        "provider id",
    )


def _params(
    config: dict[str, Any], pid: str, where: str, warnings: list[str], base: Path | None
) -> dict[str, Any]:
    from flywheel.evals.promptfoo_tests import load_var

    params: dict[str, Any] = {}
    for key, value in config.items():
        if base is not None:
            value = load_var(value, base, where)  # `response_format: file://schema.json`
        if key in REQUEST_PARAMS:
            params[REQUEST_PARAMS[key]] = [value] if key == "stop" and isinstance(value, str) else value
        elif key in NO_EFFECT_KEYS:
            warnings.append(
                f"{where}: provider `{pid}` config `{key}` is ignored (it does not change answers)"
            )
        elif key in CREDENTIAL_KEYS:
            warnings.append(
                f"{where}: provider `{pid}` config `{key}` is ignored: the alias in flywheel.yaml "
                "holds the endpoint and key (base_url, api_key_env)"
            )
        else:
            raise UserError(
                f"provider config `{key}` is not supported",
                where=where,
                hint=f"supported: {', '.join(sorted(REQUEST_PARAMS))}; other request parameters go "
                f"on the alias in flywheel.yaml: `params: {{{key}: …}}`",
            )
    return params


def grader_alias(options: Any, where: str, project: Project) -> str | None:
    """The judge alias of `options.provider` (a string or {id}), or None."""
    if options is None:
        return None
    if not isinstance(options, dict):
        raise UserError("`options` must be a mapping", where=where)
    for key, (why, hint) in OPTION_WHY.items():
        if key in options:
            raise UserError(f"test option `{key}` is not supported: {why}", where=where, hint=hint)
    unknown = set(options) - {"provider"}
    if unknown:
        raise UserError(
            f"test option(s) {', '.join(sorted(map(str, unknown)))} are not supported",
            where=where,
            hint="flywheel reads `options.provider` (the grading model)",
        )
    provider = options.get("provider")
    if provider is None:
        return None
    pid = provider.get("id") if isinstance(provider, dict) else provider
    if not isinstance(pid, str):
        raise UserError(
            f"cannot read grading provider {provider!r}", where=where, hint="write `provider: ALIAS`"
        )
    return provider_alias(pid, project, where)


def echo_target(prompt: Any, where: str) -> Any:
    """A Python target answering with the prompt rendered for the case, like promptfoo's `echo` provider
    (a chat prompt echoes as its JSON messages)."""
    from flywheel.evals.suite import Target
    from flywheel.prompts.render import render

    def echo(vars: dict[str, Any]) -> str:
        text = render(prompt.template.text, vars, where=prompt.where)
        if prompt.system is None and not prompt.shots:
            return text
        system = [{"role": "system", "content": render(prompt.system.text, vars)}] if prompt.system else []
        shots = [m for s in prompt.shots for m in s["messages"]]
        return json.dumps([*system, *shots, {"role": "user", "content": text}], ensure_ascii=False)

    return Target("python", "echo", function=echo, where=where)

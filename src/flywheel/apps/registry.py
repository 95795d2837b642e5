"""Apps by name, built from the `apps:` section of flywheel.yaml. `docs_qa` exists even without one.

    apps:
      docs_qa:
        kind: docs_qa               # which app implementation: docs_qa (default) or chat (a guarded model route)
        model: default              # model alias
        prompt: prompts/docs_qa.yaml  # a path in the project, or a prompt name; default: docs_qa
        tenant: default
        guards: {input: [...], output: [...]}
        options: {k: 5, filters: {lang: en}, no_answer: {en: "…", zh: "…"}}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flywheel.config import AppConfig
from flywheel.errors import ConfigError, UserError

DEFAULT_APP = "docs_qa"
DOCS_QA_OPTIONS = {"k", "filters", "no_answer"}


def _docs_qa(runtime: Any, name: str, cfg: AppConfig, cache: bool = True) -> Any:
    from flywheel.apps.docs_qa import DocsQA
    from flywheel.prompts import PromptRegistry

    project = runtime.project
    _known_alias(runtime, name, cfg)
    unknown = set(cfg.options) - DOCS_QA_OPTIONS
    if unknown:
        raise ConfigError(f"unknown option(s) for app '{name}': {', '.join(sorted(unknown))}",
                          where=project.where("apps", name, "options", min(unknown)),
                          hint=f"docs_qa options are {', '.join(sorted(DOCS_QA_OPTIONS))}")
    k = cfg.options.get("k")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
        raise ConfigError(f"`options.k` must be a positive whole number, not {k!r}",
                          where=project.where("apps", name, "options", "k"), hint="for example k: 5")
    filters = cfg.options.get("filters")
    if filters is not None and not isinstance(filters, dict):
        raise ConfigError("`options.filters` must be a mapping of metadata field to value",
                          where=project.where("apps", name, "options", "filters"), hint="for example {lang: en}")
    no_answer = cfg.options.get("no_answer")
    if no_answer is not None and not isinstance(no_answer, str | dict):
        raise ConfigError("`options.no_answer` must be a message or a mapping of language to message",
                          where=project.where("apps", name, "options", "no_answer"),
                          hint='for example {en: "I don\'t know.", zh: "我不知道。"}')
    prompt = PromptRegistry(project.root).get(cfg.prompt or DEFAULT_APP, where=project.where("apps", name, "prompt"))
    guards = _guards(runtime, name, cfg)
    # Runtime.cache, where the runtime provides one (flywheel.cache.Cache built from `cache:` in flywheel.yaml).
    cache = getattr(runtime, "cache", None) if cache else None
    return DocsQA(retriever=runtime.retriever, gateway=runtime.gateway, prompt=prompt, model=cfg.model,
                  name=name, tenant=cfg.tenant, k=k, filters=filters, no_answer=no_answer, guards=guards,
                  cache=cache)


def _chat(runtime: Any, name: str, cfg: AppConfig, cache: bool = True) -> Any:
    from flywheel.apps.chat import ChatApp

    project = runtime.project
    _known_alias(runtime, name, cfg)
    unknown = set(cfg.options) - {"system"}
    if unknown:
        raise ConfigError(f"unknown option(s) for app '{name}': {', '.join(sorted(unknown))}",
                          where=project.where("apps", name, "options", min(unknown)),
                          hint="chat apps take options: {system: \"…\"}")
    return ChatApp(gateway=runtime.gateway, model=cfg.model, name=name, system=cfg.options.get("system"),
                   tenant=cfg.tenant, guards=_guards(runtime, name, cfg), cache=getattr(runtime, "cache", None) if cache else None)


def _known_alias(runtime: Any, name: str, cfg: AppConfig) -> None:
    models = runtime.config.models
    if cfg.model not in models:
        raise ConfigError(f"app '{name}' uses unknown model alias '{cfg.model}'",
                          where=runtime.project.where("apps", name, "model"),
                          hint=f"known aliases: {', '.join(sorted(models))}")


def _guards(runtime: Any, name: str, cfg: AppConfig) -> Any:
    from flywheel.guards import GuardPolicy

    if not (cfg.guards.input or cfg.guards.output or cfg.guards.sources):
        return None
    return GuardPolicy.from_config(cfg.guards, where=lambda *p: runtime.project.where("apps", name, "guards", *p),
                                   aliases=set(runtime.config.models))


APP_KINDS: dict[str, Callable[..., Any]] = {"docs_qa": _docs_qa, "chat": _chat}


def build_app(runtime: Any, name: str = DEFAULT_APP, *, cache: bool = True) -> Any:
    """The app `name` of the runtime's project, wired to its retriever, gateway and prompts."""
    apps = runtime.config.apps
    cfg = apps.get(name)
    if cfg is None:
        if name != DEFAULT_APP:
            known = sorted({DEFAULT_APP, *apps})
            raise UserError(f"unknown app '{name}'", where=runtime.project.where("apps"),
                            hint=f"known apps: {', '.join(known)}; add it under `apps:` in flywheel.yaml")
        cfg = AppConfig()
    factory = APP_KINDS.get(cfg.kind)
    if factory is None:
        raise ConfigError(f"app '{name}' has unknown kind '{cfg.kind}'",
                          where=runtime.project.where("apps", name, "kind"),
                          hint=f"known kinds: {', '.join(sorted(APP_KINDS))}")
    return factory(runtime, name, cfg, cache=cache)

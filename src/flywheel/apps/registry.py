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

from flywheel.config import AppConfig, ChatOptions, DocsQAOptions
from flywheel.errors import ConfigError
from flywheel.protocols import RuntimeLike
from flywheel.registry import Registry, signature_problem, unknown_name

DEFAULT_APP = "docs_qa"


def _docs_qa(runtime: RuntimeLike, name: str, cfg: AppConfig, cache: bool = True) -> Any:
    from flywheel.apps.docs_qa import DocsQA
    from flywheel.prompts import PromptRegistry

    project = runtime.project
    options = DocsQAOptions.model_validate(cfg.options)  # checked with file:line when flywheel.yaml loaded
    k, filters, no_answer = options.k, options.filters, options.no_answer
    label = options.prompt_label  # a pinned label serves the stored version even after the file moved on
    where = project.where("apps", name, "options", "prompt_label") if label else project.where("apps", name, "prompt")
    registry = PromptRegistry(project.root, store=runtime.store)
    ref = cfg.prompt or DEFAULT_APP
    prompt = registry.get(ref, where=where, label=label)
    guards = _guards(runtime, name, cfg)
    # Runtime.cache, where the runtime provides one (flywheel.cache.Cache built from `cache:` in flywheel.yaml).
    response_cache = runtime.cache if cache else None
    return DocsQA(retriever=runtime.retriever, gateway=runtime.gateway, prompt=prompt, model=cfg.model,
                  name=name, tenant=cfg.tenant, k=k, filters=filters, no_answer=no_answer, guards=guards,
                  cache=response_cache, query=options.query, rerank=options.rerank, context=options.context,
                  prompts=registry, prompt_source=lambda: registry.get(ref, where=where, label=label))


def _chat(runtime: RuntimeLike, name: str, cfg: AppConfig, cache: bool = True) -> Any:
    from flywheel.apps.chat import ChatApp
    from flywheel.apps.memory import ConversationMemory

    options = ChatOptions.model_validate(cfg.options)  # checked with file:line when flywheel.yaml loaded
    from flywheel.apps.session_vaults import vaults_for

    memory = ConversationMemory(lambda: runtime.store, max_turns=options.memory.max_turns,  # opened on first use
                                token_budget=options.memory.token_budget, keep_turns=options.avoid_recent,
                                vaults=vaults_for(runtime.config))
    return ChatApp(gateway=runtime.gateway, model=cfg.model, name=name, system=options.system,
                   tenant=cfg.tenant, guards=_guards(runtime, name, cfg),
                   cache=runtime.cache if cache else None, memory=memory, avoid_recent=options.avoid_recent)


def _guards(runtime: RuntimeLike, name: str, cfg: AppConfig, services: Any = ...) -> Any:
    """The app's guard policy; LLM checks in it (judge) call the runtime's gateway."""
    from flywheel.checks.base import Services
    from flywheel.guards import GuardPolicy

    if not (cfg.guards.input or cfg.guards.output or cfg.guards.sources):
        return None
    if services is ...:
        services = Services(gateway=runtime.gateway)
    return GuardPolicy.from_config(cfg.guards, where=lambda *p: runtime.project.where("apps", name, "guards", *p),
                                   aliases=set(runtime.config.models) | set(runtime.config.routes), services=services,
                                   models=runtime.config.models)


def check_guards(runtime: RuntimeLike) -> None:
    """Build every configured app's guard policy once, so that an unknown check or a bad check argument is a
    ConfigError with file:line when the project opens, not on the app's first request. (The shape of each
    guard entry was already checked when flywheel.yaml loaded; the check registry lives up here.)"""
    for name, cfg in runtime.config.apps.items():
        _guards(runtime, name, cfg, services=None)


# factory(runtime, name, AppConfig, cache=True) -> App; plugins add kinds through the `flywheel.apps` group.
AppFactory = Callable[..., Any]
APP_KINDS: Registry[AppFactory] = Registry("kind", group="flywheel.apps", validate=lambda factory: signature_problem(
    factory, "factory(runtime, name, cfg, cache=True)", None, "", None, cache=True))
APP_KINDS.register("docs_qa", _docs_qa)
APP_KINDS.register("chat", _chat)
APP_KINDS.register("sql_qa", "flywheel.workflows.sql_qa:sql_qa_factory")
APP_KINDS.register("summarize", "flywheel.workflows.summarize:summarize_factory")


def build_app(runtime: RuntimeLike, name: str = DEFAULT_APP, *, cache: bool = True) -> Any:
    """The app `name` of the runtime's project, wired to its retriever, gateway and prompts."""
    apps = runtime.config.apps
    cfg = apps.get(name)
    if cfg is None:
        if name != DEFAULT_APP:
            raise unknown_name("app", name, {DEFAULT_APP, *apps}, where=runtime.project.where("apps"),
                               hint="add it under `apps:` in flywheel.yaml")
        cfg = AppConfig()
    if cfg.kind not in APP_KINDS:
        APP_KINDS.load_plugins()
    if cfg.kind not in APP_KINDS:
        raise unknown_name("kind", cfg.kind, APP_KINDS.names(), used_by=f"app '{name}'", error=ConfigError,
                           where=runtime.project.where("apps", name, "kind"))
    factory = APP_KINDS.get(cfg.kind, where=runtime.project.where("apps", name, "kind"))
    return factory(runtime, name, cfg, cache=cache)

"""Runtime: one project's wired-up services, built lazily. Surfaces (CLI, server) use this and nothing lower.

    with Runtime(Project.load(".")) as rt:
        rt.gateway.chat(...); rt.retriever.search(...); rt.app("docs_qa").run("question")
"""

from __future__ import annotations

import functools
from functools import cached_property
from typing import TYPE_CHECKING, Any, Self

from flywheel.config import Project
from flywheel.errors import ConfigError
from flywheel.protocols import Embedder, Masker

if TYPE_CHECKING:
    from flywheel.cache import Cache
    from flywheel.gateway import Gateway
    from flywheel.retrieval import Retriever
    from flywheel.store import Store


class Runtime:
    def __init__(self, project: Project, *, tracing: bool = True):
        self.project = project
        self.config = project.config
        self._tracing = tracing and project.config.tracing.enabled
        self._detach: Any = None
        if any(a.prompt is not None for a in project.config.apps.values()):
            from flywheel.apps.app_prompts import check_app_prompts

            check_app_prompts(project)  # a prompt name that is none (or prose) fails here, with file:line
        if any(a.guards.input or a.guards.output or a.guards.sources for a in project.config.apps.values()):
            from flywheel.apps.registry import check_guards

            check_guards(self)  # a bad check in a guard fails here, with file:line, not on a first request
        if self._tracing:  # spans that end before the store opens are held for it, not dropped
            from flywheel.tracing import tracer

            tracer.expect_store()

    @cached_property
    def store(self) -> Store:
        from flywheel.store import Store

        store = Store.open(self.project.store_url)
        if self._tracing:
            from flywheel.tracing import attach_store

            self._detach = attach_store(store, self.config.tracing, models=self.config.models,
                                        masker=pii_masker(self.config.tracing.redact_pii,
                                                          self.project.where("tracing", "redact_pii")))
        return store

    @cached_property
    def gateway(self) -> Gateway:
        from flywheel.gateway import Gateway

        if self._tracing:
            self.store  # noqa: B018 - open the store first so gateway spans are recorded
        return Gateway.from_config(self.config)

    @cached_property
    def retriever(self) -> Retriever:
        from flywheel.retrieval import Retriever

        return Retriever.from_config(self.store, self.config.retrieval, self.project)

    @cached_property
    def embedder(self) -> Embedder | None:
        """The project's retrieval embedder (`retrieval.embedder`) for near-duplicate detection and features;
        None when it cannot load (callers fall back to token overlap)."""
        from flywheel.retrieval.embedders import build_embedder

        try:
            return build_embedder(self.config.retrieval, self.config.models, self.project.where("retrieval", "embedder"))
        except Exception:  # noqa: BLE001 - an embedder that cannot load only costs the embedding comparison
            return None

    @cached_property
    def cache(self) -> Cache | None:
        """The `cache:` section as a Cache, or None when both the exact and the semantic cache are off."""
        cfg = self.config.cache
        if not cfg.exact and cfg.semantic is None:
            return None
        from flywheel.cache import Cache

        return Cache.from_config(cfg, self.store, cache_embedder() if cfg.semantic is not None else None,
                                 mask=pii_masker(self.config.tracing.redact_pii,
                                                 self.project.where("tracing", "redact_pii")))

    def app(self, name: str = "docs_qa", *, cache: bool = True):
        """The app `name`; `cache=False` builds it without the response cache (evals replay uncached)."""
        from flywheel.apps.registry import build_app

        return build_app(self, name, cache=cache)

    def close(self) -> None:
        from flywheel.tracing import tracer

        tracer.flush()
        if self._detach is not None:
            self._detach()
            self._detach = None
        cache = self.__dict__.get("cache")
        if cache is not None:
            cache.close()
        if "store" in self.__dict__:
            self.store.close()
        elif self._tracing:
            tracer.discard_early()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pii_masker(setting: bool | list[str], where: str | None = None) -> Masker | None:
    """`tracing.redact_pii` as the masker tracing is given (tracing does not import the detectors in checks/);
    `where`: its file:line, for the error an unknown type gives."""
    if setting is False:
        return None
    from flywheel.checks.pii import analyzer, redact_for_storage

    if setting is not True:
        try:
            analyzer(list(setting))  # an unknown type would mask nothing: stop at start-up, not on the writer
        except ValueError as exc:
            raise ConfigError(f"`tracing.redact_pii`: {exc}", where=where,
                              hint="or redact_pii: true for every type") from None
    masker: Masker = functools.partial(redact_for_storage, entities=None if setting is True else list(setting))
    return masker


def cache_embedder() -> Embedder:
    """The semantic cache's embedder: retrieval's local MiniLM, shared with ingest (the cache does not import
    retrieval)."""
    from flywheel.retrieval.embedders import local_embedder

    return local_embedder()

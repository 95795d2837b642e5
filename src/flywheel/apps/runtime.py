"""Runtime: one project's wired-up services, built lazily. Surfaces (CLI, server) use this and nothing lower.

    with Runtime(Project.load(".")) as rt:
        rt.gateway.chat(...); rt.retriever.search(...); rt.app("docs_qa").run("question")
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Self

from flywheel.config import Project


class Runtime:
    def __init__(self, project: Project, *, tracing: bool = True):
        self.project = project
        self.config = project.config
        self._tracing = tracing and project.config.tracing.enabled
        self._detach: Any = None

    @cached_property
    def store(self):
        from flywheel.store import Store

        store = Store.open(self.project.store_url)
        if self._tracing:
            from flywheel.tracing import attach_store

            self._detach = attach_store(store, self.config.tracing, models=self.config.models)
        return store

    @cached_property
    def gateway(self):
        from flywheel.gateway import Gateway

        if self._tracing:
            self.store  # noqa: B018 - open the store first so gateway spans are recorded
        return Gateway.from_config(self.config)

    @cached_property
    def retriever(self):
        from flywheel.retrieval import Retriever

        return Retriever.from_config(self.store, self.config.retrieval, self.project)

    @cached_property
    def cache(self):
        """The `cache:` section as a Cache, or None when both the exact and the semantic cache are off."""
        cfg = self.config.cache
        if not cfg.exact and cfg.semantic is None:
            return None
        from flywheel.cache import Cache

        return Cache.from_config(cfg, self.store)

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
        if self.__dict__.get("cache") is not None:
            self.cache.close()
        if "store" in self.__dict__:
            self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

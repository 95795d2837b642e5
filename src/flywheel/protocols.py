"""What the rooms need from each other, as Protocols (layer 0): a room depends on the shape, the Runtime
(`flywheel.apps.runtime`) injects the implementation. This is how a lower or sibling room uses a service it
may not import — tracing masks PII without importing `checks`, the cache embeds without importing
`retrieval` — and how apps, evals and surfaces name their collaborators without `Any`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: layer 0 imports nothing above it at run time
    import numpy as np

    from flywheel.types import ChatRequest, ChatResult, Hit


@runtime_checkable
class Masker(Protocol):
    """Irreversibly masks sensitive values in a text (PII before spans are stored)."""

    def __call__(self, text: str, /) -> str: ...


@runtime_checkable
class Embedder(Protocol):
    """Texts → float32 array, one row per text (the semantic cache normalises the rows itself)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class StoreLike(Protocol):
    """An open store (`flywheel.store.Store`)."""

    url: str
    dialect: str

    @property
    def engine(self) -> Any: ...

    def flush(self, timeout: float | None = 30.0) -> bool: ...

    def close(self) -> None: ...


class GatewayLike(Protocol):
    """`flywheel.gateway.Gateway`: aliases → pinned models, retries, fallbacks, cost."""

    def chat(self, request: ChatRequest) -> ChatResult: ...

    async def achat(self, request: ChatRequest) -> ChatResult: ...

    async def aclose(self) -> None: ...

    def close(self) -> None: ...

    def resolve(self, alias: str) -> Any: ...

    def chain(self, alias: str) -> tuple[str, ...]: ...


class RetrieverLike(Protocol):
    """`flywheel.retrieval.Retriever`: hybrid search over one store."""

    def search(self, query: str, k: int | None = None, tenant: str = "default", filters: dict | None = None,
               mode: Any = "hybrid") -> list[Hit]: ...


class CacheLike(Protocol):
    """`flywheel.cache.Cache`: exact, item and semantic answers in front of the model."""

    def lookup(self, request: ChatRequest, *, model_version: str, prompt_version: str | None = None,
               corpus_version: str | None = None, tenant: str | None = None, route: str | None = None,
               guards: str | None = None, nonce: str = "") -> Any: ...

    def save(self, request: ChatRequest, result: Any, *, model_version: str, prompt_version: str | None = None,
             corpus_version: str | None = None, tenant: str | None = None, ttl_s: float | None = None,
             route: str | None = None, guards: str | None = None, nonce: str = "") -> str | None: ...

    def close(self) -> None: ...


class RuntimeLike(Protocol):
    """`flywheel.apps.runtime.Runtime`: one project's services, built lazily."""

    project: Any
    config: Any

    @property
    def store(self) -> StoreLike: ...

    @property
    def gateway(self) -> GatewayLike: ...

    @property
    def retriever(self) -> RetrieverLike: ...

    @property
    def cache(self) -> CacheLike | None: ...

    def app(self, name: str = "docs_qa", *, cache: bool = True) -> Any: ...

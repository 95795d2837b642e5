"""Cache backends: the store (default), Redis, and an in-process one; chosen by `cache.backend`."""

from __future__ import annotations

from typing import Any

from flywheel.cache.backends.base import Backend, BackendDown, Breaker, SemanticEntry, StoredAnswer, VectorRow
from flywheel.errors import UserError


def open_backend(spec: str, store: Any = None) -> Backend:
    """`store` → the project's store; `redis://…` / `rediss://…` / `unix://…` → Redis; `memory` → in-process."""
    spec = (spec or "store").strip()
    if spec == "store":
        if store is None:
            raise UserError("the cache backend is `store` but no store was given",
                            hint="pass the project's Store (Runtime.store) or set `cache: {backend: memory}`")
        from flywheel.cache.backends.store import StoreBackend

        return StoreBackend(store)
    if spec.startswith(("redis://", "rediss://", "unix://")):
        from flywheel.cache.backends.redis import RedisBackend

        return RedisBackend(spec)
    if spec == "memory":
        from flywheel.cache.backends.memory import MemoryBackend

        return MemoryBackend()
    raise UserError(f"unknown cache backend {spec!r}",
                    hint="set `cache: backend:` to store (default), memory or redis://host:6379/0")


__all__ = ["Backend", "BackendDown", "Breaker", "SemanticEntry", "StoredAnswer", "VectorRow", "open_backend"]

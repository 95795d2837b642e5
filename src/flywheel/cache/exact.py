"""Exact cache: answers keyed by the request's sha256 key (see keys.py), with TTL and pinned answers.

A pinned answer is a reviewed one: it has no expiry, is never purged or evicted, and wins over an ordinary
entry with the same key (saving a fresh answer does not replace it; `unpin` does).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flywheel.cache.backends.base import StoredAnswer
from flywheel.cache.backends.guarded import GuardedBackend
from flywheel.cache.keys import Versions, exact_key
from flywheel.errors import UserError
from flywheel.types import ChatRequest


class ExactCache:
    def __init__(self, backend: GuardedBackend, *, ttl_s: float | None = None,
                 clock: Callable[[], float] = time.time):
        self.backend = backend
        self.ttl_s = ttl_s
        self.clock = clock  # wall-clock seconds; tests inject a fake one instead of sleeping

    def get(self, key: str, now: float | None = None) -> StoredAnswer | None:
        return self.backend.call("get", None, key, self.clock() if now is None else now)

    def put(self, key: str, text: str, *, ttl_s: float | None = None, meta: dict[str, Any] | None = None,
            now: float | None = None) -> bool:
        """Store an ordinary answer (True when stored); `ttl_s` overrides the default TTL (None: the default)."""
        now = self.clock() if now is None else now
        ttl = self.ttl_s if ttl_s is None else ttl_s
        expires = None if ttl is None else now + ttl
        return self.backend.attempt("put", StoredAnswer(key, text, now, expires, False, meta or {}))

    def pin(self, key: str, text: str, *, meta: dict[str, Any] | None = None) -> bool:
        return self.backend.attempt("put", StoredAnswer(key, text, self.clock(), None, True, meta or {}))

    def unpin(self, key: str) -> None:
        self.backend.call("delete", None, key, pinned=True)

    def delete(self, key: str) -> None:
        self.backend.call("delete", None, key, pinned=False)


def resolve_key(key_or_request: str | ChatRequest, versions: Versions | None) -> str:
    """A key as given, or the exact key of a request (which needs the versions it was answered under)."""
    if isinstance(key_or_request, str):
        return key_or_request
    if versions is None:
        raise UserError("pinning a request needs the model version it is answered with",
                        hint="pass model_version=… (and prompt_version/corpus_version/tenant if they apply)")
    return exact_key(key_or_request, versions)

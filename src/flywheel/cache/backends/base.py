"""What a cache backend stores, the interface every backend implements, and the circuit breaker."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flywheel.text.secrets import scrub_secrets


class BackendDown(Exception):
    """The backend could not be reached (refused, timed out, disconnected). Never reaches the caller."""


@dataclass(frozen=True)
class StoredAnswer:
    """An exact (or item) entry. Pinned entries never expire and win over ordinary ones with the same key."""

    key: str
    text: str
    created_at: float
    expires_at: float | None = None
    pinned: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SemanticEntry:
    id: str
    scope: str
    question: str
    text: str
    created_at: float
    expires_at: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VectorRow:
    id: str
    vector: np.ndarray
    expires_at: float | None


_HIT_TEXT_FIELDS = ("query", "cached_question")


def stored_answer(entry: StoredAnswer) -> StoredAnswer:
    """What a durable backend writes: the entry with secrets scrubbed from its text. Applied at the write so
    nothing a caller passes in (a model answer quoting a key, a pinned answer) reaches a row unscrubbed; a
    later hit returns the scrubbed copy, never the secret."""
    text = scrub_secrets(entry.text)
    if text == entry.text:
        return entry
    return StoredAnswer(entry.key, text, entry.created_at, entry.expires_at, entry.pinned, entry.meta)


def hit_row(row: dict[str, Any]) -> dict[str, Any]:
    """A hit-log row with the user's query (and the cached question it matched) scrubbed of secrets."""
    return {k: scrub_secrets(v) if k in _HIT_TEXT_FIELDS and isinstance(v, str) else v for k, v in row.items()}


class Backend(ABC):
    """Storage for exact entries, semantic entries (with their vectors) and the hit log.

    Methods may raise BackendDown (or anything else); the Cache façade turns every failure into a miss plus a
    warning span, so a backend never needs to protect the caller itself.
    """

    name: str = "backend"

    # ---------------------------------------------------------------- exact / item entries
    @abstractmethod
    def get(self, key: str, now: float) -> StoredAnswer | None:
        """The pinned entry for `key`, else the ordinary one when it has not expired."""

    @abstractmethod
    def put(self, entry: StoredAnswer) -> None:
        """Insert or replace the entry with the same (key, pinned)."""

    @abstractmethod
    def delete(self, key: str, *, pinned: bool) -> None:
        """Remove the pinned or the ordinary entry for `key`."""

    # ---------------------------------------------------------------- semantic entries
    @abstractmethod
    def add_semantic(self, scope: str, question: str, text: str, vector: np.ndarray, *, created_at: float,
                     expires_at: float | None, meta: dict[str, Any]) -> str:
        """Store one entry; returns its id."""

    @abstractmethod
    def semantic_since(self, scope: str, cursor: Any) -> tuple[list[VectorRow], Any]:
        """Vectors of `scope` added after `cursor` (None: from the start), and the new cursor. Lets every
        process keep its in-memory index in step with entries other processes wrote."""

    @abstractmethod
    def semantic_entries(self, ids: list[str]) -> dict[str, SemanticEntry]:
        """The entries that still exist (expired or deleted ones are absent)."""

    # ---------------------------------------------------------------- upkeep
    @abstractmethod
    def log_hit(self, row: dict[str, Any]) -> None:
        """Record one hit (or a candidate the verifier rejected), for measuring hit precision later."""

    def purge_expired(self, now: float) -> int:
        """Delete expired ordinary entries; returns how many (0 where the backend expires keys itself)."""
        return 0

    @abstractmethod
    def clear(self, *, include_pinned: bool = False) -> None:
        """Remove every entry (pinned answers too only when asked)."""

    def close(self) -> None:
        """Release connections."""


class Breaker:
    """Circuit breaker with exponential back-off: after a failure the backend is skipped (uncached, no
    waiting on a socket) for base_s, doubling per consecutive failure up to max_s; then one call tries again."""

    def __init__(self, base_s: float = 1.0, max_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.base_s, self.max_s = base_s, max_s
        self.clock = clock  # monotonic seconds; tests inject a fake one instead of sleeping
        self.failures = 0
        self.retry_at = 0.0
        self.last_error: str | None = None
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        return self.failures > 0 and self.clock() < self.retry_at

    def allow(self) -> bool:
        if self.failures == 0:
            return True
        with self._lock:
            now = self.clock()
            if now < self.retry_at:
                return False
            # half-open: let this one call through, hold the others back until it reports
            self.retry_at = now + self.base_s
            return True

    def success(self) -> None:
        if self.failures:
            with self._lock:
                self.failures = 0
                self.retry_at = 0.0
                self.last_error = None

    def failure(self, error: str) -> float:
        """Record a failure; returns the seconds until the next try."""
        with self._lock:
            self.failures += 1
            delay = min(self.max_s, self.base_s * 2 ** (self.failures - 1))
            self.retry_at = self.clock() + delay
            self.last_error = error
            return delay

"""In-process backend: for a Python user without a store, and for unit tests of the cache logic.

Not shared between processes and gone on exit; the store (default) and Redis backends are the durable ones.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from typing import Any

import numpy as np

from flywheel.cache.backends.base import Backend, SemanticEntry, StoredAnswer, VectorRow


class MemoryBackend(Backend):
    name = "memory"

    def __init__(self, max_hits_logged: int = 100_000):
        self._exact: dict[tuple[str, bool], StoredAnswer] = {}
        self._semantic: dict[str, tuple[SemanticEntry, np.ndarray]] = {}
        self._by_scope: dict[str, list[str]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.hits: deque[dict[str, Any]] = deque(maxlen=max_hits_logged)

    def get(self, key: str, now: float) -> StoredAnswer | None:
        pinned = self._exact.get((key, True))
        if pinned is not None:
            return pinned
        entry = self._exact.get((key, False))
        if entry is None or (entry.expires_at is not None and entry.expires_at <= now):
            return None
        return entry

    def put(self, entry: StoredAnswer) -> None:
        self._exact[(entry.key, entry.pinned)] = entry

    def delete(self, key: str, *, pinned: bool) -> None:
        self._exact.pop((key, pinned), None)

    def add_semantic(self, scope: str, question: str, text: str, vector: np.ndarray, *, created_at: float,
                     expires_at: float | None, meta: dict[str, Any]) -> str:
        with self._lock:
            entry_id = str(next(self._ids))
            entry = SemanticEntry(entry_id, scope, question, text, created_at, expires_at, dict(meta))
            self._semantic[entry_id] = (entry, np.asarray(vector, dtype=np.float32).copy())
            self._by_scope.setdefault(scope, []).append(entry_id)
        return entry_id

    def semantic_since(self, scope: str, cursor: Any) -> tuple[list[VectorRow], Any]:
        ids = self._by_scope.get(scope, [])
        start = cursor or 0
        rows = []
        for entry_id in ids[start:]:
            found = self._semantic.get(entry_id)
            if found is not None:
                rows.append(VectorRow(entry_id, found[1], found[0].expires_at))
        return rows, len(ids)

    def semantic_entries(self, ids: list[str]) -> dict[str, SemanticEntry]:
        return {i: self._semantic[i][0] for i in ids if i in self._semantic}

    def log_hit(self, row: dict[str, Any]) -> None:
        self.hits.append(row)

    def purge_expired(self, now: float) -> int:
        dead = [k for k, e in self._exact.items() if not e.pinned and e.expires_at is not None and e.expires_at <= now]
        for k in dead:
            del self._exact[k]
        gone = [i for i, (e, _) in self._semantic.items() if e.expires_at is not None and e.expires_at <= now]
        for i in gone:
            del self._semantic[i]
        return len(dead) + len(gone)

    def clear(self, *, include_pinned: bool = False) -> None:
        self._exact = {k: e for k, e in self._exact.items() if e.pinned and not include_pinned}
        self._semantic.clear()

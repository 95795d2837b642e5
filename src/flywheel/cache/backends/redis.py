"""Redis backend (`cache: {backend: redis://host:6379/0}`), for several serving processes sharing one cache.

Layout under a key prefix (default `flywheel:cache:`, `?prefix=…` in the URL to change it):
  x:<key>            ordinary exact/item answer (JSON), with a Redis TTL when the entry has one
  pin:<key>          pinned answer, no TTL (never expires; not evicted under a volatile-* maxmemory policy)
  sseq:<scope>       counter of semantic entries in the scope
  s:<scope>:<n>      semantic entry hash: vector (float32 bytes), question, text, created_at, expires_at, meta
  hits               capped list of hit-log rows (JSON), used when no store is attached

Short socket timeouts and no client retries: a dead Redis fails fast and the façade's circuit breaker stops
asking it for a while.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from flywheel.cache.backends.base import (
    Backend,
    BackendDown,
    SemanticEntry,
    StoredAnswer,
    VectorRow,
    hit_row,
    stored_answer,
)
from flywheel.errors import UserError
from flywheel.text.install import pip_install
from flywheel.text.secrets import scrub_secrets

DEFAULT_PREFIX = "flywheel:cache:"
CONNECT_TIMEOUT_S = 0.2
SOCKET_TIMEOUT_S = 0.25
MAX_HITS_LOGGED = 100_000
_FETCH_CHUNK = 1000


def _split_url(url: str) -> tuple[str, str, dict[str, Any]]:
    """(URL for redis-py, key prefix, timeout defaults not overridden in the URL)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    prefix = query.pop("prefix", DEFAULT_PREFIX)
    defaults: dict[str, Any] = {}
    if "socket_timeout" not in query:
        defaults["socket_timeout"] = SOCKET_TIMEOUT_S
    if "socket_connect_timeout" not in query:
        defaults["socket_connect_timeout"] = CONNECT_TIMEOUT_S
    return urlunsplit(parts._replace(query=urlencode(query))), prefix, defaults


class RedisBackend(Backend):
    name = "redis"

    def __init__(self, url: str, *, prefix: str | None = None):
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:
            raise UserError("the cache backend is Redis but the redis client is not installed",
                            hint=f"{pip_install('redis')} or set `cache: {{backend: store}}`") from None
        clean, url_prefix, defaults = _split_url(url)
        self.prefix = prefix if prefix is not None else url_prefix
        try:
            self.client = redis.Redis.from_url(clean, retry=Retry(NoBackoff(), 0), retry_on_timeout=False,
                                               health_check_interval=0, **defaults)
        except ValueError as exc:
            raise UserError(f"cannot parse the Redis URL {url!r}: {exc}",
                            hint="use redis://host:6379/0 (rediss:// for TLS) in `cache: backend:`") from None
        self._errors: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError, OSError)

    # ---------------------------------------------------------------- plumbing
    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self._errors as exc:
            raise BackendDown(f"redis: {exc}") from exc

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    @staticmethod
    def _ttl_ms(expires_at: float | None, now: float) -> int | None:
        if expires_at is None:
            return None
        return max(1, int((expires_at - now) * 1000))

    # ---------------------------------------------------------------- exact
    def get(self, key: str, now: float) -> StoredAnswer | None:
        pinned, plain = self._call(self.client.mget, [self._k("pin", key), self._k("x", key)])
        raw, is_pinned = (pinned, True) if pinned is not None else (plain, False)
        if raw is None:
            return None
        doc = json.loads(raw)
        expires = doc.get("expires_at")
        if not is_pinned and expires is not None and expires <= now:
            return None  # Redis expiry has millisecond resolution; be exact about it
        return StoredAnswer(key, doc["text"], doc["created_at"], expires, is_pinned, doc.get("meta") or {})

    def put(self, entry: StoredAnswer) -> None:
        entry = stored_answer(entry)
        doc = json.dumps({"text": entry.text, "created_at": entry.created_at, "expires_at": entry.expires_at,
                          "meta": entry.meta}, ensure_ascii=False)
        name = self._k("pin" if entry.pinned else "x", entry.key)
        ttl = None if entry.pinned else self._ttl_ms(entry.expires_at, time.time())
        self._call(lambda: self.client.set(name, doc, px=ttl))

    def delete(self, key: str, *, pinned: bool) -> None:
        self._call(self.client.delete, self._k("pin" if pinned else "x", key))

    # ---------------------------------------------------------------- semantic
    def add_semantic(self, scope: str, question: str, text: str, vector: np.ndarray, *, created_at: float,
                     expires_at: float | None, meta: dict[str, Any]) -> str:
        n = int(self._call(self.client.incr, self._k("sseq", scope)))
        name = self._k("s", scope, str(n))
        mapping: dict[Any, Any] = {"vector": np.ascontiguousarray(vector, dtype="<f4").tobytes(),
                   "question": scrub_secrets(question), "text": scrub_secrets(text),
                   "created_at": repr(created_at), "scope": scope,
                   "expires_at": "" if expires_at is None else repr(expires_at),
                   "meta": json.dumps(meta or {}, ensure_ascii=False)}
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(name, mapping=mapping)
        ttl = self._ttl_ms(expires_at, time.time())
        if ttl is not None:
            pipe.pexpire(name, ttl)
        self._call(pipe.execute)
        return f"{scope}:{n}"

    def semantic_since(self, scope: str, cursor: Any) -> tuple[list[VectorRow], Any]:
        # An entry whose counter was taken but whose hash was not yet written is skipped for good by this
        # reader: a missed hit, never a wrong one.
        last = int(cursor or 0)
        head = self._call(self.client.get, self._k("sseq", scope))
        top = int(head) if head is not None else 0
        rows: list[VectorRow] = []
        for start in range(last + 1, top + 1, _FETCH_CHUNK):
            numbers = range(start, min(top, start + _FETCH_CHUNK - 1) + 1)
            pipe = self.client.pipeline(transaction=False)
            for n in numbers:
                pipe.hmget(self._k("s", scope, str(n)), "vector", "expires_at")
            for n, (vec, exp) in zip(numbers, self._call(pipe.execute), strict=True):
                if vec is not None:  # expired and gone
                    rows.append(VectorRow(f"{scope}:{n}", np.frombuffer(vec, dtype="<f4"),
                                          float(exp) if exp else None))
        return rows, max(top, last)

    def semantic_entries(self, ids: list[str]) -> dict[str, SemanticEntry]:
        if not ids:
            return {}
        fields = ("scope", "question", "text", "created_at", "expires_at", "meta")
        pipe = self.client.pipeline(transaction=False)
        for entry_id in ids:
            pipe.hmget(self._k("s", entry_id), *fields)
        out: dict[str, SemanticEntry] = {}
        for entry_id, values in zip(ids, self._call(pipe.execute), strict=True):
            if values[1] is None:
                continue
            scope, question, text, created, expires, meta = (v.decode("utf-8") for v in values)
            out[entry_id] = SemanticEntry(entry_id, scope, question, text, float(created),
                                          float(expires) if expires else None, json.loads(meta or "{}"))
        return out

    # ---------------------------------------------------------------- upkeep
    def log_hit(self, row: dict[str, Any]) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.lpush(self._k("hits"), json.dumps(hit_row(row), ensure_ascii=False, default=str))
        pipe.ltrim(self._k("hits"), 0, MAX_HITS_LOGGED - 1)
        self._call(pipe.execute)

    def logged_hits(self, limit: int = 1000) -> list[dict[str, Any]]:
        return [json.loads(r) for r in self._call(self.client.lrange, self._k("hits"), 0, limit - 1)]

    def clear(self, *, include_pinned: bool = False) -> None:
        # Scope counters stay: other processes' cursors point into them, a restart at 1 would hide new entries.
        keep = [self._k("sseq", "").encode()] + ([] if include_pinned else [self._k("pin", "").encode()])

        def run() -> None:
            batch: list[bytes] = []
            for name in self.client.scan_iter(match=self.prefix + "*", count=1000):
                if not any(name.startswith(k) for k in keep):
                    batch.append(name)
                if len(batch) >= 1000:
                    self.client.unlink(*batch)
                    batch = []
            if batch:
                self.client.unlink(*batch)

        self._call(run)

    def close(self) -> None:
        self.client.close()

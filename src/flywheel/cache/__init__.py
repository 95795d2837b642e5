"""The cache (layer 2): exact, item-ID and semantic answers in front of the model. Called by the gateway or an
app; it never calls them.

    cache = Cache.from_config(config.cache, store)
    hit = cache.lookup(request, model_version="deepseek-chat@2025-xx", prompt_version=p.version, tenant=t)
    if hit is None:
        result = gateway.chat(request)
        cache.save(request, result, model_version=..., prompt_version=p.version, tenant=t)

Apps also pass `route=route_version(chain)` (provider, base_url, alias params, fallbacks) and `guards=` their
guard policy version, so the key covers everything that changes an answer (see keys.py).

Redacted questions: an input `redact` guard masks `ann@example.com` as `<EMAIL_ADDRESS_1_qhzvk>`, with a nonce
that is new every run. The key leaves the nonce out, so the same question from another user (another address,
another nonce) is an exact hit; pass the run's nonce as `nonce=` to both calls. An entry keeps the nonce it was
saved with, and a hit re-issues exactly that nonce's placeholders with the current run's nonce, so the current
run's vault restores the current user's own value, while placeholder-looking text the entry's run did not issue
(`<EMAIL_ADDRESS_1>`, another nonce) stays as written. (An entry is text only: `save` stores no tool calls.)

Per request, `metadata["cache"]` may hold "no-cache" (do not answer from the cache) and/or "no-store" (do
not store the answer); `metadata["cache_item"] = {"task", "id", "version"}` keys the answer by item instead
of by text. A backend that is down makes the cache a no-op with a warning span, never a failed request.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flywheel.cache.backends import Backend, Breaker, open_backend
from flywheel.cache.backends.guarded import GuardedBackend
from flywheel.cache.embedding import Embedder
from flywheel.cache.exact import ExactCache, resolve_key
from flywheel.cache.keys import Versions, directives, exact_key, item_key, item_ref, route_version
from flywheel.cache.semantic import SemanticCache
from flywheel.checks.pii import renonce
from flywheel.config import CacheConfig
from flywheel.errors import UserError
from flywheel.protocols import Masker
from flywheel.tracing.tracer import tracer
from flywheel.types import ChatRequest, ChatResult, Usage

PURGE_EVERY_S = 600.0
log = logging.getLogger("flywheel.cache")


@dataclass(frozen=True)
class CacheHit:
    text: str
    kind: str  # exact | pinned | item | semantic
    key: str  # exact key, or semantic entry id
    created_at: float
    similarity: float | None = None  # semantic hits: cosine of the question embeddings
    verifier_p: float | None = None
    cached_question: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def as_result(self, request: ChatRequest, *, latency_ms: float = 0.0, trace_id: str | None = None) -> ChatResult:
        """A ChatResult for a cached answer (cached=True, no tokens, no cost)."""
        return ChatResult(text=self.text, alias=request.model, model=str(self.meta.get("model", "cache")),
                          provider=str(self.meta.get("provider", "cache")), usage=Usage(), cost_usd=0.0,
                          latency_ms=latency_ms, attempts=0, finish_reason="cached", trace_id=trace_id,
                          cached=True)


def _masked_log(log_hit: Callable[[dict[str, Any]], Any], mask: Masker) -> Callable[[dict[str, Any]], None]:
    def masked(row: dict[str, Any]) -> None:
        log_hit({k: mask(v) if k in ("query", "cached_question") and isinstance(v, str) else v
                 for k, v in row.items()})

    return masked


class Cache:
    def __init__(self, backend: Backend, *, exact: bool = True, semantic: SemanticCache | None = None,
                 ttl_s: float | None = None, hit_log: Any = None, breaker: Breaker | None = None,
                 guarded: GuardedBackend | None = None, clock: Callable[[], float] = time.time):
        self.guarded = guarded or GuardedBackend(backend, breaker)
        self.exact_enabled = exact
        self.clock = clock  # wall-clock seconds for TTLs; tests inject a fake one instead of sleeping
        self.exact = ExactCache(self.guarded, ttl_s=ttl_s, clock=clock)
        self.semantic = semantic
        self.ttl_s = ttl_s
        self._hit_log = hit_log
        self._last_purge = clock()

    @classmethod
    def from_config(cls, cache_config: CacheConfig | None, store: Any = None,
                    embedder: Embedder | None = None, clock: Callable[[], float] = time.time,
                    mask: Masker | None = None) -> Cache:
        """`mask`: `tracing.redact_pii`'s masker, applied to the questions of the hit log (`cache_hits`). The
        entries keep their questions as asked: the contrast rules tell one user's address from another's."""
        cfg = cache_config or CacheConfig()
        backend = open_backend(cfg.backend, store)
        guarded = GuardedBackend(backend)
        hit_log: Callable[[dict[str, Any]], Any] | None = None
        if store is not None and backend.name != "store":
            from flywheel.cache.backends.store import StoreHitLog

            hit_log = StoreHitLog(store).log_hit  # one place to review hits, whatever holds the entries
        if mask is not None:
            hit_log = _masked_log(hit_log or (lambda row: guarded.call("log_hit", None, row)), mask)
        semantic = None
        if cfg.semantic is not None:
            if embedder is None:  # the cache does not reach into retrieval: the Runtime passes its embedder
                raise UserError("the semantic cache needs an embedder and none was given",
                                hint="pass embedder= to Cache.from_config (flywheel's Runtime passes the local "
                                     "MiniLM), or turn `cache.semantic` off")
            sc = cfg.semantic
            semantic = SemanticCache(guarded, embedder, threshold=sc.threshold, verify=sc.verify,
                                     multi_turn=sc.multi_turn, ttl_s=cfg.ttl_s,
                                     verifier_threshold=sc.verifier_threshold,
                                     log_hit=hit_log, clock=clock)
        return cls(backend, exact=cfg.exact, semantic=semantic, ttl_s=cfg.ttl_s, hit_log=hit_log, guarded=guarded,
                   clock=clock)

    @property
    def backend(self) -> Backend:
        return self.guarded.backend

    # ---------------------------------------------------------------- lookup
    def lookup(self, request: ChatRequest, *, model_version: str, prompt_version: str | None = None,
               corpus_version: str | None = None, tenant: str | None = None, route: str | None = None,
               guards: str | None = None, nonce: str = "") -> CacheHit | None:
        """The cached answer for `request` under these versions, or None. Never raises for backend trouble.
        `nonce`: the run's input-redaction nonce; the hit's placeholders are re-issued with it."""
        versions = self._versions(model_version, prompt_version, corpus_version, tenant, request, route, guards)
        with tracer.span("cache.lookup", kind="cache", **{
                "flywheel.cache.backend": self.guarded.name, "flywheel.tenant": versions.tenant}) as sp:
            hit = _reissued(self._lookup(request, versions, sp), nonce)
            attrs: dict[str, Any] = {"flywheel.cache.hit": hit is not None}
            if hit is not None:
                attrs.update({"flywheel.cache.kind": hit.kind, "flywheel.cache.key": hit.key})
                if hit.similarity is not None:
                    attrs["flywheel.cache.similarity"] = hit.similarity
                if hit.verifier_p is not None:
                    attrs["flywheel.cache.verifier_p"] = hit.verifier_p
            sp.set(outputs=None if hit is None else hit.kind, **attrs)
            return hit

    def _lookup(self, request: ChatRequest, versions: Versions, sp: Any) -> CacheHit | None:
        if not directives(request).read:
            sp.set(**{"flywheel.cache.skipped": "no-cache"})
            return None
        item = item_ref(request)
        key = item_key(*item, versions=versions) if item else exact_key(request, versions)
        stored = self.exact.get(key)
        if stored is not None and (stored.pinned or self.exact_enabled or item):
            kind = "pinned" if stored.pinned else ("item" if item else "exact")
            self._log(kind, key, versions, request, sp)
            return CacheHit(stored.text, kind, key, stored.created_at, meta=stored.meta)
        if self.semantic is None or item:
            return None
        try:
            match = self.semantic.lookup(request, versions, trace_id=sp.trace_id)
        except Exception as exc:  # noqa: BLE001 - embedder or verifier failed: a miss, never a failed request
            self._semantic_failed("lookup", exc)
            return None
        if match is None:
            return None
        return CacheHit(match.text, "semantic", match.entry_id, match.created_at, match.similarity,
                        match.verifier_p, match.question, match.meta)

    def _log(self, kind: str, key: str, versions: Versions, request: ChatRequest, sp: Any) -> None:
        row = {"created_at": self.clock(), "kind": kind, "accepted": True, "tenant": versions.tenant,
               "model": versions.model_version, "scope": None, "entry": key, "similarity": 1.0,
               "verifier_p": None, "query": request.last_user(), "cached_question": None, "trace_id": sp.trace_id}
        if self._hit_log is not None:
            self._hit_log(row)
        else:
            self.guarded.call("log_hit", None, row)

    def _semantic_failed(self, op: str, exc: Exception) -> None:
        log.exception("semantic cache %s failed", op)
        message = f"semantic {op} failed: {type(exc).__name__}: {exc}"
        with tracer.span("cache.error", kind="cache", **{
                "flywheel.cache.error": message, "flywheel.cache.op": f"semantic.{op}",
                "flywheel.level": "warning"}) as sp:
            sp.set(outputs=message)

    # ---------------------------------------------------------------- save
    def save(self, request: ChatRequest, result: str | ChatResult, *, model_version: str,
             prompt_version: str | None = None, corpus_version: str | None = None, tenant: str | None = None,
             ttl_s: float | None = None, route: str | None = None, guards: str | None = None,
             nonce: str = "") -> str | None:
        """Store the answer to `request`; returns its exact key, or None when nothing was stored (no-store, an
        empty answer, a result that itself came from the cache or asks for tools, a multi-turn request with only the semantic
        cache on, or a backend that is down). `nonce`: the run's input-redaction nonce, kept with the entry."""
        versions = self._versions(model_version, prompt_version, corpus_version, tenant, request, route, guards)
        text, meta = (result.text, {"model": result.model, "provider": result.provider, "alias": result.alias}) \
            if isinstance(result, ChatResult) else (result, {})
        if nonce:
            meta["nonce"] = nonce
        if isinstance(result, ChatResult) and (result.cached or result.tool_calls):
            return None  # a tool call is not an answer the cache can replay as text
        with tracer.span("cache.save", kind="cache", **{"flywheel.cache.backend": self.guarded.name}) as sp:
            if not directives(request).write or not text.strip():
                sp.set(outputs=None, **{"flywheel.cache.stored": False})
                return None
            item = item_ref(request)
            key = item_key(*item, versions=versions) if item else exact_key(request, versions)
            stored = False
            if self.exact_enabled or item:
                stored = self.exact.put(key, text, ttl_s=ttl_s, meta=meta)
            if self.semantic is not None and not item:
                try:
                    stored = self.semantic.save(request, text, versions, ttl_s=ttl_s, meta=meta) is not None \
                        or stored
                except Exception as exc:  # noqa: BLE001 - logged by _semantic_failed
                    self._semantic_failed("save", exc)
            sp.set(outputs=key if stored else None, **{"flywheel.cache.stored": stored})
        self._maybe_purge()
        return key if stored else None

    # ---------------------------------------------------------------- item-ID answers
    def lookup_item(self, task: str, item_id: str, item_version: str | int | None, *, model_version: str,
                    prompt_version: str | None = None, tenant: str = "default") -> CacheHit | None:
        key = item_key(task, item_id, item_version, versions=Versions(model_version, prompt_version, None, tenant))
        with tracer.span("cache.lookup", kind="cache", **{"flywheel.cache.backend": self.guarded.name}) as sp:
            stored = self.exact.get(key)
            sp.set(outputs=None, **{"flywheel.cache.hit": stored is not None, "flywheel.cache.kind": "item"})
            if stored is None:
                return None
            return CacheHit(stored.text, "pinned" if stored.pinned else "item", key, stored.created_at,
                            meta=stored.meta)

    def save_item(self, task: str, item_id: str, item_version: str | int | None, text: str, *,
                  model_version: str, prompt_version: str | None = None, tenant: str = "default",
                  ttl_s: float | None = None) -> str | None:
        """The item's key, or None when nothing was stored (the backend is down)."""
        key = item_key(task, item_id, item_version, versions=Versions(model_version, prompt_version, None, tenant))
        return key if self.exact.put(key, text, ttl_s=ttl_s) else None

    # ---------------------------------------------------------------- pinned (reviewed) answers
    def pin(self, key_or_request: str | ChatRequest, answer: str, *, model_version: str | None = None,
            prompt_version: str | None = None, corpus_version: str | None = None,
            tenant: str | None = None) -> str:
        """Pin a reviewed answer: it never expires, is never purged, and wins over ordinary entries."""
        key = resolve_key(key_or_request, self._maybe_versions(key_or_request, model_version, prompt_version,
                                                               corpus_version, tenant))
        if not self.exact.pin(key, answer, meta={"pinned_at": self.clock()}):
            raise UserError(f"could not pin the answer: the {self.guarded.name} cache backend is unavailable "
                            f"({self.guarded.breaker.last_error})", hint="check the cache backend and pin again")
        return key

    def unpin(self, key_or_request: str | ChatRequest, *, model_version: str | None = None,
              prompt_version: str | None = None, corpus_version: str | None = None,
              tenant: str | None = None) -> str:
        key = resolve_key(key_or_request, self._maybe_versions(key_or_request, model_version, prompt_version,
                                                               corpus_version, tenant))
        self.exact.unpin(key)
        return key

    # ---------------------------------------------------------------- upkeep
    def purge_expired(self) -> int:
        self._last_purge = self.clock()
        return int(self.guarded.call("purge_expired", 0, self.clock()))

    def _maybe_purge(self) -> None:
        if self.clock() - self._last_purge > PURGE_EVERY_S:
            self.purge_expired()

    def clear(self, *, include_pinned: bool = False) -> None:
        self.guarded.call("clear", None, include_pinned=include_pinned)
        if self.semantic is not None:
            self.semantic.reset()

    def status(self) -> dict[str, Any]:
        b = self.guarded.breaker
        return {"backend": self.guarded.name, "degraded": b.open, "failures": b.failures,
                "last_error": b.last_error, "semantic": self.semantic is not None}

    def close(self) -> None:
        self.backend.close()

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def _versions(model_version: str, prompt_version: str | None, corpus_version: str | None,
                  tenant: str | None, request: ChatRequest | None = None, route: str | None = None,
                  guards: str | None = None) -> Versions:
        if tenant is None:
            tenant = str((request.metadata.get("tenant") if request is not None else None) or "default")
        return Versions(model_version, prompt_version, corpus_version, tenant, route, guards)

    def _maybe_versions(self, key_or_request: str | ChatRequest, model_version: str | None,
                        prompt_version: str | None, corpus_version: str | None, tenant: str | None
                        ) -> Versions | None:
        if isinstance(key_or_request, str) or model_version is None:
            return None
        return self._versions(model_version, prompt_version, corpus_version, tenant, key_or_request)


def _reissued(hit: CacheHit | None, nonce: str) -> CacheHit | None:
    """The hit with the placeholders its entry's run issued re-issued with this run's nonce."""
    stored = str(hit.meta.get("nonce") or "") if hit is not None else ""
    if hit is None or not stored or not nonce or stored == nonce:
        return hit
    return dataclasses.replace(hit, text=renonce(hit.text, stored, nonce), meta={**hit.meta, "nonce": nonce})


__all__ = ["Cache", "CacheHit", "Versions", "route_version"]

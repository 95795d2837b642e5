"""Semantic cache: reuse the answer to an earlier question that means the same thing.

The last user message is embedded and compared with earlier questions of the same scope (system prompt,
model, prompt/corpus version, tenant, output parameters, embedder; with multi_turn also the earlier turns).
Single-turn requests only unless multi_turn is on: "and in French?" means nothing without its history; and
only questions in a language the embedder covers (MiniLM's vectors of Chinese text are near-random).
Candidates at cosine ≥ threshold are checked best first: the contrast rules (contrast.py) veto near-duplicates
that ask something else (another e-mail address, number, negation, an opposite word or another name), then the
verifier (verifier.py) scores the rest; the first accepted one is the hit. Every
candidate examined is logged with its similarity and verifier score, accepted or not, so hit precision can
be measured later by reviewing the log.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from flywheel.cache.backends.guarded import GuardedBackend
from flywheel.cache.contrast import contradiction
from flywheel.cache.embedding import Embedder, embedder_name, normalise_rows
from flywheel.cache.keys import Versions, is_single_turn, normalise_text, semantic_scope
from flywheel.cache.vectors import VectorIndex
from flywheel.cache.verifier import Verifier, default_verifier
from flywheel.text.language import detect_language
from flywheel.tracing.tracer import tracer
from flywheel.types import ChatRequest

TOP_K = 3  # candidates verified per lookup, best first
_EMBED_MEMO = 256  # recent query embeddings kept, so save() after a miss does not embed again


@dataclass(frozen=True)
class SemanticMatch:
    entry_id: str
    text: str
    question: str
    similarity: float
    verifier_p: float | None
    created_at: float
    meta: dict[str, Any]


@dataclass
class _Scope:
    index: VectorIndex | None = None
    cursor: Any = None


class SemanticCache:
    def __init__(self, backend: GuardedBackend, embedder: Embedder, *, threshold: float, verify: bool = True,
                 multi_turn: bool = False, ttl_s: float | None = None, verifier: Verifier | None = None,
                 verifier_threshold: float | None = None, top_k: int = TOP_K, log_hit: Any = None,
                 clock: Callable[[], float] = time.time):
        self.backend = backend
        self.clock = clock  # wall-clock seconds; tests inject a fake one instead of sleeping
        self.embedder = embedder
        self.embedder_name = embedder_name(embedder)
        self.threshold = threshold
        self.verify = verify
        self.multi_turn = multi_turn
        self.ttl_s = ttl_s
        self.verifier = (verifier or default_verifier()) if verify else None
        self.verifier_threshold = verifier_threshold
        self.top_k = top_k
        self._log_hit = log_hit or (lambda row: backend.call("log_hit", None, row))
        self._scopes: dict[str, _Scope] = {}
        self._lock = threading.Lock()
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()

    # ---------------------------------------------------------------- scope and embedding
    def scope(self, request: ChatRequest, versions: Versions) -> str | None:
        """The request's scope, or None when it may not use the semantic cache (multi-turn, no user text, or a
        question in a language the embedder does not cover)."""
        question = normalise_text(request.last_user())
        if not question:
            return None
        if not self.multi_turn and not is_single_turn(request):
            return None
        if not self.covers(question):
            return None
        scoped = dataclasses.replace(versions, model_version=f"{versions.model_version}|{self.embedder_name}")
        return semantic_scope(request, scoped, multi_turn=self.multi_turn)

    def covers(self, question: str) -> bool:
        """Whether the embedder's vectors mean something for the question's language. An embedder that lists its
        `languages` (the local MiniLM: Latin-script ones) gives near-random vectors for others (Chinese …):
        two different Chinese questions can score cosine 1.0, so such a question skips the semantic cache. So does
        one in a language it covers through glosses (Chinese, when it has the dictionary): the cache's threshold
        was calibrated on its own English vectors, not on glosses."""
        languages = getattr(self.embedder, "languages", None)
        if not languages:
            return True
        language = detect_language(question)
        glossed = language in getattr(self.embedder, "glossed", ())
        if not language or (language in languages and not glossed):
            return True
        why = "read through dictionary glosses" if glossed else "not covered"
        current = tracer.current()
        if current is not None:
            current.set(**{"flywheel.cache.semantic_skipped": f"language {language} {why} by the embedder"})
        return False

    def embed(self, text: str) -> np.ndarray:
        vec = self._memo.get(text)
        if vec is None:
            vec = normalise_rows(self.embedder.embed([text]))[0]
            with self._lock:
                self._memo[text] = vec
                while len(self._memo) > _EMBED_MEMO:
                    self._memo.popitem(last=False)
        return vec

    # ---------------------------------------------------------------- lookup
    def search(self, scope: str, vector: np.ndarray, now: float) -> list[tuple[str, float]]:
        """Sync the scope's in-memory index with the backend, then the best candidates ≥ threshold."""
        with self._lock:
            state = self._scopes.setdefault(scope, _Scope())
            rows, cursor = self.backend.call("semantic_since", ([], state.cursor), scope, state.cursor)
            if rows:
                if state.index is None:
                    state.index = VectorIndex(int(rows[0].vector.shape[0]), capacity=max(1024, len(rows)))
                same_dim = [r for r in rows if r.vector.shape[0] == state.index.dim]
                state.index.add([r.id for r in same_dim], np.stack([r.vector for r in same_dim]),
                                [r.expires_at for r in same_dim])
            state.cursor = cursor
            if state.index is None or state.index.dim != vector.shape[0]:
                return []
            if state.index.live_fraction(now) < 0.5:
                state.index.compact(now)
            return state.index.search(vector, min_cosine=self.threshold, k=self.top_k, now=now)

    def lookup(self, request: ChatRequest, versions: Versions, *, scope: str | None = None,
               trace_id: str | None = None, now: float | None = None) -> SemanticMatch | None:
        now = self.clock() if now is None else now
        scope = scope or self.scope(request, versions)
        if scope is None:
            return None
        query = normalise_text(request.last_user())
        candidates = self.search(scope, self.embed(query), now)
        if not candidates:
            return None
        entries = self.backend.call("semantic_entries", {}, [c[0] for c in candidates])
        for entry_id, similarity in candidates:
            entry = entries.get(entry_id)
            # an id the backend reused for another scope (SQLite reuses ids after deletes) is never served
            if entry is None or entry.scope != scope or (entry.expires_at is not None and entry.expires_at <= now):
                self._forget(scope, entry_id)
                continue
            p = None
            accepted = True
            vetoed = contradiction(query, entry.question)  # asks something else: never served, even unverified
            if vetoed is not None:
                p, accepted = (None if self.verifier is None else 0.0), False
                current = tracer.current()
                if current is not None:
                    current.set(**{"flywheel.cache.vetoed": vetoed})
            elif self.verifier is not None:
                p = self.verifier.probability(query, entry.question, similarity)
                cut = self.verifier.threshold if self.verifier_threshold is None else self.verifier_threshold
                accepted = p >= cut
            self._log_hit({
                "created_at": now, "kind": "semantic", "accepted": accepted, "tenant": versions.tenant,
                "model": versions.model_version, "scope": scope, "entry": entry_id, "similarity": similarity,
                "verifier_p": p, "query": query, "cached_question": entry.question, "trace_id": trace_id,
            })
            if accepted:
                return SemanticMatch(entry_id, entry.text, entry.question, similarity, p, entry.created_at,
                                     entry.meta)
        return None

    def reset(self) -> None:
        """Drop every in-memory index (after the backend was cleared); they reload from the backend."""
        with self._lock:
            self._scopes.clear()

    def _forget(self, scope: str, entry_id: str) -> None:
        with self._lock:
            state = self._scopes.get(scope)
            if state is not None and state.index is not None:
                state.index.remove(entry_id)

    # ---------------------------------------------------------------- save
    def save(self, request: ChatRequest, text: str, versions: Versions, *, ttl_s: float | None = None,
             meta: dict[str, Any] | None = None, now: float | None = None) -> str | None:
        scope = self.scope(request, versions)
        if scope is None:
            return None
        now = self.clock() if now is None else now
        ttl = self.ttl_s if ttl_s is None else ttl_s
        question = normalise_text(request.last_user())
        return self.backend.call("add_semantic", None, scope, question, text, self.embed(question),
                                 created_at=now, expires_at=None if ttl is None else now + ttl, meta=meta or {})

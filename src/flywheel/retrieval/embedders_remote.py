"""The embedder of an `openai_compat` or `azure` alias: any OpenAI-compatible embeddings endpoint, several requests
in flight, rate limits honoured. flywheel.retrieval.embedders re-exports it."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from flywheel.config import ModelAlias
from flywheel.errors import UserError
from flywheel.retrieval.embedders import Embedder, _normalise

log = logging.getLogger("flywheel.retrieval")


class OpenAICompatEmbedder(Embedder):
    """Any OpenAI-compatible /embeddings endpoint (OpenAI, vLLM, Ollama, TEI, Infinity, llama.cpp …), assumed to
    cover every language (e.g. bge-m3), so hybrid search uses its dense side in full. An English-only model
    declares it on its alias: `params: {languages: [en], max_input_tokens: 512}`.

    Throughput: `embed()` cuts its texts into requests of `params.batch_size` inputs (64) and keeps
    `params.concurrency` of them in flight (4), in order. Rate limits: a 429 pauses every request of this
    embedder for the server's Retry-After (seconds or an HTTP date; else exponential backoff) and is retried up
    to RATE_LIMIT_RETRIES times; connection errors, timeouts and 5xx are retried `max_retries` times. None of
    these params is sent upstream."""

    batch_size = 64
    concurrency = 4

    def __init__(self, alias_name: str, alias: ModelAlias, model: str | None = None):
        self.alias_name = alias_name
        self.alias = alias
        self.model = model or alias.model
        self.name = f"{self.model}@{alias.version}" if alias.version else self.model
        self.max_tokens = int(alias.params.get("max_input_tokens", 512))
        self.batch_size = max(1, int(alias.params.get("batch_size", self.batch_size)))
        self.concurrency = max(1, int(alias.params.get("concurrency", self.concurrency)))
        langs = alias.params.get("languages")
        self.languages = frozenset(str(x) for x in langs) if isinstance(langs, (list, tuple)) and langs else None
        self._client: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._pause_until = 0.0  # monotonic time before which no request is sent (after a 429)
        self.rate_limited = 0  # 429 answers received (for tests and logs)

    def _api(self) -> Any:
        with self._lock:
            if self._client is None and self.alias.provider == "azure":
                # the gateway's Azure endpoint and credential rules (deployment path, api-version, key or Entra
                # token); retries stay ours
                from flywheel.gateway.providers.azure import AzureProvider

                azure = AzureProvider(self.alias.model_copy(update={"model": self.model}))
                self._client = azure._new_client(azure._sdk_class(False))
            elif self._client is None:
                from openai import OpenAI

                key = os.environ.get(self.alias.api_key_env, "") if self.alias.api_key_env else ""
                # retries are ours (below): a 429 must pause the other requests in flight too
                self._client = OpenAI(base_url=self.alias.base_url, api_key=key or "not-needed",
                                      timeout=self.alias.timeout, max_retries=0)
            return self._client

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="flywheel-embed-http")
            return self._pool

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        batches = [list(texts[i:i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        if not batches:
            return np.zeros((0, 0), np.float32)
        if len(batches) == 1 or self.concurrency == 1:
            parts = [self._request(b) for b in batches]
        else:
            parts = list(self._executor().map(self._request, batches))
        return _normalise(np.array([row for part in parts for row in part], dtype=np.float32))

    def _request(self, batch: list[str]) -> list[list[float]]:
        import openai

        failures = limited = 0
        while True:
            wait = self._pause_until - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                resp = self._api().embeddings.create(model=self.model, input=batch)
                break
            except openai.RateLimitError as exc:
                limited += 1
                self.rate_limited += 1
                if limited > RATE_LIMIT_RETRIES:
                    raise self._failed(exc) from None
                delay = retry_after(exc.response.headers) or min(60.0, 0.5 * 2 ** (limited - 1))
                with self._lock:
                    self._pause_until = max(self._pause_until, time.monotonic() + delay)
                log.info("embeddings endpoint of alias '%s' rate-limited; pausing %.1f s", self.alias_name, delay)
            except (openai.APIConnectionError, openai.InternalServerError) as exc:
                failures += 1
                if failures > self.alias.max_retries:
                    raise self._failed(exc) from None
                time.sleep(min(8.0, 0.5 * 2 ** (failures - 1)))
            except openai.OpenAIError as exc:
                raise self._failed(exc) from None
        data = sorted(resp.data, key=lambda d: d.index)
        if len(data) != len(batch):
            raise UserError(f"embeddings endpoint of alias '{self.alias_name}' returned {len(data)} vectors "
                            f"for {len(batch)} inputs", hint="check the server's embeddings implementation")
        return [self._vector(d.embedding, i) for i, d in enumerate(data)]

    def _vector(self, embedding: Any, i: int) -> list[float]:
        """One input's vector, checked: a server that does not pool (llama.cpp serving a generation model, or an
        embedding model loaded without its pooling) answers one vector per token instead."""
        if isinstance(embedding, list) and embedding and isinstance(embedding[0], list):
            raise UserError(f"embeddings endpoint of alias '{self.alias_name}' (model {self.model}) returned "
                            f"{len(embedding)} vectors for input {i + 1}, one per token: the server does not pool "
                            "them into one vector per text",
                            hint="serve an embedding model with pooling (llama.cpp: `--embedding --pooling mean`, "
                                 "or the model's own pooling); a chat model's token states are no text embedding")
        if not isinstance(embedding, list) or not embedding or not all(
                isinstance(x, (int, float)) for x in embedding[:8]):
            raise UserError(f"embeddings endpoint of alias '{self.alias_name}' (model {self.model}) returned "
                            f"no vector of numbers for input {i + 1} (got {type(embedding).__name__})",
                            hint="check the server's embeddings implementation")
        return embedding

    def _failed(self, exc: Exception) -> UserError:
        return UserError(f"embeddings endpoint of alias '{self.alias_name}' ({self.alias.base_url}, "
                         f"model {self.model}) failed: {exc}",
                         hint="check the server is running and serves an embeddings model; or set "
                              "`retrieval: {embedder: local}` in flywheel.yaml")


RATE_LIMIT_RETRIES = 8
MAX_RETRY_AFTER_S = 120.0


def retry_after(headers: Any) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), capped; None when absent."""
    raw = headers.get("retry-after") if headers is not None else None
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            seconds = parsedate_to_datetime(raw).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S) if math.isfinite(seconds) else None

"""What the SDK-backed providers (openai_compat, anthropic) share: the API key, the cached clients, the
error mapping around each call and the stream loop.

A subclass names its SDK client classes and fills in the wire-level steps:

- `_send` / `_asend`: make the request, return what the SDK returned; `_decode` turns that into a
  `ProviderResponse` (any SDK/transport exception is mapped by `to_provider_error`);
- `_open` / `_aopen`: start a streaming request and return the SDK stream (iterable, with `close()`);
- `_fold()`: a fresh `StreamFold` that reads that stream's events.

One sync client per provider (built once, under a lock), one async client per provider and event loop
(an httpx async pool cannot outlive its loop). The SDK's own retries are off (`max_retries=0`): the
gateway retries.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar, Self

from flywheel.config import ModelAlias
from flywheel.gateway.providers.base import ProviderError, ProviderResponse, make_chunk
from flywheel.gateway.providers.sdk_errors import to_provider_error
from flywheel.types import ChatRequest, StreamChunk, Usage

NO_KEY = "sk-no-key-needed"  # local servers (Ollama, vLLM) accept any key; the SDKs insist on one


def api_key(alias: ModelAlias, default_env: str) -> str:
    """The key from `api_key_env`; else `default_env` for the vendor's own endpoint; else a dummy key.

    A vendor key from the environment is only sent to the vendor's default URL, never to a custom
    base_url, so pointing an alias at a local server cannot leak it.
    """
    if alias.api_key_env:
        key = os.environ.get(alias.api_key_env)
        if not key:
            raise ProviderError(
                f"environment variable {alias.api_key_env} (api_key_env of model '{alias.model}') is not set",
                kind="config")
        return key
    if alias.base_url is None and os.environ.get(default_env):
        return os.environ[default_env]
    return NO_KEY


class StreamFold:
    """Folds one SDK stream's events into text deltas and, at the end, the closing chunk.

    Subclasses implement `take` (an event → its text delta, "" for none; add its length to `chars`; tool-call
    pieces in OpenAI `delta.tool_calls` form go in `calls`) and
    `final` (the last chunk, or `truncated(...)` raised when the stream ended without its end marker).
    As a context manager (sync or async) around reading `events`, it closes them on the way out and
    turns an exception into the `ProviderError` for it (see `broken`)."""

    __slots__ = ("calls", "chars", "events", "logprobs", "thought", "thought_block")

    def __init__(self) -> None:
        self.chars = 0
        self.events: Any = None  # the SDK stream, once open
        self.calls: list[dict[str, Any]] | None = None  # tool-call pieces `take` found in the last event
        self.logprobs: list[dict[str, Any]] | None = None  # the last event's tokens with their log-probabilities
        self.thought: str | None = None  # the last event's piece of the model's reasoning (StreamChunk.reasoning)
        self.thought_block: int | None = None  # the content block the last reasoning piece came from

    def think(self, block: int, text: str | None) -> None:
        """`text` of reasoning block `block` is the chunk's reasoning; the first piece of a block after an earlier
        one's starts with "\n", so the streamed reasoning reads as the whole answer's (`reasoning.joined`). It
        counts in `chars`: the gateway hands reasoning to its caller as it comes (the server relays it), so a
        stream that breaks after it is `stream_broken` (see `broken`), as one that breaks after text is."""
        if not text:
            return
        self.thought = ("\n" + text) if self.thought_block is not None and block != self.thought_block else text
        self.thought_block = block
        self.chars += len(text)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if self.events is not None:
            self.events.close()
        if isinstance(exc, Exception):
            raise self.broken(to_provider_error(exc)) from exc

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if self.events is not None:
            await self.events.close()
        if isinstance(exc, Exception):
            raise self.broken(to_provider_error(exc)) from exc

    def take(self, event: Any) -> str:
        raise NotImplementedError

    def final(self) -> StreamChunk:
        raise NotImplementedError

    def broken(self, err: ProviderError) -> ProviderError:
        """`err` raised opening or reading the stream: once text or reasoning went out (`chars`) it is a
        `stream_broken` failure."""
        if self.chars:
            err.kind = "stream_broken"
            err.message = f"stream broke after {self.chars} characters: {err.message}"
            err.args = (err.message,)
        return err

    def truncated(self, missing: str, usage: Usage | None) -> ProviderError:
        return ProviderError(f"stream ended after {self.chars} characters without {missing} "
                             "(truncated by the server or a proxy)", kind="stream_broken",
                             retryable=True, usage=usage)


class SdkProvider:
    """Base of the providers built on an official SDK (see the module docstring)."""

    name: ClassVar[str]
    key_env: ClassVar[str]  # the vendor's key variable, used for its default URL only
    sdk_client: ClassVar[type]  # e.g. anthropic.Anthropic (or override `_sdk_class` to import lazily)
    sdk_async_client: ClassVar[type]  # e.g. anthropic.AsyncAnthropic

    def __init__(self, alias: ModelAlias):
        self.alias = alias
        self._key = api_key(alias, self.key_env)
        self._client: Any = None
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    # -- clients
    def _sdk_class(self, is_async: bool) -> type:
        """The SDK's client class; a subclass may import its SDK here, on first use."""
        return self.sdk_async_client if is_async else self.sdk_client

    def _new_client(self, cls: type) -> Any:
        return cls(api_key=self._key, base_url=self.alias.base_url, max_retries=0, timeout=self.alias.timeout)

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._new_client(self._sdk_class(False))
        return self._client

    def aclient(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            client = self._aclients[loop] = self._new_client(self._sdk_class(True))
        return client

    def prepare(self, stream: bool = False) -> None:
        """One-time setup before the first attempt's clock starts: import the SDK and build the sync client
        (the gateway calls this when it first uses the alias; streams always go through the SDK)."""
        if not self.ready(stream):
            self._sdk_class(True)  # the async client class: imports the SDK; the client itself is per loop
            self.client  # noqa: B018 - builds the sync client

    def ready(self, stream: bool = False) -> bool:
        """Whether `prepare` has nothing left to do (asyncio callers run it in a thread only when not)."""
        return self._client is not None or (not stream and getattr(self, "lean", False))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- wire steps, per SDK
    def _send(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> Any:
        raise NotImplementedError

    async def _asend(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> Any:
        raise NotImplementedError

    def _decode(self, raw: Any) -> ProviderResponse:
        raise NotImplementedError

    def _open(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> Any:
        raise NotImplementedError

    async def _aopen(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> Any:
        raise NotImplementedError

    def _fold(self) -> StreamFold:
        raise NotImplementedError

    # -- calls
    def chat(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> ProviderResponse:
        try:
            raw = self._send(alias, request, timeout)
        except Exception as exc:
            raise to_provider_error(exc) from exc
        return self._decode(raw)

    async def achat(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> ProviderResponse:
        try:
            raw = await self._asend(alias, request, timeout)
        except Exception as exc:
            raise to_provider_error(exc) from exc
        return self._decode(raw)

    def stream(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> Iterator[StreamChunk]:
        with self._fold() as fold:
            fold.events = self._open(alias, request, timeout)
            for event in fold.events:
                delta = fold.take(event)
                if fold.calls or fold.logprobs or fold.thought:
                    yield make_chunk(delta, tool_calls=fold.calls, logprobs=fold.logprobs, reasoning=fold.thought)
                    fold.calls = fold.logprobs = fold.thought = None
                elif delta:
                    yield make_chunk(delta)
        yield fold.final()

    async def astream(self, alias: ModelAlias, request: ChatRequest,
                      timeout: float) -> AsyncIterator[StreamChunk]:
        async with self._fold() as fold:
            fold.events = await self._aopen(alias, request, timeout)
            async for event in fold.events:
                delta = fold.take(event)
                if fold.calls or fold.logprobs or fold.thought:
                    yield make_chunk(delta, tool_calls=fold.calls, logprobs=fold.logprobs, reasoning=fold.thought)
                    fold.calls = fold.logprobs = fold.thought = None
                elif delta:
                    yield make_chunk(delta)
        yield fold.final()

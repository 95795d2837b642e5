"""The model gateway: alias → pinned model, retries, fallback, cost and one span per attempt.

    gw = Gateway.from_config(config)
    result = gw.chat(ChatRequest.of("hi", model="strong"))      # or: await gw.achat(...)
    for chunk in gw.stream(request): print(chunk.delta, end="")  # or: async for c in gw.astream(...)

`request.n` > 1 asks for n choices (OpenAI's `n`): one upstream request where the provider takes `n`, else n
concurrent requests merged into one attempt (choices.py); `result.choices` holds them all. `request.logprobs` /
`top_logprobs` come back on `result.logprobs` from aliases whose provider returns them, and are refused (UserError)
for any other alias (logprobs.py).

One call walks the alias's fallback chain (the alias, then its `fallbacks:` depth-first, each alias
once). Each alias gets 1 + `max_retries` attempts; failures that are worth retrying (429, 5xx,
timeouts, dropped connections, garbled bodies) wait for the backoff of `RetryPolicy` (or the
server's Retry-After) and try again; others (400, 401, 404, a missing API key) move on to the next
alias at once. Streams are retried the same way before any text was yielded; a stream that breaks after
text went out is resumed from the next attempt when that attempt reproduces the text already delivered
(`resume_streams`, see streaming.py), else it raises `StreamBrokenError`.

Tracing: one `gateway.chat` span per call and, under it, one `llm` span per attempt named
"chat <model>" carrying the OpenTelemetry GenAI attributes plus `flywheel.cost_usd`,
`flywheel.alias`, `flywheel.attempt` (1-based across the whole call) and `flywheel.model.version`.
Tokens and cost live on the attempt spans only (so summing spans never double-counts); the
`gateway.chat` span carries `flywheel.attempts`, the answering alias and the totals under
`flywheel.usage.*` / `flywheel.total_cost_usd`. See pricing.py for how failed attempts are charged.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Self

from flywheel.config import Config, ModelAlias, RouteConfig
from flywheel.errors import ConfigError, UserError
from flywheel.gateway import logprobs
from flywheel.gateway import providers as registry
from flywheel.gateway.call import CallState, StreamBrokenError, inputs, top_attrs
from flywheel.gateway.choices import achat_n, chat_n, check_n
from flywheel.gateway.providers.base import Provider, ProviderError
from flywheel.gateway.retry import RetryPolicy
from flywheel.registry import unknown_alias
from flywheel.tracing import tracer
from flywheel.types import ChatRequest, ChatResult

__all__ = ["Gateway", "StreamBrokenError"]


class Gateway:
    """Routes chat requests to model aliases. Thread-safe and asyncio-safe; build one per process."""

    def __init__(self, models: dict[str, ModelAlias], *, retry: RetryPolicy | None = None,
                 resume_streams: bool = True, sleep: Callable[[float], None] = time.sleep,
                 asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 routes: Mapping[str, RouteConfig] | None = None):
        self.models = dict(models)
        self.retry = retry or RetryPolicy()
        self.sleep, self.asleep = sleep, asleep  # waits between attempts (injectable: tests record them)
        self.resume_streams = resume_streams  # see streaming.py: resume a broken stream from the next attempt
        self._factories: dict[str, Any] = {}
        self._providers: dict[str, Provider] = {}
        self._lock = threading.Lock()
        self._chains = {name: self._build_chain(name) for name in self.models}
        self.router: Any = None  # routes.Router when `routes:` are configured: route names resolve per request
        if routes:
            from flywheel.gateway.routes import Router

            self.router = Router(routes)

    @classmethod
    def from_config(cls, config: Config, **kw: Any) -> Gateway:
        return cls(config.models, routes=config.routes, **kw)

    # ------------------------------------------------------------------ aliases and providers
    def resolve(self, alias: str) -> ModelAlias:
        if self.router is not None and alias in self.router:
            alias = self.router.primary(alias)
        try:
            return self.models[alias]
        except KeyError:
            raise unknown_alias(alias, self.models) from None

    def chain(self, alias: str) -> tuple[str, ...]:
        """Aliases tried for `alias`, in order: itself, then its fallbacks depth-first, each once."""
        if self.router is not None and alias in self.router:
            alias = self.router.primary(alias)
        chain = self._chains.get(alias)
        if chain is None:
            self.resolve(alias)  # raises the UserError listing the known aliases
        return chain  # type: ignore[return-value]

    def _build_chain(self, name: str) -> tuple[str, ...]:
        order: list[str] = []

        def visit(alias: str, path: tuple[str, ...]) -> None:
            if alias in path:
                loop = " → ".join((*path[path.index(alias):], alias))
                raise ConfigError(f"model aliases fall back in a loop: {loop}",
                                  hint="remove one of these `fallbacks:` entries so the chain ends")
            if alias not in self.models:
                raise unknown_alias(alias, self.models, used_by=f"alias '{path[-1]}'", verb="falls back to",
                                    error=ConfigError)
            if alias not in order:
                order.append(alias)
            for fb in self.models[alias].fallbacks:
                visit(fb, (*path, alias))

        visit(name, ())
        return tuple(order)

    def register_provider(self, name: str, factory: Callable[[ModelAlias], Provider] | str) -> None:
        """Use `factory(alias) -> Provider` for aliases with `provider: name` (replacing any earlier one)."""
        with self._lock:
            self._factories[name] = factory
            for alias_name, alias in self.models.items():
                if alias.provider == name:
                    self._providers.pop(alias_name, None)

    def provider(self, alias_name: str) -> Provider:
        """The provider instance for an alias, built on first use and reused."""
        prov = self._providers.get(alias_name)
        if prov is None:
            with self._lock:
                prov = self._providers.get(alias_name)
                if prov is None:
                    alias = self.models[alias_name]
                    factory = registry.resolve_factory(alias.provider, self._factories)
                    prov = factory(alias)
                    self._providers[alias_name] = prov
        return prov

    def _provider_or_error(self, alias_name: str) -> Provider | ProviderError:
        try:
            return self.provider(alias_name)
        except ProviderError as err:
            return err
        except UserError as err:  # keep its flywheel.yaml:line (a `transformers` folder that does not exist)
            return ProviderError(f"{err.where}: {err.message}" if err.where else err.message, kind="config")
        except Exception as exc:  # noqa: BLE001 - a provider that cannot be built fails its alias only
            return ProviderError(f"cannot set up provider '{self.models[alias_name].provider}': "
                                 f"{type(exc).__name__}: {exc}", kind="config")

    def close(self) -> None:
        if self.router is not None:
            self.router.close()
        for prov in list(self._providers.values()):
            close = getattr(prov, "close", None)
            if close is not None:
                close()
        self._providers.clear()

    async def aclose(self) -> None:
        """Close the connections providers keep for the running event loop (call it before the loop ends;
        the gateway stays usable, later calls connect again)."""
        for prov in list(self._providers.values()):
            aclose = getattr(prov, "aclose", None)
            if aclose is not None:
                await aclose()

    # ------------------------------------------------------------------ calls
    def chat(self, request: ChatRequest) -> ChatResult:
        if request.n != 1:
            check_n(request)
        if request.logprobs is not None or request.top_logprobs is not None:
            logprobs.check(self, request)
        if "strategy" in request.metadata:  # self-consistency, best-of-n, critique, ensemble (strategies.py)
            picked = _strategy(request)
            if picked is not None:
                return picked[0].chat(self, picked[1])
        if self.router is not None and request.model in self.router:
            return self.router.chat(self, request)  # type: ignore[no-any-return]
        chain = self.chain(request.model)
        with tracer.span("gateway.chat", "llm", inputs(request), **top_attrs(request)) as top:
            call = CallState(request, top)
            for prov, alias, timeout in call.attempts(self, chain):
                try:
                    resp = prov.chat(alias, request, timeout) if request.n == 1 else \
                        chat_n(prov, alias, request, timeout, call.span)
                except BaseException as exc:  # noqa: BLE001 - call.fail records it; re-raises interrupts
                    delay = call.backoff(call.fail(exc), self.retry)
                else:
                    return call.answered(resp)
                if delay is not None:
                    self.sleep(delay)
            raise call.exhausted()

    async def achat(self, request: ChatRequest) -> ChatResult:
        if request.n != 1:
            check_n(request)
        if request.logprobs is not None or request.top_logprobs is not None:
            logprobs.check(self, request)
        if "strategy" in request.metadata:
            picked = _strategy(request)
            if picked is not None:
                return await picked[0].achat(self, picked[1])
        if self.router is not None and request.model in self.router:
            return await self.router.achat(self, request)  # type: ignore[no-any-return]
        chain = self.chain(request.model)
        # tracer.start/end rather than `with tracer.span(...)`: the same span, without a generator-based
        # context manager on the proxy's per-request path
        top, token = tracer.start("gateway.chat", "llm", inputs(request), **top_attrs(request))
        try:
            call = CallState(request, top)
            await call.aprepare(self, chain, stream=False)
            for prov, alias, timeout in call.attempts(self, chain):
                try:
                    resp = await prov.achat(alias, request, timeout) if request.n == 1 else \
                        await achat_n(prov, alias, request, timeout, call.span)
                except BaseException as exc:  # noqa: BLE001 - likewise; cancellation propagates
                    delay = call.backoff(call.fail(exc), self.retry)
                else:
                    return call.answered(resp)
                if delay is not None:
                    await self.asleep(delay)
            raise call.exhausted()
        except BaseException as exc:
            top.record_error(exc)
            raise
        finally:
            tracer.end(top, token)

    def stream(self, request: ChatRequest):
        """Iterate StreamChunks; after the last one, `.result` holds the ChatResult (usage, cost, trace id)."""
        from flywheel.gateway.streaming import ChatStream

        if self.router is not None and request.model in self.router:
            request = self.router.resolve(request)[0]
        if request.logprobs is not None or request.top_logprobs is not None:
            logprobs.check(self, request)
        return ChatStream(self, request)

    def astream(self, request: ChatRequest):
        """`async for chunk in gw.astream(request)`; `.result` is set once the stream is done."""
        from flywheel.gateway.streaming import AsyncChatStream

        if self.router is not None and request.model in self.router:
            request = self.router.resolve(request)[0]
        if request.logprobs is not None or request.top_logprobs is not None:
            logprobs.check(self, request)
        return AsyncChatStream(self, request)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _strategy(request: ChatRequest) -> Any:
    from flywheel.gateway.strategies import requested

    return requested(request)

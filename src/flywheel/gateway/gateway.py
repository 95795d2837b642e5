"""The model gateway: alias → pinned model, retries, fallback, cost and one span per attempt.

    gw = Gateway.from_config(config)
    result = gw.chat(ChatRequest.of("hi", model="strong"))      # or: await gw.achat(...)
    for chunk in gw.stream(request): print(chunk.delta, end="")  # or: async for c in gw.astream(...)

One call walks the alias's fallback chain (the alias, then its `fallbacks:` depth-first, each alias
once). Each alias gets 1 + `max_retries` attempts; failures that are worth retrying (429, 5xx,
timeouts, dropped connections, garbled bodies) wait for the backoff of `RetryPolicy` (or the
server's Retry-After) and try again; others (400, 401, 404, a missing API key) move on to the next
alias at once. Streams are retried only while nothing has been yielded yet.

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
from collections.abc import Callable
from typing import Any, Self

from flywheel.config import Config, ModelAlias
from flywheel.errors import AttemptFailure, ConfigError, GatewayError, UserError
from flywheel.gateway import providers as registry
from flywheel.gateway.pricing import cost_usd
from flywheel.gateway.providers.base import (
    Provider,
    ProviderError,
    ProviderResponse,
    estimate_tokens,
    make_usage,
    trusted,
)
from flywheel.gateway.retry import RetryPolicy
from flywheel.tracing import LiveSpan, tracer
from flywheel.types import ChatRequest, ChatResult, Usage

_METADATA_ATTRS = {"tenant": "flywheel.tenant", "app": "flywheel.app", "prompt_version": "flywheel.prompt.version"}


class StreamBrokenError(GatewayError):
    """A stream failed after some text was already delivered, so it could not be retried."""

    def __init__(self, alias: str, attempts: list[AttemptFailure], partial_text: str):
        self.alias, self.attempts, self.partial_text = alias, attempts, partial_text
        last = attempts[-1]
        UserError.__init__(
            self,
            f"the stream from alias '{last.alias}' ({last.model}) broke after {len(partial_text)} characters "
            f"had been delivered: {last.error}",
            hint="the partial answer was already shown, so the gateway could not retry; send the request again",
        )


class CallState:
    """What one gateway call accumulates across its attempts."""

    __slots__ = ("attempt", "cost", "failures", "input_tokens", "output_tokens", "request", "t0", "top")

    def __init__(self, request: ChatRequest, top: LiveSpan):
        self.request, self.top = request, top
        self.t0 = time.perf_counter()
        self.attempt = 0
        self.input_tokens = self.output_tokens = 0
        self.cost = 0.0
        self.failures: list[AttemptFailure] = []

    def begin(self, alias_name: str, alias: ModelAlias) -> tuple[str, dict[str, Any]]:
        """Name and attributes of the next attempt span."""
        self.attempt += 1
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": alias.provider,
            "gen_ai.request.model": alias.model or alias.provider,
            "flywheel.alias": alias_name,
            "flywheel.attempt": self.attempt,
        }
        if alias.version:
            attrs["flywheel.model.version"] = alias.version
        return f"chat {alias.model or alias.provider}", attrs

    def charge(self, span: LiveSpan, alias: ModelAlias, usage: Usage | None) -> float:
        if usage is None:
            return 0.0
        cost = cost_usd(alias.price, usage.input_tokens, usage.output_tokens)
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cost += cost
        attrs = span.attributes
        attrs["gen_ai.usage.input_tokens"] = usage.input_tokens
        attrs["gen_ai.usage.output_tokens"] = usage.output_tokens
        attrs["flywheel.cost_usd"] = cost
        return cost

    def failed(self, span: LiveSpan, alias_name: str, alias: ModelAlias, err: ProviderError) -> None:
        self.charge(span, alias, err.usage)
        attrs = span.attributes
        attrs["error.type"] = str(err.status) if err.status else err.kind
        if err.status:
            attrs["http.response.status_code"] = err.status
        if err.usage is None:
            attrs["flywheel.usage.estimated_input_tokens"] = sum(
                estimate_tokens(m.content) for m in self.request.messages)
        span.record_error(f"{err.kind}: {err.message}")
        self.failures.append(AttemptFailure(alias_name, alias.pinned, f"{err.kind}: {err.message}", err.status))

    def succeeded(self, span: LiveSpan, alias_name: str, alias: ModelAlias, text: str, usage: Usage | None,
                  response_model: str, finish_reason: str | None, raw: dict | None) -> ChatResult:
        self.charge(span, alias, usage)
        attrs = span.attributes
        attrs["gen_ai.response.model"] = response_model or alias.model
        if finish_reason:
            attrs["gen_ai.response.finish_reasons"] = [finish_reason]
        span.outputs, span.has_output = text, True
        top = self.top
        top.outputs, top.has_output = text, True
        top_attrs = top.attributes
        top_attrs["flywheel.model"] = alias.pinned
        top_attrs["flywheel.answered_by"] = alias_name
        top_attrs["gen_ai.response.model"] = response_model or alias.model
        self.close_top()
        return trusted(ChatResult, {
            "text": text, "alias": self.request.model, "model": alias.pinned, "provider": alias.provider,
            "usage": make_usage(self.input_tokens, self.output_tokens), "cost_usd": self.cost, "latency_ms": (time.perf_counter() - self.t0) * 1000.0,
            "attempts": self.attempt, "finish_reason": finish_reason, "trace_id": top.trace_id, "cached": False,
            "raw": raw})

    def close_top(self) -> None:
        attrs = self.top.attributes
        attrs["flywheel.attempts"] = self.attempt
        attrs["flywheel.usage.input_tokens"] = self.input_tokens
        attrs["flywheel.usage.output_tokens"] = self.output_tokens
        attrs["flywheel.total_cost_usd"] = self.cost

    def exhausted(self) -> GatewayError:
        self.close_top()
        return GatewayError(self.request.model, self.failures)


def _top_attrs(request: ChatRequest) -> dict[str, Any]:
    attrs: dict[str, Any] = {"gen_ai.operation.name": "chat", "flywheel.alias": request.model}
    if request.temperature is not None:
        attrs["gen_ai.request.temperature"] = request.temperature
    if request.max_tokens is not None:
        attrs["gen_ai.request.max_tokens"] = request.max_tokens
    if request.metadata:
        for key, attr in _METADATA_ATTRS.items():
            if key in request.metadata:
                attrs[attr] = request.metadata[key]
    return attrs


def _inputs(request: ChatRequest) -> dict[str, Any]:
    return {"messages": [{"role": m.role, "content": m.content} for m in request.messages]}


class Gateway:
    """Routes chat requests to model aliases. Thread-safe and asyncio-safe; build one per process."""

    def __init__(self, models: dict[str, ModelAlias], *, retry: RetryPolicy | None = None):
        self.models = dict(models)
        self.retry = retry or RetryPolicy()
        self._factories: dict[str, Any] = {}
        self._providers: dict[str, Provider] = {}
        self._lock = threading.Lock()
        self._chains = {name: self._build_chain(name) for name in self.models}

    @classmethod
    def from_config(cls, config: Config, **kw: Any) -> Gateway:
        return cls(config.models, **kw)

    # ------------------------------------------------------------------ aliases and providers
    def resolve(self, alias: str) -> ModelAlias:
        try:
            return self.models[alias]
        except KeyError:
            raise UserError(f"unknown model alias '{alias}'; known aliases: {', '.join(sorted(self.models))}",
                            hint="use one of those, or add it under `models:` in flywheel.yaml") from None

    def chain(self, alias: str) -> tuple[str, ...]:
        """Aliases tried for `alias`, in order: itself, then its fallbacks depth-first, each once."""
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
                raise ConfigError(f"alias '{path[-1]}' falls back to unknown alias '{alias}'; known aliases: "
                                  f"{', '.join(sorted(self.models))}", hint="fix the name under `fallbacks:`")
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
        except UserError as err:
            return ProviderError(err.message, kind="config")
        except Exception as exc:  # noqa: BLE001 - a provider that cannot be built fails its alias only
            return ProviderError(f"cannot set up provider '{self.models[alias_name].provider}': "
                                 f"{type(exc).__name__}: {exc}", kind="config")

    def close(self) -> None:
        for prov in list(self._providers.values()):
            close = getattr(prov, "close", None)
            if close is not None:
                close()
        self._providers.clear()

    # ------------------------------------------------------------------ calls
    def chat(self, request: ChatRequest) -> ChatResult:
        chain = self.chain(request.model)
        with tracer.span("gateway.chat", "llm", _inputs(request), **_top_attrs(request)) as top:
            call = CallState(request, top)
            for alias_name in chain:
                alias = self.models[alias_name]
                prov = self._provider_or_error(alias_name)
                timeout = request.timeout or alias.timeout
                for retry in range(alias.max_retries + 1):
                    name, attrs = call.begin(alias_name, alias)
                    span, token = tracer.start(name, "llm", None, **attrs)
                    try:
                        if isinstance(prov, ProviderError):
                            raise prov
                        resp: ProviderResponse = prov.chat(alias, request, timeout)
                    except ProviderError as err:
                        call.failed(span, alias_name, alias, err)
                        tracer.end(span, token)
                        if not err.retryable or retry == alias.max_retries:
                            break
                        time.sleep(self.retry.delay(retry, err.retry_after))
                        continue
                    except Exception as exc:  # noqa: BLE001 - a provider bug fails this alias, not the call
                        call.failed(span, alias_name, alias, ProviderError(f"{type(exc).__name__}: {exc}"))
                        tracer.end(span, token)
                        break
                    except BaseException as exc:  # interrupted / cancelled: close the span, then propagate
                        span.record_error(exc)
                        tracer.end(span, token)
                        raise
                    result = call.succeeded(span, alias_name, alias, resp.text, resp.usage, resp.model,
                                            resp.finish_reason, resp.raw)
                    tracer.end(span, token)
                    return result
            raise call.exhausted()

    async def achat(self, request: ChatRequest) -> ChatResult:
        chain = self.chain(request.model)
        with tracer.span("gateway.chat", "llm", _inputs(request), **_top_attrs(request)) as top:
            call = CallState(request, top)
            for alias_name in chain:
                alias = self.models[alias_name]
                prov = self._provider_or_error(alias_name)
                timeout = request.timeout or alias.timeout
                for retry in range(alias.max_retries + 1):
                    name, attrs = call.begin(alias_name, alias)
                    span, token = tracer.start(name, "llm", None, **attrs)
                    try:
                        if isinstance(prov, ProviderError):
                            raise prov
                        resp: ProviderResponse = await prov.achat(alias, request, timeout)
                    except ProviderError as err:
                        call.failed(span, alias_name, alias, err)
                        tracer.end(span, token)
                        if not err.retryable or retry == alias.max_retries:
                            break
                        await asyncio.sleep(self.retry.delay(retry, err.retry_after))
                        continue
                    except Exception as exc:  # noqa: BLE001
                        call.failed(span, alias_name, alias, ProviderError(f"{type(exc).__name__}: {exc}"))
                        tracer.end(span, token)
                        break
                    except BaseException as exc:
                        span.record_error(exc)
                        tracer.end(span, token)
                        raise
                    result = call.succeeded(span, alias_name, alias, resp.text, resp.usage, resp.model,
                                            resp.finish_reason, resp.raw)
                    tracer.end(span, token)
                    return result
            raise call.exhausted()

    def stream(self, request: ChatRequest):
        """Iterate StreamChunks; after the last one, `.result` holds the ChatResult (usage, cost, trace id)."""
        from flywheel.gateway.streaming import ChatStream

        return ChatStream(self, request)

    def astream(self, request: ChatRequest):
        """`async for chunk in gw.astream(request)`; `.result` is set once the stream is done."""
        from flywheel.gateway.streaming import AsyncChatStream

        return AsyncChatStream(self, request)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

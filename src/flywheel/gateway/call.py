"""One gateway call's bookkeeping, shared by `chat`, `achat`, `stream` and `astream`.

`CallState.attempts` walks the fallback chain (each alias 1 + `max_retries` times) and opens each
attempt's `llm` span; the caller makes the provider call (the only part that differs between sync
and async) and reports back with `succeeded` / `fail` + `backoff`, which charge tokens and cost,
set the span attributes and end the span. No I/O and no sleeping happens here.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flywheel.config import ModelAlias
from flywheel.errors import AttemptFailure, GatewayError, UserError
from flywheel.gateway.choices import span_output
from flywheel.gateway.logprobs import refusal, supports_logprobs, wanted
from flywheel.gateway.pricing import usage_cost
from flywheel.gateway.providers.base import (
    Provider,
    ProviderError,
    ProviderResponse,
    estimate_tokens,
    make_usage,
    request_params,
    trusted,
)
from flywheel.gateway.retry import RetryPolicy
from flywheel.tracing import LiveSpan, tracer
from flywheel.types import ChatRequest, ChatResult, Choice, Usage

if TYPE_CHECKING:
    from flywheel.gateway.gateway import Gateway

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


class Unavailable:
    """Stands in for a provider that could not be set up: every call fails with that error."""

    name = "unavailable"

    def __init__(self, err: ProviderError):
        self.err = err

    def chat(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> ProviderResponse:
        raise self.err

    async def achat(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> ProviderResponse:
        raise self.err

    def stream(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> Iterator[Any]:
        raise self.err
        yield  # a generator, so it fails on the first chunk like a stream

    async def astream(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> Any:
        raise self.err
        yield


class CallState:
    """What one gateway call accumulates across its attempts, and the attempt in progress.

    With `ctx` (streams), attempt spans are started and ended inside that context."""

    __slots__ = ("alias", "alias_name", "attempt", "cache_read", "cache_write", "chain", "cost", "ctx", "failures",
                 "gateway", "input_tokens",
                 "move_on", "next_alias", "output_tokens", "prov", "reasoning", "request", "retry", "retry_after", "sent",
                 "span", "t0", "timeout", "token", "top")

    def __init__(self, request: ChatRequest, top: LiveSpan, ctx: contextvars.Context | None = None):
        self.request, self.top, self.ctx = request, top, ctx
        self.t0 = time.perf_counter()
        self.attempt = self.retry = 0
        self.input_tokens = self.output_tokens = self.cache_read = self.cache_write = self.reasoning = 0
        self.cost = 0.0
        self.failures: list[AttemptFailure] = []
        self.span: LiveSpan | None = None
        self.token: Any = None
        self.sent: list[dict[str, str]] | None = None
        self.retry_after: float | None = None  # the last failed attempt's Retry-After (seconds), if it sent one

    # ------------------------------------------------------------------ walking the chain
    def attempts(self, gateway: Gateway, chain: tuple[str, ...]) -> CallState:
        """Iterate (provider, alias, timeout), one per attempt, its span already open: each alias of `chain`
        in turn, retried until `backoff` says to move on. (An iterator, not a generator: this is the per-call
        hot path.)"""
        self.gateway, self.chain, self.next_alias, self.move_on = gateway, chain, 0, True
        return self

    def __iter__(self) -> CallState:
        return self

    def __next__(self) -> tuple[Provider, ModelAlias, float]:
        if self.move_on:  # on to the next alias
            if self.next_alias == len(self.chain):
                raise StopIteration
            self.alias_name = alias_name = self.chain[self.next_alias]
            self.next_alias += 1
            self.alias = alias = self.gateway.models[alias_name]
            prov = self.gateway._provider_or_error(alias_name)
            self.prov = Unavailable(prov) if isinstance(prov, ProviderError) else prov
            if wanted(self.request) and not supports_logprobs(self.prov) and not isinstance(prov, ProviderError):
                # a fallback that cannot return the log-probabilities asked for is skipped (logprobs.py)
                self.prov = Unavailable(ProviderError(refusal(alias_name, alias.provider), kind="config"))
            self.timeout = self.request.timeout or alias.timeout
            self.retry, self.move_on = 0, False
            self.prepare()
        else:
            self.retry += 1
        name, attrs = self.begin(self.alias_name, self.alias)
        if self.sent is None:  # the messages as the call's span recorded them (the same list, built once)
            top_in = self.top.inputs
            self.sent = top_in["messages"] if isinstance(top_in, dict) and "messages" in top_in else None
        sent = attempt_inputs(self.request, self.alias, self.sent)
        if self.ctx is None:
            self.span, self.token = tracer.start(name, "llm", sent, **attrs)
        else:
            self.span, self.token = self.ctx.run(tracer.start, name, "llm", sent, **attrs)
        return self.prov, self.alias, self.timeout

    async def aprepare(self, gateway: Gateway, chain: tuple[str, ...], stream: bool) -> None:
        """For asyncio callers: the first alias's one-time setup in a worker thread, so a cold SDK import
        does not block the event loop (and every other request on it) for seconds."""
        prov = gateway._provider_or_error(chain[0])
        ready = getattr(prov, "ready", None)
        if ready is not None and not ready(stream):
            try:
                await asyncio.to_thread(prov.prepare, stream)  # type: ignore[union-attr]
            except Exception:  # noqa: BLE001,S110 - the attempt fails the same way and records why
                pass

    def prepare(self) -> None:
        """Let the provider do its one-time setup (importing an SDK takes seconds) before the attempt's span
        and timeout start, so that setup is never counted as the first attempt's time. A failure there is left
        for the attempt itself to report."""
        prepare = getattr(self.prov, "prepare", None)
        if prepare is not None:
            try:
                prepare(stream=self.ctx is not None)
            except Exception:  # noqa: BLE001,S110 - the attempt fails the same way and records why
                pass

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
        sampling_attrs(self.request, attrs)
        return f"chat {alias.model or alias.provider}", attrs

    def end(self, span: LiveSpan, token: Any) -> None:
        if self.ctx is None:
            tracer.end(span, token)
        else:
            self.ctx.run(tracer.end, span, token)

    def end_attempt(self) -> None:
        """End the attempt span in progress (`span` is None from then on)."""
        span, self.span = self.span, None
        if self.ctx is None:
            tracer.end(span, self.token)  # type: ignore[arg-type]
        else:
            self.ctx.run(tracer.end, span, self.token)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ outcome of an attempt
    def charge(self, span: LiveSpan, alias: ModelAlias, usage: Usage | None) -> float:
        if usage is None:
            return 0.0
        cost = usage_cost(alias.price, usage)
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cache_read += usage.cache_read_tokens
        self.cache_write += usage.cache_write_tokens
        self.reasoning += usage.reasoning_tokens
        self.cost += cost
        attrs = span.attributes
        attrs["gen_ai.usage.input_tokens"] = usage.input_tokens
        attrs["gen_ai.usage.output_tokens"] = usage.output_tokens
        if usage.cache_read_tokens:
            attrs["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
        if usage.cache_write_tokens:
            attrs["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
        if usage.reasoning_tokens:
            attrs["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
        attrs["flywheel.cost_usd"] = cost
        return cost

    def fail(self, exc: BaseException, partial: str = "") -> ProviderError:
        """Record the attempt in progress as failed with `exc` (and the `partial` text it streamed) and end
        its span. An interrupt or cancellation (not an `Exception`) is recorded and raised again."""
        span, alias = self.span, self.alias
        assert span is not None and alias is not None
        if not isinstance(exc, Exception):
            span.record_error(exc)
            self.end_attempt()
            raise exc
        # a UserError is a request this provider cannot express (a tool_choice with no Anthropic form): the
        # caller's to fix, not retried; anything else is a provider bug: it fails this alias, not the call
        if isinstance(exc, UserError):
            err = ProviderError(exc.message, kind="client")
        else:
            err = exc if isinstance(exc, ProviderError) else ProviderError(f"{type(exc).__name__}: {exc}")
        if partial:
            span.outputs, span.has_output = partial, True
        self.charge(span, alias, err.usage)
        attrs = span.attributes
        attrs.setdefault("flywheel.cost_usd", 0.0)  # nothing reported, nothing billed: $0, not unknown
        attrs["error.type"] = str(err.status) if err.status else err.kind
        if err.status:
            attrs["http.response.status_code"] = err.status
        if err.usage is None:
            attrs["flywheel.usage.estimated_input_tokens"] = sum(
                estimate_tokens(m.content) for m in self.request.messages)
        span.record_error(f"{err.kind}: {err.message}")
        local = err.kind == "config" or (err.kind == "client" and err.status is None)
        self.failures.append(AttemptFailure(self.alias_name, alias.pinned, f"{err.kind}: {err.message}", err.status,
                                            local_mistake=local))
        self.retry_after = err.retry_after
        self.end_attempt()
        return err

    def backoff(self, err: ProviderError, policy: RetryPolicy) -> float | None:
        """Seconds to wait before retrying the same alias, or None: move on to the next alias. Call it after
        every failed attempt that the call goes on from."""
        if err.retryable and self.retry < self.alias.max_retries:  # type: ignore[union-attr]
            return policy.delay(self.retry, err.retry_after)
        self.move_on = True
        return None

    def answered(self, resp: ProviderResponse) -> ChatResult:
        return self.succeeded(resp.text, resp.usage, resp.model, resp.finish_reason, resp.raw, resp.tool_calls,
                              resp.choices, resp.logprobs, resp.reasoning)

    def succeeded(self, text: str, usage: Usage | None, response_model: str, finish_reason: str | None,
                  raw: dict | None, tool_calls: list[dict[str, Any]] | None = None,
                  choices: list[Choice] | None = None, logprobs: list[dict[str, Any]] | None = None,
                  reasoning: str | None = None) -> ChatResult:
        """Close the attempt in progress (and the call) as answered; the call's `ChatResult`. The spans' output
        is the text, or {"content", "tool_calls"} when the model asked for tools, plus every choice under
        "choices" when the request asked for n > 1 (choices.py); log-probabilities stay off the spans (logprobs.py).
        The model's `reasoning` goes on the attempt span only, as {"content", "reasoning"} (so it is scrubbed, and
        dropped without `capture_content`, like any output), and with n > 1 each choice's under its own entry of
        "choices"; the call's span keeps the answer alone."""
        span, alias = self.span, self.alias
        assert span is not None and alias is not None
        self.charge(span, alias, usage)
        attrs = span.attributes
        if usage is None:  # counted 0, marked so a 0 is not read as a free answer
            attrs["flywheel.usage.reported"] = self.top.attributes["flywheel.usage.reported"] = False
        attrs["gen_ai.response.model"] = response_model or alias.model
        if choices:
            attrs["gen_ai.response.finish_reasons"] = [c.finish_reason or "" for c in choices]
        elif finish_reason:
            attrs["gen_ai.response.finish_reasons"] = [finish_reason]
        output: Any = (span_output(text, tool_calls, choices) if choices else
                       {"content": text, "tool_calls": tool_calls} if tool_calls else text)
        span.outputs, span.has_output = output, True
        if choices and any(c.reasoning for c in choices):  # each choice's own reasoning, not the first's alone
            span.outputs = span_output(text, tool_calls, choices, reasoning=True)
        if reasoning:
            own = span.outputs
            span.outputs = {**(own if isinstance(own, dict) else {"content": text}), "reasoning": reasoning}
        top = self.top
        top.outputs, top.has_output = output, True
        top_attrs = top.attributes
        top_attrs["flywheel.model"] = alias.pinned
        top_attrs["flywheel.answered_by"] = self.alias_name
        top_attrs["gen_ai.response.model"] = response_model or alias.model
        self.close_top()
        result = trusted(ChatResult, {
            "text": text, "alias": self.request.model, "model": alias.pinned, "provider": alias.provider,
            "usage": make_usage(self.input_tokens, self.output_tokens, self.cache_read, self.cache_write,
                                self.reasoning),
            "cost_usd": self.cost,
            "latency_ms": (time.perf_counter() - self.t0) * 1000.0, "attempts": self.attempt,
            "finish_reason": finish_reason, "trace_id": top.trace_id, "cached": False, "raw": raw,
            "tool_calls": tool_calls, "choices": choices, "logprobs": logprobs, "reasoning": reasoning or None,
            "usage_reported": usage is not None})
        self.end_attempt()
        return result

    def close_top(self) -> None:
        attrs = self.top.attributes
        attrs["flywheel.attempts"] = self.attempt
        attrs["flywheel.usage.input_tokens"] = self.input_tokens
        attrs["flywheel.usage.output_tokens"] = self.output_tokens
        attrs["flywheel.total_cost_usd"] = self.cost

    def exhausted(self) -> GatewayError:
        """The call's error once no attempt is left; `retry_after` on it is the last attempt's Retry-After
        (seconds, None when it sent none), which the server passes on when every attempt was rate limited."""
        self.close_top()
        exc = GatewayError(self.request.model, self.failures)
        exc.retry_after = self.retry_after
        refused = [f.alias for f in self.failures if _refuses_json_schema(self.request, f.error)]
        if refused:
            exc.hint = (f"the endpoint of '{refused[0]}' refuses response_format type json_schema: set "
                        "`json_schema: json_object` on that alias (llama-cpp-python's server takes the schema so), "
                        "or `json_schema: false`")
        return exc


def _refuses_json_schema(request: ChatRequest, error: str) -> bool:
    """Whether a failed attempt reads as an endpoint refusing `response_format` type json_schema (llama-cpp-python
    answers HTTP 500 "Input should be 'text' or 'json_object'")."""
    fmt = request.response_format
    return isinstance(fmt, dict) and fmt.get("type") == "json_schema" and "json_object" in error \
        and "json_schema" in error


def top_attrs(request: ChatRequest) -> dict[str, Any]:
    """Attributes of the `gateway.chat` span."""
    attrs: dict[str, Any] = {"gen_ai.operation.name": "chat", "flywheel.alias": request.model}
    if request.temperature is not None:
        attrs["gen_ai.request.temperature"] = request.temperature
    if request.max_tokens is not None:
        attrs["gen_ai.request.max_tokens"] = request.max_tokens
    if request.n != 1:
        attrs["gen_ai.request.choice.count"] = request.n
    sampling_attrs(request, attrs)
    if request.metadata:
        for key, attr in _METADATA_ATTRS.items():
            if key in request.metadata:
                attrs[attr] = request.metadata[key]
    return attrs


# the sampling parameters recorded as OpenTelemetry GenAI request attributes (`user` is not: an end-user id)
SAMPLING_ATTRS = {"top_p": "gen_ai.request.top_p", "top_k": "gen_ai.request.top_k", "seed": "gen_ai.request.seed",
                  "frequency_penalty": "gen_ai.request.frequency_penalty",
                  "presence_penalty": "gen_ai.request.presence_penalty"}


def sampling_attrs(request: ChatRequest, attrs: dict[str, Any]) -> None:
    """Add the request's sampling parameters (those set) to span attributes."""
    for name, attr in SAMPLING_ATTRS.items():
        value = getattr(request, name)
        if value is not None:
            attrs[attr] = value


def attempt_inputs(request: ChatRequest, alias: ModelAlias,
                   messages: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """Inputs of one attempt's span: the messages and the parameters sent to that alias's model."""
    params: dict[str, Any] = {"model": alias.model or alias.provider}
    if alias.params:
        params.update(alias.params)
    params.update(request_params(request))
    params.pop("user", None)  # an end-user id: the call's metadata has it, spans do not
    if request.top_k is not None:
        params["top_k"] = request.top_k
    if messages is None:
        messages = span_messages(request)
    return {"messages": messages, "params": params}


def inputs(request: ChatRequest) -> dict[str, Any]:
    """Inputs of the `gateway.chat` span."""
    return {"messages": span_messages(request)}


def span_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """The messages as spans record them: role and content, plus tool calls / tool call id when present."""
    out: list[dict[str, Any]] = []
    for m in request.messages:
        d: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            d["tool_calls"] = m.tool_calls
        if m.tool_call_id is not None:
            d["tool_call_id"] = m.tool_call_id
        out.append(d)
    return out

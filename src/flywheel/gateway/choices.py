"""Several choices for one request (`ChatRequest.n`, OpenAI's `n`), whatever the provider.

A provider with ``supports_n = True`` (openai_compat) gets the request as is: one upstream request, `n` on the
wire, every choice parsed, usage covering all of them. A server behind it that ignores `n` (some local servers
answer one choice) gets the missing choices asked for one by one. Any other provider (Anthropic, in-process
ones) is sent n concurrent requests with n = 1 (threads for `chat`, tasks for `achat`) and the answers are
merged: choices in order, usage summed, each choice with its own reasoning (`Choice.reasoning`; the result's
`reasoning` is the first choice's). With a `seed`, each of these n = 1 requests for choice k carries seed + k, so
the samples differ yet stay reproducible (`singles`). Either way it is one attempt of the gateway call: one `llm` span whose
output holds every choice, `gen_ai.request.choice.count` = n and `flywheel.upstream_requests` = how many
requests it took, its tokens and cost covering every sample. A sample that fails fails the attempt (retried
or falling back like any failed attempt, as OpenAI's all-or-nothing `n` does); the tokens the other samples
used are still charged.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flywheel.config import ModelAlias
from flywheel.errors import UserError
from flywheel.gateway.providers.base import Provider, ProviderError, ProviderResponse, trusted
from flywheel.tracing import LiveSpan, in_context
from flywheel.types import ChatRequest, ChatResult, Choice, Usage

MAX_CHOICES = 16  # as the server's /v1/chat/completions accepts; strategies split larger sample counts


def check_n(request: ChatRequest) -> None:
    """UserError unless `request.n` is a whole number from 1 to MAX_CHOICES."""
    n = request.n
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CHOICES:
        raise UserError(f"n (choices per request) must be a whole number from 1 to {MAX_CHOICES}, got {n!r}",
                        hint=f"ask for at most {MAX_CHOICES} choices per request; send several requests for more")


def supports_n(prov: Any) -> bool:
    """Whether one request to `prov` can answer several choices."""
    return bool(getattr(prov, "supports_n", False))


def chat_n(prov: Provider, alias: ModelAlias, request: ChatRequest, timeout: float,
           span: LiveSpan | None) -> ProviderResponse:
    """`request.n` choices from `prov` in one attempt (see the module docstring)."""
    n = request.n
    first: list[ProviderResponse] = []
    if supports_n(prov):
        first.append(prov.chat(alias, request, timeout))
    missing = n - _count(first)
    outcomes: list[ProviderResponse | BaseException] = []
    if missing > 0:
        call = in_context(prov.chat)
        with ThreadPoolExecutor(max_workers=missing) as pool:
            futures = [pool.submit(call, alias, one, timeout) for one in singles(request, n - missing, missing)]
            for f in futures:
                exc = f.exception()
                outcomes.append(exc if exc is not None else f.result())
    return _settle(first, outcomes, n, span)


async def achat_n(prov: Provider, alias: ModelAlias, request: ChatRequest, timeout: float,
                  span: LiveSpan | None) -> ProviderResponse:
    n = request.n
    first: list[ProviderResponse] = []
    if supports_n(prov):
        first.append(await prov.achat(alias, request, timeout))
    missing = n - _count(first)
    outcomes: list[ProviderResponse | BaseException] = []
    if missing > 0:
        ones = singles(request, n - missing, missing)
        outcomes = list(await asyncio.gather(*(prov.achat(alias, one, timeout) for one in ones),
                                             return_exceptions=True))
    return _settle(first, outcomes, n, span)


def singles(request: ChatRequest, start: int, count: int) -> list[ChatRequest]:
    """The n = 1 requests for choices `start` … `start + count - 1`. With a `seed`, choice k is sampled with
    seed + k: the same seed on every request would make every sample the same (what OpenAI's seeded `n` never
    does), and the choices stay reproducible."""
    if request.seed is None:
        return [request.model_copy(update={"n": 1})] * count
    return [request.model_copy(update={"n": 1, "seed": request.seed + k}) for k in range(start, start + count)]


def _count(responses: list[ProviderResponse]) -> int:
    return sum(len(r.choices) if r.choices else 1 for r in responses)


def _settle(first: list[ProviderResponse], outcomes: list[ProviderResponse | BaseException], n: int,
            span: LiveSpan | None) -> ProviderResponse:
    """The merged response, or the first sample's failure carrying the tokens every sample used."""
    if span is not None:
        span.attributes["gen_ai.request.choice.count"] = n
        span.attributes["flywheel.upstream_requests"] = len(first) + len(outcomes)
    answered = first + [o for o in outcomes if isinstance(o, ProviderResponse)]
    failed = [o for o in outcomes if not isinstance(o, ProviderResponse)]
    for exc in failed:
        if not isinstance(exc, Exception):  # an interrupt or cancellation: raised as is
            raise exc
    if failed:
        exc = failed[0]
        err = exc if isinstance(exc, ProviderError) else ProviderError(f"{type(exc).__name__}: {exc}")
        err.message = f"{len(failed)} of {len(outcomes)} samples failed; the first: {err.message}"
        err.args = (err.message,)
        err.usage = _sum_usage([*(r.usage for r in answered), err.usage])
        raise err
    return merge(answered, n)


def merge(responses: list[ProviderResponse], n: int) -> ProviderResponse:
    """One response holding the first `n` choices of `responses` (in order) and their summed usage."""
    choices: list[Choice] = []
    for r in responses:
        choices.extend(r.choices or [trusted(Choice, {"text": r.text, "finish_reason": r.finish_reason,
                                                      "tool_calls": r.tool_calls, "logprobs": r.logprobs,
                                                      "reasoning": r.reasoning})])
    choices = choices[:n]
    head = choices[0]
    return ProviderResponse(head.text, _sum_usage([r.usage for r in responses]), responses[0].model,
                            head.finish_reason, responses[0].raw if len(responses) == 1 else None, head.tool_calls,
                            choices, head.logprobs, head.reasoning)


def _sum_usage(usages: list[Usage | None]) -> Usage | None:
    reported = [u for u in usages if u is not None]
    if not reported:
        return None
    return sum(reported, Usage())


def span_output(text: str, tool_calls: list[dict[str, Any]] | None, choices: list[Choice] | None,
                reasoning: bool = False) -> Any:
    """What the `llm` spans record as output: the text; {"content", "tool_calls"} when the model asked for tools;
    plus every choice under "choices" when there are several. With `reasoning` (the attempt span), a choice that
    has reasoning is {"content", "reasoning"} (and "tool_calls" when it has them)."""
    if not choices:
        return {"content": text, "tool_calls": tool_calls} if tool_calls else text
    out: dict[str, Any] = {"content": text}
    if tool_calls:
        out["tool_calls"] = tool_calls
    out["choices"] = [_choice_output(c, reasoning) for c in choices]
    return out


def _choice_output(choice: Choice, reasoning: bool) -> Any:
    if not (reasoning and choice.reasoning):
        return {"content": choice.text, "tool_calls": choice.tool_calls} if choice.tool_calls else choice.text
    out: dict[str, Any] = {"content": choice.text}
    if choice.tool_calls:
        out["tool_calls"] = choice.tool_calls
    out["reasoning"] = choice.reasoning
    return out


def split_choices(result: ChatResult) -> list[ChatResult | None]:
    """One ChatResult per choice of an n-request (usage and cost stay on the request, counted once in the totals)."""
    if not result.choices:
        return [result]
    return [result.model_copy(update={"text": c.text, "finish_reason": c.finish_reason, "tool_calls": c.tool_calls,
                                      "logprobs": c.logprobs, "choices": None, "reasoning": c.reasoning})
            for c in result.choices]

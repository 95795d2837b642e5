"""Log-probabilities through the gateway (`ChatRequest.logprobs` / `top_logprobs`, OpenAI's).

Only a provider that returns them (``supports_logprobs = True``: openai_compat) is sent such a request. When
the alias asked for cannot, the call is refused before anything is sent (UserError naming the field, the alias
and its provider): an answer without the log-probabilities the caller asked for would look like a model that
has none. A fallback alias that cannot return them is skipped (its attempt fails as a configuration error),
so a fallback never answers without them either.

The tokens come back on `ChatResult.logprobs` (every choice's on `Choice.logprobs`; streamed, each chunk's on
`StreamChunk.logprobs`) in OpenAI's shape. A stream resumed after a break (streaming.py) hands on the text beyond
what was already delivered without its tokens' log-probabilities (a token may straddle the cut). They are not stored on the trace's spans: a token list with 20
alternatives per token is tens of times the size of the text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flywheel.errors import UserError
from flywheel.types import ChatRequest

if TYPE_CHECKING:
    from flywheel.gateway.gateway import Gateway

MAX_TOP_LOGPROBS = 20  # OpenAI's limit


def wanted(request: ChatRequest) -> bool:
    """Whether the request asks for log-probabilities."""
    return bool(request.logprobs) or bool(request.top_logprobs)


def supports_logprobs(prov: Any) -> bool:
    """Whether `prov` returns log-probabilities when asked."""
    return bool(getattr(prov, "supports_logprobs", False))


def refusal(alias_name: str, provider: str) -> str:
    """Why an alias cannot answer a request for log-probabilities."""
    return (f"logprobs: alias '{alias_name}' (provider {provider}) does not return log-probabilities; only "
            "openai_compat aliases do")


def check(gateway: Gateway, request: ChatRequest) -> None:
    """UserError unless the request's `logprobs` / `top_logprobs` are valid and its alias can answer them."""
    top = request.top_logprobs
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_TOP_LOGPROBS):
        raise UserError(f"top_logprobs must be a whole number from 0 to {MAX_TOP_LOGPROBS}, got {top!r}",
                        hint=f"ask for at most {MAX_TOP_LOGPROBS} alternatives per token")
    if top and not request.logprobs:
        raise UserError("top_logprobs needs logprobs: true", hint="set logprobs: true, or drop top_logprobs")
    if not wanted(request):
        return
    name = gateway.chain(request.model)[0]
    prov = gateway._provider_or_error(name)
    if not supports_logprobs(prov):
        if not hasattr(prov, "chat"):  # could not be built: the call fails with that error, as without logprobs
            return
        raise UserError(refusal(name, gateway.models[name].provider),
                        hint="drop logprobs and top_logprobs, or ask an alias with provider: openai_compat")

"""Map exceptions of the official openai / anthropic SDKs (and raw httpx) to `ProviderError`.

Both SDKs share one shape: `APIStatusError` (has `status_code` and `response`), `APITimeoutError`
(a subclass of `APIConnectionError`) and `APIConnectionError`, so one mapper serves both without
importing either SDK.
"""

from __future__ import annotations

import json
from typing import Any

from flywheel.errors import UserError
from flywheel.gateway.providers.base import ProviderError, make_usage
from flywheel.gateway.retry import parse_retry_after
from flywheel.types import Usage


def reported_usage(data: Any) -> Usage | None:
    """Usage from a response body's `usage` (see `parse_usage`), if present."""
    if not isinstance(data, dict):
        return None
    usage = data.get("usage")
    return parse_usage(usage) if isinstance(usage, dict) else None


def parse_usage(usage: dict[str, Any]) -> Usage | None:
    """Usage from an OpenAI chat-completions (`prompt_tokens`), OpenAI Responses (`input_tokens` with
    `input_tokens_details`) or Anthropic (`input_tokens`) usage dict; None when it counts no tokens."""
    out = usage.get("completion_tokens", usage.get("output_tokens")) or 0
    if "prompt_tokens" in usage or "input_tokens_details" in usage or "output_tokens_details" in usage:
        # OpenAI: the cached tokens are part of the input, the reasoning tokens part of the output
        inp = usage.get("prompt_tokens", usage.get("input_tokens")) or 0
        read = _detail(usage, "prompt_tokens_details", "cached_tokens") or _detail(
            usage, "input_tokens_details", "cached_tokens")
        write = 0
    else:  # Anthropic: input_tokens leaves out the cache reads and writes; thinking is counted in output_tokens
        read = usage.get("cache_read_input_tokens") or 0
        write = usage.get("cache_creation_input_tokens") or 0
        inp = (usage.get("input_tokens") or 0) + read + write
    reasoning = _detail(usage, "completion_tokens_details", "reasoning_tokens") or _detail(
        usage, "output_tokens_details", "reasoning_tokens")
    if not (inp or out):
        return None
    return make_usage(int(inp), int(out), int(read), int(write), min(reasoning, int(out)))


def _detail(usage: dict[str, Any], group: str, name: str) -> int:
    """`usage[group][name]` as a count (0 when absent, null or not a number)."""
    details = usage.get(group)
    value = details.get(name) if isinstance(details, dict) else None
    return int(value) if isinstance(value, int | float) and value > 0 else 0


def short(text: str, n: int = 300) -> str:
    """One line of at most `n` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def to_provider_error(exc: BaseException) -> ProviderError:
    """Classify one failed attempt."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, UserError):  # built before sending: a request this provider cannot express
        return ProviderError(exc.message, kind="client")
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    if isinstance(status, int) and response is not None:
        retry_after = parse_retry_after(getattr(response, "headers", None))
        try:
            usage = reported_usage(response.json())
        except Exception:  # noqa: BLE001 - the error body is often not JSON
            usage = None
        message = getattr(exc, "message", None) or str(exc)
        if status < 400:  # a 2xx whose body the SDK could not use
            return ProviderError(short(f"unusable response: {message}"), kind="bad_response", status=status,
                                 retryable=True, usage=usage)
        return ProviderError.from_status(status, short(message), retry_after=retry_after, usage=usage)
    if "Timeout" in name or isinstance(exc, TimeoutError):
        return ProviderError("request timed out", kind="timeout", retryable=True)
    if name == "APIConnectionError":
        cause = exc.__cause__ or exc.__context__
        detail = f": {type(cause).__name__}: {cause}" if cause else ""
        return ProviderError(short(f"connection failed{detail}"), kind="connection", retryable=True)
    module = type(exc).__module__ or ""
    if module.startswith(("httpx", "httpcore", "h11")) or isinstance(exc, ConnectionError):
        # raised while reading a body the SDK did not wrap (streams): peer closed, incomplete read …
        return ProviderError(short(f"connection broke: {name}: {exc}"), kind="connection", retryable=True)
    if isinstance(exc, json.JSONDecodeError):
        return ProviderError(short(f"response body is not valid JSON: {exc}"), kind="bad_response", retryable=True)
    return ProviderError(short(f"{name}: {exc}"), kind="other", retryable=False)

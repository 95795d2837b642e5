"""Anthropic-native pass-through: what an Anthropic Messages request carries that the gateway's OpenAI-shaped
`ChatRequest` cannot, riding along it to an `anthropic` alias, and what the answer carries back.

Coding agents (Claude Code, the Claude Agent SDK) send `thinking` and signed thinking / redacted_thinking blocks
in their history, `cache_control` breakpoints on system, tools and message blocks, images and documents,
`top_k`, `service_tier`, `metadata.user_id`, `anthropic-beta` headers and fields newer than this code
(`context_management`, `tools[].defer_loading` …). The server's `/v1/messages` route translates the request to
the gateway's shape as for any provider, and attaches a `NativeExchange` under `ChatRequest.metadata[NATIVE]`
holding the Anthropic body as sent. The Anthropic provider sends that body instead of re-translating, but only
while the request's messages and tools are still the ones the exchange was built from (`matches`): a gateway step
that rewrote them (structured-output repair, a strategy) gets the plain translation, and so does every other
provider (it never looks). It is all or nothing, so an upstream never sees thinking enabled without the signed
thinking blocks it requires.

Back: a non-streamed answer keeps its Anthropic content blocks and usage (cache tokens, stop sequence) in
`ProviderResponse.raw["anthropic"]`; a streamed one appends the events of blocks the gateway's chunks cannot
carry (thinking, redacted_thinking) to `NativeExchange.events`, and the upstream's usage to `usage`, for the
route to relay in order.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from flywheel.types import ChatRequest

NATIVE = "anthropic_native"  # the ChatRequest.metadata key
RAW = "anthropic"  # the ProviderResponse.raw / ChatResult.raw key
# content blocks the gateway's messages cannot hold; passed through to Anthropic aliases only
NATIVE_ONLY_BLOCKS = frozenset({"image", "document", "search_result"})
# betas that describe the caller's own credential, not a feature: the upstream gets the alias's key instead
_CREDENTIAL_BETAS = ("oauth-",)


def fingerprint(request: ChatRequest) -> str:
    """A digest of what the exchange must still agree with: the messages, tools and tool choice."""
    view = ([[m.role, m.content, m.tool_calls, m.tool_call_id] for m in request.messages],
            request.tools, request.tool_choice)
    return hashlib.sha256(json.dumps(view, sort_keys=True, default=str).encode()).hexdigest()


def forwarded_betas(header: str | None) -> list[str]:
    """The `anthropic-beta` header's features to send upstream (credential betas such as `oauth-…` left out)."""
    names = [b.strip() for b in (header or "").split(",")]
    return [b for b in names if b and not b.startswith(_CREDENTIAL_BETAS)]


class NativeExchange:
    """One Anthropic request's native body (`system`, `messages`, `tools`, `tool_choice` and the fields the
    gateway has no name for) and, once streamed, the native block events and usage the upstream sent."""

    __slots__ = ("_lock", "betas", "body", "events", "fingerprint", "input_tokens", "stop_sequence", "usage")

    def __init__(self, body: dict[str, Any], betas: list[str], request: ChatRequest):
        self.body = body
        self.betas = betas
        self.fingerprint = fingerprint(request)
        self.events: list[dict[str, Any]] = []
        self.usage: dict[str, Any] = {}  # the cache fields
        self.input_tokens = 0  # as the upstream's message_start said
        self.stop_sequence: str | None = None
        self._lock = threading.Lock()

    def matches(self, request: ChatRequest) -> bool:
        return fingerprint(request) == self.fingerprint

    def add_event(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(event)

    def take_events(self) -> list[dict[str, Any]]:
        with self._lock:
            events, self.events = self.events, []
        return events

    def __repr__(self) -> str:  # never the body: it may hold images and long tool results
        return f"NativeExchange(keys={sorted(self.body)}, betas={self.betas})"


def usable_exchange(request: ChatRequest) -> NativeExchange | None:
    """The request's exchange when it still matches the request, else None (send the translation)."""
    native = request.metadata.get(NATIVE) if request.metadata else None
    return native if isinstance(native, NativeExchange) and native.matches(request) else None


def apply(kw: dict[str, Any], params: dict[str, Any], native: NativeExchange) -> None:
    """Put the native body into `messages.create` keyword arguments (`kw`: model, messages, system …) and the
    params about to be split into named arguments and `extra_body`."""
    body = native.body
    kw["messages"] = body["messages"]
    if body.get("system"):
        kw["system"] = body["system"]
    else:
        kw.pop("system", None)
    for key, value in body.items():
        if key == "output_config":  # `format` came through the gateway's response_format; keep both
            params[key] = {**params.get(key, {}), **value}
        elif key not in ("messages", "system"):
            params[key] = value
    if "tools" not in body:
        params.pop("tools", None)
    if "tool_choice" not in body:
        params.pop("tool_choice", None)
    if native.betas:
        kw["extra_headers"] = {"anthropic-beta": ",".join(native.betas)}


def block_dict(block: Any) -> dict[str, Any]:
    """An SDK content block (or a dict) as the wire dict, without null fields."""
    if isinstance(block, dict):
        return block
    return block.model_dump(mode="json", exclude_none=True)  # type: ignore[no-any-return]


def usage_fields(usage: Any) -> dict[str, Any]:
    """The cache fields of an Anthropic usage object or dict (only those that are set)."""
    get = usage.get if isinstance(usage, dict) else (lambda k: getattr(usage, k, None))
    out = {}
    for key in ("cache_creation_input_tokens", "cache_read_input_tokens"):
        value = get(key)
        if isinstance(value, int):
            out[key] = value
    return out

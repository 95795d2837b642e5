"""What the fake LLM's Anthropic wire does for extended thinking and prompt caching, as Anthropic does it.

- `thinking: {type: enabled, budget_tokens}`: `budget_tokens` must be at least 1024 and below `max_tokens`; the
  answer starts with a thinking block whose `signature` signs its text (streamed: thinking_delta pieces, then a
  signature_delta). Thinking blocks sent back in the history must carry their signature unchanged, and, as on
  Anthropic, the last assistant turn must start with a thinking or redacted_thinking block when it calls tools
  (otherwise a 400), so a client that drops or alters them fails the way it would against the real API.
- `cache_control` anywhere (system, tools, message blocks): the usage reports the system prompt's tokens as
  `cache_creation_input_tokens` on a conversation's first turn and as `cache_read_input_tokens` on later ones.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flywheel.testing import fake_llm_wire as wire

MIN_BUDGET = 1024


def sign(thinking: str) -> str:
    return "sig-" + hashlib.sha256(thinking.encode()).hexdigest()[:24]


def _thinking_on(body: dict) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") == "enabled"


def validate(body: dict) -> str | None:
    """Anthropic's 400 message for a thinking request it would refuse, else None."""
    for i, message in enumerate(body.get("messages") or []):
        for j, block in enumerate(message.get("content") if isinstance(message.get("content"), list) else ()):
            if isinstance(block, dict) and block.get("type") == "thinking" and \
                    block.get("signature") != sign(str(block.get("thinking") or "")):
                return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
    if not _thinking_on(body):
        return None
    budget = body["thinking"].get("budget_tokens")
    if not isinstance(budget, int) or budget < MIN_BUDGET or budget >= body.get("max_tokens", 0):
        return "thinking.budget_tokens: must be at least 1024 and less than max_tokens"
    assistant = [m for m in body.get("messages") or [] if m.get("role") == "assistant"]
    last = assistant[-1].get("content") if assistant else None
    if isinstance(last, list) and any(isinstance(b, dict) and b.get("type") == "tool_use" for b in last):
        first = last[0] if isinstance(last[0], dict) else {}
        if first.get("type") not in ("thinking", "redacted_thinking"):
            return ("messages: Expected `thinking` or `redacted_thinking`, but found "
                    f"`{first.get('type')}`. When `thinking` is enabled, a final `assistant` message must start "
                    "with a thinking block")
    return None


def _has_cache_control(value: Any) -> bool:
    if isinstance(value, dict):
        return "cache_control" in value or any(_has_cache_control(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_cache_control(v) for v in value)
    return False


def _cache_usage(body: dict) -> dict[str, int]:
    if not any(_has_cache_control(body.get(k)) for k in ("system", "tools", "messages")):
        return {}
    system = body.get("system")
    text = system if isinstance(system, str) else " ".join(
        b.get("text", "") for b in system or () if isinstance(b, dict))
    tokens = max(1, wire.count_tokens(text))
    later = any(m.get("role") == "assistant" for m in body.get("messages") or [])
    return {"cache_creation_input_tokens": 0 if later else tokens, "cache_read_input_tokens": tokens if later else 0}


def _thought(body: dict) -> str:
    return f"The user asked: {wire.last_user_text(body)[:60]}"


def message(body: dict, text: wire.Answer) -> dict:
    """wire.anthropic_message, with a thinking block first when thinking is on, and cache usage."""
    out = wire.anthropic_message(body, text)
    if _thinking_on(body):
        thought = _thought(body)
        out["content"] = [{"type": "thinking", "thinking": thought, "signature": sign(thought)}, *out["content"]]
    out["usage"].update(_cache_usage(body))
    return out


def stream(body: dict, text: wire.Answer) -> list[bytes]:
    """wire.anthropic_stream's frames, with the thinking block (index 0) and cache usage added."""
    frames = wire.anthropic_stream(body, text)
    thinking, cache = _thinking_on(body), _cache_usage(body)
    if not (thinking or cache):
        return frames
    out = []
    for frame in frames:
        name, data = _parse(frame)
        if name == "message_start":
            data["message"]["usage"].update(cache)
        elif name.startswith("content_block") and thinking:
            data["index"] += 1
        out.append(wire._event(name, data))
        if name == "ping" and thinking:
            out += _thinking_frames(_thought(body))
    return out


def _thinking_frames(thought: str) -> list[bytes]:
    half = len(thought) // 2
    deltas = [{"type": "thinking_delta", "thinking": thought[:half]},
              {"type": "thinking_delta", "thinking": thought[half:]},
              {"type": "signature_delta", "signature": sign(thought)}]
    return [wire._event("content_block_start", {"type": "content_block_start", "index": 0,
                                                "content_block": {"type": "thinking", "thinking": "",
                                                                  "signature": ""}}),
            *(wire._event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d})
              for d in deltas),
            wire._event("content_block_stop", {"type": "content_block_stop", "index": 0})]


def _parse(frame: bytes) -> tuple[str, dict]:
    head, _, data = frame.decode().strip().partition("\ndata: ")
    return head.removeprefix("event: "), json.loads(data)

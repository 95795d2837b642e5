"""What the fake LLM's Anthropic wire does for extended thinking and prompt caching, as Anthropic does it.

- `thinking: {type: enabled, budget_tokens}`: `budget_tokens` must be at least 1024 and below `max_tokens`; the
  answer starts with a thinking block whose `signature` signs its text (streamed: thinking_delta pieces, then a
  signature_delta). Thinking blocks sent back in the history must carry their signature unchanged, and, as on
  Anthropic, the last assistant turn must start with a thinking or redacted_thinking block when it calls tools
  (otherwise a 400), so a client that drops or alters them fails the way it would against the real API.
- `cache_control` anywhere (system, tools, message blocks): the usage reports the system prompt's tokens as
  `cache_creation_input_tokens` on a conversation's first turn and as `cache_read_input_tokens` on later ones.
- a `web_search_…` server tool in `tools`: a text answer starts (after any thinking) with a canned
  `server_tool_use` block searching for the user's text and its `web_search_tool_result` (one result,
  https://example.com/search?q=…), and the usage counts `server_tool_use.web_search_requests: 1`.
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


def _web_search(body: dict, text: wire.Answer) -> list[dict]:
    """The canned server_tool_use + web_search_tool_result blocks when `tools` has a web_search tool (text answers)."""
    tools = body.get("tools") or []
    if not isinstance(text, str) or not any(isinstance(t, dict) and str(t.get("type", "")).startswith("web_search")
                                            for t in tools):
        return []
    query = wire.last_user_text(body)[:100]
    tool_id = "srvtoolu_" + hashlib.sha256(query.encode()).hexdigest()[:20]
    result = {"type": "web_search_result", "url": f"https://example.com/search?q={len(query)}",
              "title": f"Results for {query[:40]}", "encrypted_content": "enc-" + tool_id[9:], "page_age": None}
    return [{"type": "server_tool_use", "id": tool_id, "name": "web_search", "input": {"query": query}},
            {"type": "web_search_tool_result", "tool_use_id": tool_id, "content": [result]}]


def message(body: dict, text: wire.Answer) -> dict:
    """wire.anthropic_message, with a thinking block first when thinking is on, a canned web search when asked
    for, and cache usage."""
    out = wire.anthropic_message(body, text)
    search = _web_search(body, text)
    if search:
        out["content"] = [*search, *out["content"]]
        out["usage"]["server_tool_use"] = {"web_search_requests": 1}
    if _thinking_on(body):
        thought = _thought(body)
        out["content"] = [{"type": "thinking", "thinking": thought, "signature": sign(thought)}, *out["content"]]
    out["usage"].update(_cache_usage(body))
    return out


def stream(body: dict, text: wire.Answer) -> list[bytes]:
    """wire.anthropic_stream's frames, with the thinking block (index 0) and cache usage added."""
    frames = wire.anthropic_stream(body, text)
    thinking, cache, search = _thinking_on(body), _cache_usage(body), _web_search(body, text)
    if not (thinking or cache or search):
        return frames
    shift = int(thinking) + len(search)
    out = []
    for frame in frames:
        name, data = _parse(frame)
        if name == "message_start":
            data["message"]["usage"].update(cache)
        elif name.startswith("content_block"):
            data["index"] += shift
        elif name == "message_delta" and search:
            data["usage"]["server_tool_use"] = {"web_search_requests": 1}
        out.append(wire._event(name, data))
        if name == "ping":
            out += _thinking_frames(_thought(body)) if thinking else []
            out += _search_frames(search, int(thinking))
    return out


def _search_frames(blocks: list[dict], first: int) -> list[bytes]:
    """The server_tool_use block (its input streamed as input_json_delta) and its result block, whole."""
    out = []
    for index, block in enumerate(blocks, first):
        opened = {**block, "input": {}} if block["type"] == "server_tool_use" else block
        out.append(wire._event("content_block_start", {"type": "content_block_start", "index": index,
                                                       "content_block": opened}))
        if block["type"] == "server_tool_use":
            partial = json.dumps(block["input"], ensure_ascii=False)
            out.append(wire._event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                           "delta": {"type": "input_json_delta",
                                                                     "partial_json": partial}}))
        out.append(wire._event("content_block_stop", {"type": "content_block_stop", "index": index}))
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

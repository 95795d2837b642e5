"""Claude's extended thinking on Bedrock (Converse `reasoningContent` blocks, streamed as `reasoningContent`
deltas) is the result's reasoning, never its answer text — as on Anthropic's own API."""

from __future__ import annotations

import json

from flywheel.gateway.providers.bedrock_wire import ConverseFold, parse_converse

BODY = {"output": {"message": {"role": "assistant", "content": [
    {"reasoningContent": {"reasoningText": {"text": "The user wants 6*7.", "signature": "sig=="}}},
    {"text": "42."}]}}, "stopReason": "end_turn", "usage": {"inputTokens": 10, "outputTokens": 20}}


def test_a_converse_answer_keeps_its_thinking_apart():
    resp = parse_converse(200, json.dumps(BODY).encode(), "claude")
    assert resp.text == "42." and resp.reasoning == "The user wants 6*7."


def _event(kind: str, data: dict) -> tuple[dict[str, str], bytes]:
    return {":message-type": "event", ":event-type": kind}, json.dumps(data).encode()


def test_a_converse_stream_sends_thinking_as_reasoning_pieces():
    fold = ConverseFold()
    thoughts, text = [], []
    for event in [_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Six "}}}),
                  _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "sevens."}}}),
                  _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "s"}}}),
                  _event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "42."}}),
                  _event("messageStop", {"stopReason": "end_turn"})]:
        text.append(fold.take(event))
        if fold.thought:
            thoughts.append(fold.thought)
            fold.thought = None
    assert "".join(thoughts) == "Six sevens." and "".join(text) == "42."
    assert fold.final().finish_reason == "stop"

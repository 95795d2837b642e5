"""A reasoning model's thinking, kept apart from its answer at the provider boundary.

OpenAI-compatible servers return it two ways:

- a field beside the answer: `message.reasoning_content` (DeepSeek's API, vLLM and SGLang with a reasoning
  parser; streamed as `delta.reasoning_content`), or `message.reasoning` / `delta.reasoning` (OpenRouter, newer
  vLLM, Ollama's OpenAI API with `think`) — `wire_reasoning` reads either;
- inline, at the very start of the content: `<think>…</think>answer` (Qwen3 and DeepSeek-R1 on Ollama or
  llama.cpp without a reasoning parser) — `split_think` (a whole answer) and `ThinkSplitter` (a stream, the
  tags possibly cut across chunks) take it out.

Only a leading `<think>` block counts (after whitespace): a `<think>` later in the answer is the answer's. An
opened block that never closes (the answer cut by `max_tokens`) is all reasoning, the answer empty. Guards, the
cache, evals and checks see the answer alone; the reasoning travels on `ChatResult.reasoning` /
`StreamChunk.reasoning`.
"""

from __future__ import annotations

from typing import Any

OPEN, CLOSE = "<think>", "</think>"


def wire_reasoning(obj: Any) -> str | None:
    """`reasoning_content` or `reasoning` of a wire message / delta (a dict, or an SDK model with extra fields)."""
    for name in ("reasoning_content", "reasoning"):
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if isinstance(value, str) and value:
            return value
    return None


def split_think(text: str) -> tuple[str | None, str]:
    """(the leading <think> block's text, the answer after it); (None, text) when the text opens with none."""
    body = text.lstrip()
    if not body.startswith(OPEN):
        return None, text
    body = body[len(OPEN):]
    end = body.find(CLOSE)
    if end < 0:
        return body.strip() or None, ""
    return body[:end].strip() or None, body[end + len(CLOSE):].lstrip()


def joined(*parts: str | None) -> str | None:
    """The reasoning pieces that are set, one a line (None for none); streamed, `StreamFold.think` starts each
    later block with the same "\n", so both read alike."""
    found = [p for p in parts if p]
    return "\n".join(found) if found else None


class ThinkSplitter:
    """Splits streamed content into (reasoning, answer) pieces, as `split_think` splits a whole answer."""

    __slots__ = ("buffer", "state")

    def __init__(self) -> None:
        self.state = "start"  # start → thinking → after → answer (or start → answer)
        self.buffer = ""

    def feed(self, delta: str) -> tuple[str, str]:
        """(reasoning, answer) text of this delta (either may be "" while a tag may still be forming)."""
        if self.state == "answer":
            return "", delta
        self.buffer += delta
        if self.state == "start":
            head = self.buffer.lstrip()
            if not head or (len(head) < len(OPEN) and OPEN.startswith(head)):
                return "", ""  # whitespace, or the start of a tag: wait
            if not head.startswith(OPEN):
                self.state, out, self.buffer = "answer", self.buffer, ""
                return "", out
            self.state, self.buffer = "thinking", head[len(OPEN):].lstrip()
        if self.state == "thinking":
            end = self.buffer.find(CLOSE)
            if end < 0:  # hold back what may be the start of the closing tag
                keep = next((k for k in range(min(len(CLOSE) - 1, len(self.buffer)), 0, -1)
                             if CLOSE.startswith(self.buffer[-k:])), 0)
                out, self.buffer = self.buffer[:len(self.buffer) - keep], self.buffer[len(self.buffer) - keep:]
                return out, ""
            thought, self.state, self.buffer = self.buffer[:end], "after", self.buffer[end + len(CLOSE):]
            answer = self._after()
            return thought, answer
        return "", self._after()

    def _after(self) -> str:
        """After the closing tag: the answer from its first non-space character on."""
        head = self.buffer.lstrip()
        if not head:
            self.buffer = ""
            return ""
        self.state, self.buffer = "answer", ""
        return head

    def flush(self) -> tuple[str, str]:
        """What is still held when the stream ends: an unclosed block's tail is reasoning."""
        held, self.buffer = self.buffer, ""
        if self.state == "thinking":
            return held, ""
        if self.state == "start":
            return "", held
        return "", ""

"""Bedrock Converse API shapes: flywheel's OpenAI-shaped requests and answers to and from Converse.

    OpenAI (flywheel)                                      Converse
    system messages                                        system [{text}]
    max_tokens, temperature, stop, params.top_p            inferenceConfig {maxTokens, temperature, stopSequences, topP}
    tools [{type: function, function: {name, …}}]          toolConfig.tools [{toolSpec {name, description, inputSchema {json}}}]
    tool_choice auto | required | {function: {name}}       toolConfig.toolChoice {auto: {}} | {any: {}} | {tool: {name}}
    assistant tool_calls (arguments: a JSON string)        assistant content [{toolUse {toolUseId, name, input}}]
    {role: tool, tool_call_id, content}                    user content [{toolResult {toolUseId, content [{text}]}}]
    finish_reason stop | length | tool_calls | content_filter   stopReason end_turn, stop_sequence | max_tokens | tool_use
                                                           | guardrail_intervened, content_filtered
    usage {input_tokens, output_tokens}                    usage {inputTokens, outputTokens}

The turns are built by the Anthropic translation (gateway/tools.py: consecutive turns of one role merged, tool
results as user turns), then reshaped into Converse blocks. `tool_choice: none` has no Converse form: the tools
are still declared (Bedrock requires them when the history holds tool blocks) and the model chooses. Alias
`params` whose names are Converse's own top-level fields (`inferenceConfig`, `additionalModelRequestFields`,
`guardrailConfig`, `performanceConfig`, `requestMetadata`, `promptVariables`,
`additionalModelResponseFieldPaths`) go as they are; `max_tokens`, `temperature`, `top_p` and `stop` go in
`inferenceConfig`; any other param (e.g. `top_k`) in `additionalModelRequestFields`.
"""

from __future__ import annotations

import json
from typing import Any

from flywheel.gateway.providers.base import ProviderError, ProviderResponse, make_chunk, make_usage
from flywheel.gateway.providers.reasoning import joined
from flywheel.gateway.providers.sdk import StreamFold
from flywheel.gateway.tools import anthropic_messages, anthropic_tool_choice, anthropic_tools
from flywheel.types import ChatRequest, StreamChunk, Usage

TOP_LEVEL = frozenset({"inferenceConfig", "additionalModelRequestFields", "guardrailConfig", "performanceConfig",
                       "requestMetadata", "promptVariables", "additionalModelResponseFieldPaths"})
_INFERENCE = {"max_tokens": "maxTokens", "temperature": "temperature", "top_p": "topP", "stop": "stopSequences"}
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
          "guardrail_intervened": "content_filter", "content_filtered": "content_filter",
          "model_context_window_exceeded": "length"}
# stream exception events → the HTTP status the same failure has on a non-streaming call
STREAM_EXCEPTIONS = {"throttlingException": 429, "serviceUnavailableException": 503, "internalServerException": 500,
                     "modelStreamErrorException": 500, "validationException": 400, "modelTimeoutException": 408}


def converse_body(model_params: dict[str, Any], request: ChatRequest) -> dict[str, Any]:
    system, turns = anthropic_messages(request.messages)
    body: dict[str, Any] = {"messages": [{"role": t["role"], "content": converse_blocks(t["content"])}
                                         for t in turns]}
    if system:
        body["system"] = [{"text": system}]
    inference: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in model_params.items():
        if key in TOP_LEVEL:
            body[key] = value
        elif key in _INFERENCE:
            inference[_INFERENCE[key]] = value
        else:
            extra[key] = value
    if request.max_tokens is not None:
        inference["maxTokens"] = request.max_tokens
    if request.temperature is not None:
        inference["temperature"] = request.temperature
    if request.sampling("top_p") is not None:  # Converse's one other sampling field; seed, top_k and penalties are dropped
        inference["topP"] = request.top_p
    if request.stop:
        inference["stopSequences"] = request.stop
    if inference:
        body["inferenceConfig"] = {**body.get("inferenceConfig", {}), **inference}
    if extra:
        body["additionalModelRequestFields"] = {**body.get("additionalModelRequestFields", {}), **extra}
    if request.tools:
        tools = [{"toolSpec": {"name": t["name"], "inputSchema": {"json": t["input_schema"]},
                               **({"description": t["description"]} if t.get("description") else {})}}
                 for t in anthropic_tools(request.tools)]
        config: dict[str, Any] = {"tools": tools}
        choice = anthropic_tool_choice(request.tool_choice)
        if choice is not None and choice["type"] in ("auto", "any"):
            config["toolChoice"] = {choice["type"]: {}}
        elif choice is not None and choice["type"] == "tool":
            config["toolChoice"] = {"tool": {"name": choice["name"]}}
        body["toolConfig"] = config
    return body


def converse_blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Anthropic message content (a string, or text / tool_use / tool_result blocks) as Converse blocks."""
    if isinstance(content, str):
        return [{"text": content}]
    out: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type")
        if kind == "tool_use":
            out.append({"toolUse": {"toolUseId": block["id"], "name": block["name"], "input": block["input"]}})
        elif kind == "tool_result":
            out.append({"toolResult": {"toolUseId": block["tool_use_id"],
                                       "content": [{"text": str(block.get("content") or "")}]}})
        elif block.get("text"):
            out.append({"text": block["text"]})
    return out or [{"text": ""}]


def converse_usage(data: Any) -> Usage | None:
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return None
    inp, out = usage.get("inputTokens") or 0, usage.get("outputTokens") or 0
    # as on Anthropic, inputTokens leaves out the prompt-cache reads and writes; flywheel's input counts them all
    read, write = int(usage.get("cacheReadInputTokens") or 0), int(usage.get("cacheWriteInputTokens") or 0)
    return make_usage(int(inp) + read + write, int(out), read, write) if inp or out or read or write else None


def tool_call(use: dict[str, Any]) -> dict[str, Any]:
    return {"id": use.get("toolUseId") or "", "type": "function",
            "function": {"name": use.get("name") or "", "arguments": json.dumps(use.get("input") or {},
                                                                              ensure_ascii=False)}}


def parse_converse(status: int, content: bytes, model: str) -> ProviderResponse:
    """A 2xx Converse body → ProviderResponse; one without an output message is a retryable bad_response."""
    try:
        data = json.loads(content)
        blocks = data["output"]["message"]["content"]
        if not isinstance(blocks, list):
            raise TypeError
    except ValueError as exc:
        raise ProviderError(f"response body is not valid JSON: {exc}", kind="bad_response", status=status,
                            retryable=True) from None
    except (KeyError, TypeError):
        raise ProviderError(f"response has no output message: {content[:300]!r}", kind="bad_response",
                            status=status, retryable=True) from None
    text = "".join(b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str))
    calls = [tool_call(b["toolUse"]) for b in blocks if isinstance(b, dict) and isinstance(b.get("toolUse"), dict)]
    stop = data.get("stopReason")
    # Claude's extended thinking on Bedrock: {"reasoningContent": {"reasoningText": {"text", "signature"}}} blocks
    reasoning = joined(*(((b.get("reasoningContent") or {}).get("reasoningText") or {}).get("text")
                         for b in blocks if isinstance(b, dict) and isinstance(b.get("reasoningContent"), dict)))
    return ProviderResponse(text, converse_usage(data), model, FINISH.get(stop, stop), data, calls or None,
                            reasoning=reasoning)


def error_message(status: int, headers: Any, content: bytes) -> str:
    """"Error code: 429 - ThrottlingException: Too many requests" from Bedrock's error body and type header."""
    kind = (headers.get("x-amzn-errortype") or "").split(":", 1)[0] if headers is not None else ""
    try:
        data = json.loads(content)
    except ValueError:
        data = None
    detail = (data.get("message") or data.get("Message")) if isinstance(data, dict) else None
    kind = kind or (data.get("__type", "").rsplit("#", 1)[-1] if isinstance(data, dict) else "")
    text = ": ".join(p for p in (kind, detail if isinstance(detail, str) else "") if p)
    return f"Error code: {status}" + (f" - {text}" if text else "")


class ConverseFold(StreamFold):
    """Folds ConverseStream events ((headers, payload) of each event-stream message) into text deltas, tool-call
    pieces, and the closing chunk with the stop reason and usage (the `metadata` event)."""

    __slots__ = ("stop_reason", "tools", "usage")

    def __init__(self) -> None:
        super().__init__()
        self.stop_reason: str | None = None
        self.usage: Usage | None = None
        self.tools: dict[int, int] = {}  # contentBlockIndex → tool-call index

    def take(self, event: tuple[dict[str, str], bytes]) -> str:
        headers, payload = event
        if headers.get(":message-type") == "exception" or headers.get(":message-type") == "error":
            raise stream_exception(headers, payload)
        kind = headers.get(":event-type")
        try:
            data = json.loads(payload) if payload else {}
        except ValueError as exc:
            raise ProviderError(f"stream event {kind} is not valid JSON: {exc}", kind="bad_response",
                                retryable=True) from None
        if kind == "contentBlockDelta":
            delta = data.get("delta") or {}
            if isinstance(delta.get("toolUse"), dict):
                index = self.tools.get(data.get("contentBlockIndex", 0), 0)
                self.calls = [{"index": index, "function": {"arguments": delta["toolUse"].get("input") or ""}}]
                return ""
            thought = (delta.get("reasoningContent") or {}).get("text") if isinstance(
                delta.get("reasoningContent"), dict) else None
            if thought:  # a piece of Claude's thinking (its `signature` piece carries no text)
                self.think(data.get("contentBlockIndex", 0), thought)  # counted in `chars` (StreamFold.think)
                return ""
            text = delta.get("text") or ""
            self.chars += len(text)
            return text
        if kind == "contentBlockStart":
            use = (data.get("start") or {}).get("toolUse")
            if isinstance(use, dict):
                index = self.tools[data.get("contentBlockIndex", 0)] = len(self.tools)
                self.calls = [{"index": index, "id": use.get("toolUseId") or "", "type": "function",
                               "function": {"name": use.get("name") or "", "arguments": ""}}]
        elif kind == "messageStop":
            self.stop_reason = data.get("stopReason") or "end_turn"
        elif kind == "metadata":
            self.usage = converse_usage(data) or self.usage
        return ""

    def broken(self, err: ProviderError) -> ProviderError:
        err = super().broken(err)
        err.usage = err.usage or self.usage
        return err

    def final(self) -> StreamChunk:
        if self.stop_reason is None:
            raise self.truncated("a messageStop event", self.usage)
        return make_chunk("", FINISH.get(self.stop_reason, self.stop_reason), self.usage)


def stream_exception(headers: dict[str, str], payload: bytes) -> ProviderError:
    name = headers.get(":exception-type") or headers.get(":error-code") or "exception"
    try:
        data = json.loads(payload)
        detail = data.get("message") or data.get("Message") or ""
    except (ValueError, AttributeError):
        detail = payload[:200].decode("utf-8", "replace")
    status = STREAM_EXCEPTIONS.get(name, 500)
    return ProviderError.from_status(status, f"stream failed: {name}: {detail}")

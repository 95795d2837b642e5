"""The fake LLM's Bedrock Runtime wire: Converse (`POST /model/{id}/converse`) and ConverseStream
(`/converse-stream`, AWS event-stream framing). Pure functions, no I/O.

A Converse request is read through a chat-completions-shaped view (`chat_view`) so the same rules, tool calls,
faults and token counts script it as the OpenAI and Anthropic wires: the last user message or tool result is
what rules match, and `inputTokens` / `outputTokens` follow fake_llm_wire's tokenizer. With Claude's extended
thinking on (`additionalModelRequestFields.thinking: {type: enabled, …}`), the answer starts with a signed
`reasoningContent` block (streamed: two text pieces, then the signature), thinking what the Anthropic wire thinks.

Auth (when the FakeLLM has an `api_key`): `Authorization: Bearer <api_key>` (a Bedrock API key), or a SigV4
signature made with `api_key` as the AWS secret access key (any access key id) — verified here, so a test
proves the request was signed correctly, not only that a header was present.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from flywheel.gateway.providers.aws_eventstream import encode_message
from flywheel.gateway.providers.aws_sigv4 import parse_authorization, signature
from flywheel.testing import fake_llm_anthropic as anthropic
from flywheel.testing import fake_llm_wire as wire

ERROR_TYPES = {400: "ValidationException", 401: "UnrecognizedClientException", 403: "AccessDeniedException",
               404: "ResourceNotFoundException", 408: "ModelTimeoutException", 429: "ThrottlingException",
               500: "InternalServerException", 503: "ServiceUnavailableException"}
STREAM_EXCEPTIONS = {429: "throttlingException", 503: "serviceUnavailableException", 400: "validationException"}


def chat_view(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The Converse body as {model, system, messages [{role, content: text}], max_tokens} (tool results as role
    `tool`), for the scripting engine and the token counts."""
    messages = []
    for message in body.get("messages") or []:
        texts, result = [], False
        for block in message.get("content") or []:
            if isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif isinstance(block.get("toolResult"), dict):
                result = True
                for part in block["toolResult"].get("content") or []:
                    if isinstance(part.get("text"), str):
                        texts.append(part["text"])
                    elif "json" in part:
                        texts.append(json.dumps(part["json"], ensure_ascii=False))
        role = "tool" if result and message.get("role") == "user" else message.get("role")
        messages.append({"role": role, "content": "\n".join(texts)})
    system = "\n".join(s.get("text", "") for s in body.get("system") or [] if isinstance(s, dict))
    view: dict[str, Any] = {"model": model, "messages": messages, "system": system}
    inference = body.get("inferenceConfig") or {}
    if inference.get("maxTokens") is not None:
        view["max_tokens"] = inference["maxTokens"]
    if inference.get("stopSequences"):  # stopReason "stop_sequence", as Bedrock answers it
        view["stop_sequences"] = inference["stopSequences"]
    thinking = (body.get("additionalModelRequestFields") or {}).get("thinking")
    if isinstance(thinking, dict):  # Claude's extended thinking, as Bedrock passes it on
        view["thinking"] = thinking
    return view


def validate(body: dict[str, Any]) -> str | None:
    """What real Bedrock would refuse with a ValidationException, or None."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: must be a non-empty list"
    tool_blocks = False
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: must be user or assistant"
        if i == 0 and message["role"] != "user":
            return "A conversation must start with a user message."
        if i and messages[i - 1].get("role") == message["role"]:
            return "A conversation must alternate between user and assistant roles."
        content = message.get("content")
        if not isinstance(content, list) or not content or not all(isinstance(b, dict) for b in content):
            return f"messages.{i}.content: must be a non-empty list of content blocks"
        tool_blocks = tool_blocks or any("toolUse" in b or "toolResult" in b for b in content)
    if tool_blocks and not body.get("toolConfig"):
        return "The toolConfig field must be defined when using toolUse and toolResult content blocks."
    return None


def converse_response(view: dict[str, Any], answer: wire.Answer) -> dict[str, Any]:
    message = wire.anthropic_message(view, answer)
    blocks = [{"text": b["text"]} if b["type"] == "text" else
              {"toolUse": {"toolUseId": b["id"].replace("toolu_", "tooluse_", 1), "name": b["name"],
                           "input": b["input"]}} for b in message["content"]]
    if anthropic._thinking_on(view):  # the thinking first, signed, as Claude on Bedrock answers it
        thought = anthropic._thought(view)
        blocks.insert(0, {"reasoningContent": {"reasoningText": {"text": thought, "signature": anthropic.sign(thought)}}})
    usage = message["usage"]
    return {"output": {"message": {"role": "assistant", "content": blocks}}, "stopReason": message["stop_reason"],
            "usage": {"inputTokens": usage["input_tokens"], "outputTokens": usage["output_tokens"],
                      "totalTokens": usage["input_tokens"] + usage["output_tokens"]},
            "metrics": {"latencyMs": 1}}


def event(name: str, data: dict[str, Any]) -> bytes:
    payload = wire.dumps({**data, "p": "abcdefgh"})  # Bedrock pads events; readers must ignore `p`
    return encode_message({":event-type": name, ":content-type": "application/json", ":message-type": "event"},
                          payload)


def converse_stream(view: dict[str, Any], answer: wire.Answer) -> list[bytes]:
    """Event-stream messages of a ConverseStream answer: messageStart, the blocks' deltas, messageStop, metadata."""
    done = converse_response(view, answer)
    frames = [event("messageStart", {"role": "assistant"})]
    for i, block in enumerate(done["output"]["message"]["content"]):
        if "reasoningContent" in block:  # the thinking in two pieces, then its signature (no text)
            reasoning = block["reasoningContent"]["reasoningText"]
            half = len(reasoning["text"]) // 2
            frames.extend(event("contentBlockDelta", {"contentBlockIndex": i, "delta": {"reasoningContent": d}})
                          for d in ({"text": reasoning["text"][:half]}, {"text": reasoning["text"][half:]},
                                    {"signature": reasoning["signature"]}))
        elif "toolUse" in block:
            use = block["toolUse"]
            frames.append(event("contentBlockStart", {"contentBlockIndex": i, "start": {
                "toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}}))
            frames.extend(event("contentBlockDelta", {"contentBlockIndex": i, "delta": {"toolUse": {"input": p}}})
                          for p in wire.split_deltas(json.dumps(use["input"], ensure_ascii=False)))
        else:
            frames.extend(event("contentBlockDelta", {"contentBlockIndex": i, "delta": {"text": p}})
                          for p in wire.split_deltas(block["text"]))
        frames.append(event("contentBlockStop", {"contentBlockIndex": i}))
    frames.append(event("messageStop", {"stopReason": done["stopReason"]}))
    frames.append(event("metadata", {"usage": done["usage"], "metrics": done["metrics"]}))
    return frames


def exception_frame(status: int, message: str) -> bytes:
    name = STREAM_EXCEPTIONS.get(status, "internalServerException")
    return encode_message({":exception-type": name, ":content-type": "application/json",
                           ":message-type": "exception"}, wire.dumps({"message": message}))


def error(status: int, message: str) -> tuple[bytes, dict[str, str]]:
    """A Bedrock error body and its `x-amzn-ErrorType` header."""
    kind = ERROR_TYPES.get(status, "InternalServerException")
    return wire.dumps({"message": message}), {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/"}


def sigv4_valid(method: str, target: str, headers: dict[str, str], body: bytes, secret: str) -> bool:
    """Whether the request's SigV4 Authorization header is a valid signature with `secret`."""
    fields = parse_authorization(headers.get("authorization", ""))
    if fields is None:
        return False
    names = fields["SignedHeaders"].split(";")
    scope = fields["Credential"].split("/")
    if "host" not in names or "x-amz-date" not in names or len(scope) != 5:
        return False
    signed = {name: headers.get(name, "") for name in names}
    expected, _ = signature(method, "http://" + headers.get("host", "") + target, signed, body, secret,
                            amz_date=headers.get("x-amz-date", ""), region=scope[2], service=scope[3])
    return hmac.compare_digest(expected, fields["Signature"])


def sigv4_region(headers: dict[str, str]) -> str | None:
    fields = parse_authorization(headers.get("authorization", ""))
    scope = fields["Credential"].split("/") if fields else []
    return scope[2] if len(scope) == 5 else None

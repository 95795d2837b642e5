"""Logged OpenAI Responses API calls (`POST /v1/responses`) in the `openai-log` import format.

A line is `{request: {model, input, instructions?, temperature?, max_output_tokens?, …}, response: {model,
created_at, status, output: [items], usage: {input_tokens, output_tokens}, error?}, timestamp?, app?, …}`.
`instructions` becomes the system message; `input` (a text, or items) the chat messages: message items with
their text parts joined, `function_call` items an assistant message with OpenAI `tool_calls`,
`function_call_output` items `tool` messages. The answer is the `output_text` parts of the output's message
items; its `function_call` items are the tool calls the model asked for; a failed response's `error` is the
call's error.
"""

from __future__ import annotations

from typing import Any

from flywheel.tracing.import_fields import (
    MAX_LATENCY_MS,
    Bad,
    Record,
    content_text,
    error_text,
    meta_obj,
    opt_num,
    opt_str,
    time_of,
)


def is_responses(resp: dict[str, Any]) -> bool:
    return "choices" not in resp and isinstance(resp.get("output"), list)


def parse(obj: dict[str, Any], req: dict[str, Any], resp: dict[str, Any]) -> Record:
    if "input" not in req:
        raise Bad("request.input", "missing (the Responses API request's input)")
    messages = _instructions(req.get("instructions")) + _input(req["input"])
    text = "".join(
        content_text(
            [p for p in item.get("content") or [] if isinstance(p, dict) and p.get("type") == "output_text"]
        )
        for item in resp["output"]
        if isinstance(item, dict) and item.get("type") == "message"
    )
    calls = [
        _call(item)
        for item in resp["output"]
        if isinstance(item, dict) and item.get("type") == "function_call"
    ]
    stamp = obj.get("timestamp", resp.get("created_at"))
    if stamp is None:
        raise Bad("response.created_at", "missing (or give a top-level `timestamp`)")
    usage = resp.get("usage") or {}
    if not isinstance(usage, dict):
        raise Bad("response.usage", "must be an object")
    params = {
        name: req[key]
        for key, name in (
            ("temperature", "temperature"),
            ("max_output_tokens", "max_tokens"),
            ("text", "text"),
        )
        if req.get(key) is not None
    }
    failed = resp.get("error") or (
        resp.get("incomplete_details") if resp.get("status") == "incomplete" else None
    )
    return Record(
        line=0,
        digest="",
        started=time_of(stamp, "timestamp" if "timestamp" in obj else "response.created_at"),
        latency_ms=opt_num(obj.get("latency_ms"), "latency_ms", most=MAX_LATENCY_MS),
        app=opt_str(obj, "app", limit=100),
        model=opt_str(resp, "model", "response.model") or opt_str(req, "model", "request.model"),
        messages=messages,
        output=text if text or not failed else None,
        tenant=opt_str(obj, "tenant", limit=100),
        session_id=opt_str(obj, "session_id"),
        user_id=opt_str(req, "user", "request.user"),
        metadata=meta_obj(obj.get("metadata"), "metadata"),
        input_tokens=opt_num(usage.get("input_tokens"), "response.usage.input_tokens", integer=True),
        output_tokens=opt_num(usage.get("output_tokens"), "response.usage.output_tokens", integer=True),
        cost_usd=opt_num(obj.get("cost_usd"), "cost_usd"),
        error=error_text(failed) if failed else None,
        params=params,
        tool_calls=calls or None,
    )


def _instructions(value: Any) -> list[dict[str, Any]]:
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        raise Bad("request.instructions", "must be a text")
    return [{"role": "system", "content": value}]


def _input(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise Bad("request.input", "a text, or a list of input items")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise Bad(f"request.input.{i}", "an input item is an object")
        kind = item.get("type", "message")
        if kind == "message" and isinstance(item.get("role"), str):
            content = item.get("content")
            out.append(
                {
                    "role": item["role"],
                    "content": content if isinstance(content, str) else content_text(content),
                }
            )
        elif kind == "function_call":
            out.append({"role": "assistant", "content": "", "tool_calls": [_call(item)]})
        elif kind == "function_call_output":
            output = item.get("output")
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": item.get("call_id"),
                    "content": output if isinstance(output, str) else content_text(output),
                }
            )
    return out


def _call(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item.get("call_id") or item.get("id"),
        "type": "function",
        "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"},
    }

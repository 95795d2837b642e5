"""Tool calls a model asked for, sent as indexed span attributes (OpenInference's `llm.output_messages.N.message.
tool_calls.M.tool_call.*`, OpenLLMetry's `gen_ai.completion.N.tool_calls.M.*`), become the answer's OpenAI
`tool_calls`, and are content (lifted out of the stored attributes, so `capture_content: false` drops them)."""

from __future__ import annotations

import pytest

from flywheel.server import otlp
from flywheel.tracing import genai_content, otlp_conventions

OPENINFERENCE = {
    "openinference.span.kind": "LLM",
    "llm.input_messages.0.message.role": "user",
    "llm.input_messages.0.message.content": "查一下订单 A-1",
    "llm.output_messages.0.message.role": "assistant",
    "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "track",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"order": "A-1"}',
    "llm.output_messages.0.message.tool_calls.1.tool_call.function.name": "notify",
    "llm.output_messages.0.message.tool_calls.1.tool_call.function.arguments": "{}",
}
OPENLLMETRY = {
    "gen_ai.operation.name": "chat",
    "gen_ai.prompt.0.role": "user",
    "gen_ai.prompt.0.content": "查一下订单 A-1",
    "gen_ai.completion.0.role": "assistant",
    "gen_ai.completion.0.finish_reason": "tool_calls",
    "gen_ai.completion.0.tool_calls.0.id": "call_1",
    "gen_ai.completion.0.tool_calls.0.name": "track",
    "gen_ai.completion.0.tool_calls.0.arguments": '{"order": "A-1"}',
}


@pytest.mark.parametrize("attrs", [OPENINFERENCE, OPENLLMETRY], ids=["openinference", "openllmetry"])
def test_indexed_tool_calls_become_openai_tool_calls(attrs):
    inputs, outputs = genai_content.content(attrs)
    assert inputs == {"messages": [{"role": "user", "content": "查一下订单 A-1"}]}
    (answer,) = outputs
    assert answer["role"] == "assistant" and answer["content"] is None
    first = answer["tool_calls"][0]
    assert first == {"id": "call_1", "type": "function",
                     "function": {"name": "track", "arguments": '{"order": "A-1"}'}}
    assert len(answer["tool_calls"]) == (2 if attrs is OPENINFERENCE else 1)


@pytest.mark.parametrize("attrs", [OPENINFERENCE, OPENLLMETRY], ids=["openinference", "openllmetry"])
def test_tool_call_attributes_are_not_kept_twice(attrs):
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60d", "spanId": "eee19b7ec3c1b175", "name": "chat",
        "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000500000000",
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()]}]}]}]}
    (span,) = otlp.to_spans(body, "default")
    assert span.kind == "llm" and span.outputs[0]["tool_calls"][0]["function"]["name"] == "track"
    assert not [k for k in span.attributes if "tool_calls" in k]
    assert all(otlp_conventions.is_content_key(k) for k in attrs if "tool_calls" in k)

"""Structured output through the gateway: lenient parsing, bounded re-asks carrying the error, cost of re-asks."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from flywheel.config import ModelAlias, Price
from flywheel.gateway import Gateway
from flywheel.gateway.structured import (
    StructuredOutputError,
    achat_structured,
    chat_structured,
    parse_lenient,
)
from flywheel.testing.fake_llm import FakeLLM
from flywheel.types import ChatRequest


class Person(BaseModel):
    name: str
    age: int


def gateway_for(llm: FakeLLM, **options) -> Gateway:
    alias = ModelAlias(provider="openai_compat", model="fake-json", base_url=llm.base_url,
                       price=Price(input=1000.0, output=1000.0), max_retries=0, **options)
    return Gateway({"m": alias})


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": 1}', {"a": 1}),
        ('Here you go:\n```json\n{"a": [1, 2]}\n```\nAnything else?', {"a": [1, 2]}),
        ('Sure! The record is {"a": {"b": true}} as requested.', {"a": {"b": True}}),
        ("[1, 2, 3]", [1, 2, 3]),
    ],
)
def test_lenient_parsing(text, value):
    assert parse_lenient(text) == value


def test_lenient_parsing_rejects_prose():
    with pytest.raises(ValueError, match="not valid JSON|no JSON"):
        parse_lenient("I cannot answer that.")


def test_reask_carries_the_validation_error_and_charges_every_attempt():
    with FakeLLM() as llm:
        llm.add(r"not valid", '```json\n{"name": "Ann", "age": 31}\n```')
        llm.add(r"Extract", 'Sure! {"name": "Ann", "age": "thirty-one"}')
        out = chat_structured(gateway_for(llm), ChatRequest.of("Extract the person: Ann, 31", model="m"), Person)
        assert out.value == Person(name="Ann", age=31)
        assert out.reasks == 1
        first, second = [r for r in llm.requests if r.get("path", "").endswith("/chat/completions")]
        assert first["response_format"]["type"] == "json_schema"
        assert "JSON Schema" in first["messages"][0]["content"]
        assert second["messages"][-2]["role"] == "assistant"
        assert "age" in second["messages"][-1]["content"]  # the error names the bad field
    one_call_tokens = out.result.usage.total_tokens
    assert out.result.attempts == 2
    assert out.result.cost_usd > 0
    assert one_call_tokens > 0
    assert out.result.cost_usd == pytest.approx(
        (out.result.usage.input_tokens + out.result.usage.output_tokens) * 1000.0 / 1e6)


def test_gives_up_after_max_reasks_with_the_cost_so_far():
    with FakeLLM() as llm:
        llm.default = "no json for you"
        with pytest.raises(StructuredOutputError) as err:
            chat_structured(gateway_for(llm), ChatRequest.of("Extract", model="m"), Person, max_reasks=2)
        assert len([r for r in llm.requests if r.get("path", "").endswith("/chat/completions")]) == 3
    assert len(err.value.errors) == 3
    assert err.value.result.cost_usd > 0 and err.value.result.attempts == 3


def test_json_schema_dict_and_opting_out_of_response_format():
    schema = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
              "required": ["tags"]}
    with FakeLLM() as llm:
        llm.add(r"not valid", '{"tags": ["a", "b"]}')
        llm.add(r"Tag", '{"tags": "a"}')
        out = asyncio.run(achat_structured(gateway_for(llm, json_schema=False),
                                           ChatRequest.of("Tag this", model="m"), schema))
        assert out.value == {"tags": ["a", "b"]} and out.reasks == 1
        assert "response_format" not in llm.requests[0]

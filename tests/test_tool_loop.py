"""The bounded tool loop (gateway/tool_loop.py) against fake_llm on both wires: round trips, parallel calls,
bounds with their stop reasons, invalid arguments and failing tools fed back, spans, the @tool schema."""
# ruff: noqa: F811 - pytest fixtures imported from gateway_support are redefined as parameters

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Literal

import pytest
from gateway_support import llm, server  # noqa: F401 - fixtures
from pydantic import Field

from flywheel.config import ModelAlias
from flywheel.errors import UserError
from flywheel.gateway import Gateway
from flywheel.gateway.tool_loop import arun_tools, run_tools, tool
from flywheel.testing.fake_llm import ToolCall
from flywheel.types import ChatRequest


@tool
def get_weather(city: Annotated[str, Field(description="City name")], unit: Literal["C", "F"] = "C") -> dict:
    """Current weather of a city.

    More text that is not part of the description."""
    return {"city": city, "temp": 21, "unit": unit}


def explode(reason: str) -> str:
    raise RuntimeError(f"boom: {reason}")


PRICE = {"input": 1000.0, "output": 1000.0}  # USD per 1M tokens: a cost that adds up fast


@pytest.fixture
def gw(llm):
    return Gateway({
        "oa": ModelAlias(provider="openai_compat", model="fake-model", base_url=llm.base_url, max_retries=0,
                         price=PRICE),
        "an": ModelAlias(provider="anthropic", model="fake-claude", base_url=llm.anthropic_base_url,
                         max_retries=0, price=PRICE),
    })


def test_tool_schema_from_type_hints():
    spec = get_weather.spec()["function"]
    assert spec["name"] == "get_weather" and spec["description"] == "Current weather of a city."
    params = spec["parameters"]
    assert params["required"] == ["city"]
    assert params["properties"]["city"]["description"] == "City name"
    assert params["properties"]["unit"]["enum"] == ["C", "F"]


def test_tool_without_type_hints_is_a_user_error(gw):
    def untyped(city):
        return city

    with pytest.raises(UserError) as err:
        run_tools(gw, ChatRequest.of("hi", model="oa"), {"untyped": untyped})
    assert "no type hint" in err.value.message and "city" in err.value.message


@pytest.mark.parametrize("alias", ["oa", "an"])
def test_round_trip_on_both_wires(gw, llm, spans, alias):
    llm.add(r"weather in paris", ToolCall("get_weather", {"city": "Paris"}))
    llm.add(r'"temp": ?21', "It is 21 °C in Paris.")
    done = run_tools(gw, ChatRequest.of("What is the weather in Paris?", model=alias), {"get_weather": get_weather})
    assert (done.text, done.stop_reason, done.steps) == ("It is 21 °C in Paris.", "final", 2)
    (call,) = done.calls
    assert call.name == "get_weather" and call.arguments == {"city": "Paris"} and call.error is None
    assert json.loads(call.result) == {"city": "Paris", "temp": 21, "unit": "C"}
    assert [m.role for m in done.messages] == ["user", "assistant", "tool", "assistant"]
    first, second = llm.requests[-2:]
    assert first["tools"]  # the tool was offered, in the wire's own shape
    assert len(second["messages"]) == 3
    tool_spans = [s for s in spans if s.kind == "tool"]
    assert [(s.name, s.inputs, s.error) for s in tool_spans] == [("tool.get_weather", {"city": "Paris"}, None)]
    assert json.loads(tool_spans[0].outputs)["temp"] == 21
    loop_span = next(s for s in spans if s.name == "tool_loop")
    assert tool_spans[0].parent_id == loop_span.span_id
    assert loop_span.attributes["flywheel.tool_loop.stop_reason"] == "final"
    assert done.cost_usd == pytest.approx(sum(s.attributes.get("flywheel.cost_usd", 0) for s in spans))
    assert done.usage.input_tokens > 0 and done.cost_usd > 0


@pytest.mark.parametrize("alias", ["oa", "an"])
def test_parallel_calls_run_in_order_and_async(gw, llm, alias):
    llm.add(r"two cities", [ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_weather", {"city": "Oslo"})])
    llm.add(r"Oslo", "Paris 21, Oslo 21.")
    req = ChatRequest.of("two cities please", model=alias)
    done = asyncio.run(arun_tools(gw, req, {"get_weather": get_weather}, concurrent=True))
    assert done.text == "Paris 21, Oslo 21." and done.stop_reason == "final"
    assert [c.arguments["city"] for c in done.calls] == ["Paris", "Oslo"]
    tool_msgs = [m for m in done.messages if m.role == "tool"]
    assert [json.loads(m.content)["city"] for m in tool_msgs] == ["Paris", "Oslo"]
    sync = run_tools(gw, req, {"get_weather": get_weather}, concurrent=True)
    assert [c.arguments["city"] for c in sync.calls] == ["Paris", "Oslo"]


def test_max_steps_stops_with_the_reason(gw, llm):
    llm.add(r".", ToolCall("get_weather", {"city": "Paris"}))  # asks for the tool forever
    done = run_tools(gw, ChatRequest.of("loop", model="oa", tool_choice="required"), {"get_weather": get_weather},
                     max_steps=3)
    assert done.stop_reason == "max_steps" and done.steps == 3
    assert len(done.calls) == 2  # the third answer's calls are not run
    assert llm.requests[-1]["tool_choice"] == "auto"  # "required" only for the first turn


@pytest.mark.parametrize("alias", ["oa", "an"])
def test_max_cost_stops_with_the_reason(gw, llm, alias):
    llm.add(r".", ToolCall("get_weather", {"city": "Paris"}))
    first = gw.chat(ChatRequest(messages=ChatRequest.of("loop").messages, model=alias,
                                tools=[get_weather.spec()]))
    done = run_tools(gw, ChatRequest.of("loop", model=alias), {"get_weather": get_weather},
                     max_cost_usd=first.cost_usd * 1.5)
    assert done.stop_reason == "max_cost" and done.steps == 2
    assert done.cost_usd >= first.cost_usd * 1.5


@pytest.mark.parametrize("alias", ["oa", "an"])
def test_invalid_arguments_go_back_to_the_model(gw, llm, spans, alias):
    llm.add(r"weather\?", ToolCall("get_weather", {"city": "Paris", "unit": "K"}))
    llm.add(r"invalid arguments", ToolCall("get_weather", {"city": "Paris", "unit": "C"}))
    llm.add(r'"temp"', "21 °C.")
    done = run_tools(gw, ChatRequest.of("weather?", model=alias), {"get_weather": get_weather})
    assert done.text == "21 °C." and done.steps == 3
    bad, good = done.calls
    assert bad.error and "unit" in bad.error and "'K' is not one of" in bad.error
    assert bad.result.startswith("error: invalid arguments for tool 'get_weather' at unit")
    assert good.error is None
    failed = [s for s in spans if s.kind == "tool" and s.error]
    assert len(failed) == 1 and "unit" in failed[0].error


def test_failing_and_unknown_tools_are_fed_back_bounded(gw, llm, spans):
    llm.add(r"^explode", [ToolCall("explode", {"reason": "x" * 500}), ToolCall("nope", {})])
    llm.add(r"unknown tool", "The tool failed.")
    done = run_tools(gw, ChatRequest.of("explode", model="oa"), {"explode": tool(explode)}, max_result_chars=100)
    assert done.text == "The tool failed."
    failed, unknown = done.calls
    assert failed.result.startswith("error: tool 'explode' failed: RuntimeError: boom: xxx")
    assert len(failed.result) < 160 and "truncated" in failed.result
    assert "unknown tool 'nope'" in unknown.result and "explode" in unknown.result
    assert {s.name for s in spans if s.kind == "tool" and s.error} == {"tool.explode", "tool.nope"}


def test_request_tools_without_a_function_is_a_user_error(gw):
    req = ChatRequest.of("hi", model="oa", tools=[get_weather.spec()])
    with pytest.raises(UserError) as err:
        run_tools(gw, req, {})
    assert "get_weather" in err.value.message


@tool
async def add(a: int, b: int) -> int:
    """Add two integers."""
    await asyncio.sleep(0)
    return a + b


def test_async_tools_and_renamed_tools(gw, llm):
    llm.add(r"^sum", ToolCall("plus", {"a": 2, "b": 3}))
    llm.add(r"^5$", "Five.")
    req = ChatRequest.of("sum please", model="oa")
    for done in (asyncio.run(arun_tools(gw, req, {"plus": add})), run_tools(gw, req, {"plus": add})):
        assert done.text == "Five." and done.calls[0].result == "5"
    assert add.name == "add"  # renaming for one loop leaves the decorated tool alone


def test_tool_records_with_fn_and_schema_are_accepted(gw, llm):
    from types import SimpleNamespace

    record = SimpleNamespace(fn=lambda city: {"city": city, "temp": 3}, description="Weather.",
                             schema={"type": "object", "properties": {"city": {"type": "string"}},
                                     "required": ["city"]})
    llm.add(r'"temp"', "3 °C.")
    llm.add(r"oslo", ToolCall("weather", {"city": "Oslo"}))
    done = run_tools(gw, ChatRequest.of("oslo?", model="oa"), {"weather": record})
    assert done.text == "3 °C." and json.loads(done.calls[0].result)["temp"] == 3
    assert llm.requests[0]["tools"][0]["function"]["description"] == "Weather."


def test_tool_spans_are_scrubbed_like_others(gw, llm, spans):
    from flywheel.tracing import Redactor, tracer

    secret = "sk-proj-" + "A1b2C3d4" * 5
    llm.add(r"^key$", ToolCall("echo", {"text": f"use {secret}"}))
    llm.add(r"use", "Done.")

    @tool
    def echo(text: str) -> str:
        return text

    before, tracer.redactor = tracer.redactor, Redactor()
    try:
        run_tools(gw, ChatRequest.of("key", model="oa"), {"echo": echo})
    finally:
        tracer.redactor = before
    (span,) = [s for s in spans if s.kind == "tool"]
    assert secret not in json.dumps(span.inputs) and secret not in json.dumps(span.outputs)
    assert "REDACTED" in json.dumps(span.inputs)

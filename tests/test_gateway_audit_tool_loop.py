"""The sync tool loop with an async tool where an event loop already runs on the calling thread (a notebook cell,
an async function calling `run_tools`): the tool runs (on a worker thread with its own loop) instead of failing
every step with "asyncio.run() cannot be called from a running event loop" until `max_steps` is spent."""
# ruff: noqa: F811 - pytest fixtures imported from gateway_support are redefined as parameters

from __future__ import annotations

import asyncio

import pytest
from gateway_support import llm, server  # noqa: F401 - fixtures

from flywheel.config import ModelAlias
from flywheel.gateway import Gateway
from flywheel.gateway.tool_loop import run_tools, tool
from flywheel.testing.fake_llm import ToolCall
from flywheel.types import ChatRequest


@tool
async def get_weather(city: str) -> dict:
    """Current weather of a city."""
    await asyncio.sleep(0)
    return {"city": city, "temp": 21}


@pytest.fixture
def gw(llm):
    gateway = Gateway({"m": ModelAlias(model="fake-model", base_url=llm.base_url, max_retries=0)})
    yield gateway
    gateway.close()


def test_an_async_tool_runs_when_the_sync_loop_is_called_inside_an_event_loop(gw, llm, spans):
    llm.add("weather in Paris", ToolCall("get_weather", {"city": "Paris"}))
    llm.add('"temp": 21', "It is 21 degrees in Paris.")
    llm.add("error", "Sorry, the tool failed.")

    async def notebook_cell():
        return run_tools(gw, ChatRequest.of("weather in Paris?", model="m"), {"get_weather": get_weather},
                         max_steps=4)

    done = asyncio.run(notebook_cell())
    assert (done.text, done.stop_reason, done.steps) == ("It is 21 degrees in Paris.", "final", 2)
    (call,) = done.calls
    assert call.error is None and call.result == '{"city": "Paris", "temp": 21}'
    (span,) = [s for s in spans if s.kind == "tool"]  # one span for the one execution, under the loop's trace
    assert span.name == "tool.get_weather" and span.error is None and span.trace_id == done.trace_id


def test_an_async_tool_still_runs_on_the_calling_thread_without_an_event_loop(gw, llm):
    llm.add("weather in Paris", ToolCall("get_weather", {"city": "Paris"}))
    llm.add('"temp": 21', "It is 21 degrees in Paris.")
    done = run_tools(gw, ChatRequest.of("weather in Paris?", model="m"), {"get_weather": get_weather}, max_steps=4)
    assert done.text == "It is 21 degrees in Paris." and done.calls[0].error is None

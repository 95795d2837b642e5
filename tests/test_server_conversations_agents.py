"""The OpenAI Agents SDK (`openai-agents`, not a flywheel dependency: skipped where it is not installed) against a
real `flywheel serve`: an agent with a function tool over several turns, its memory an `OpenAIConversationsSession`
(the Conversations API) or `conversation_id=` (the server's conversation, streamed too). Upstream is fake_llm.
What the session sends is also reproduced at the wire in test_server_conversations.py, which runs everywhere."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest
from server_support import serving, weather_and_memory_llm

agents = pytest.importorskip("agents")
from agents.memory import OpenAIConversationsSession

PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}
retrieval: {{embedder: none}}
cache: {{exact: false}}
"""


@pytest.fixture(scope="module")
def llm():
    with weather_and_memory_llm(r"(?:my name is|我叫)\s*(\w+?)(?:[.。，,]|$)") as server:
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, llm):
    with serving(tmp_path_factory.mktemp("conversations_agents"), PROJECT.format(base=llm.url)) as server:
        yield server


@agents.function_tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return json.dumps({"temp": 21, "city": city})


def _agent(live) -> tuple[openai.AsyncOpenAI, agents.Agent]:
    agents.set_tracing_disabled(True)
    client = openai.AsyncOpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
    model = agents.OpenAIResponsesModel(model="gpt", openai_client=client)
    return client, agents.Agent(name="helper", instructions="Be brief.", model=model, tools=[get_weather])


def test_a_conversations_session_keeps_a_multi_turn_run_with_a_tool(live, llm):
    async def run() -> None:
        client, agent = _agent(live)
        session = OpenAIConversationsSession(openai_client=client)
        answers = [(await agents.Runner.run(agent, ask, session=session)).final_output
                   for ask in ("Hello, my name is Ada.", "What is the weather in Paris?", "What is my name?")]
        assert answers[1:] == ["It is 21 degrees in Paris.", "Your name is Ada."]
        tool_turn = next(r for r in llm.requests if any(m["role"] == "tool" for m in r["messages"]))
        assert tool_turn["messages"][-1]["tool_call_id"] == "call_w1"
        items = await session.get_items()
        assert [i.get("type", "message") for i in items] == [
            "message", "message", "message", "function_call", "function_call_output", "message", "message", "message"]
        assert [i["role"] for i in await session.get_items(limit=2)] == ["user", "assistant"]
        cid = session.session_id
        listed = [i async for i in client.conversations.items.list(cid, order="asc")]
        assert [i.type for i in listed] == [i.get("type", "message") for i in items]
        await session.clear_session()
        with pytest.raises(openai.NotFoundError):
            await client.conversations.retrieve(cid)

    asyncio.run(run())


def test_conversation_id_runs_plain_and_streamed_in_chinese(live, llm):
    async def run() -> None:
        client, agent = _agent(live)
        conv = await client.conversations.create()
        first = await agents.Runner.run(agent, "你好，我叫李雷。", conversation_id=conv.id)
        assert first.final_output
        streamed = agents.Runner.run_streamed(agent, "巴黎的天气怎么样？", conversation_id=conv.id)
        async for _ in streamed.stream_events():
            pass
        assert streamed.final_output == "It is 21 degrees in Paris."
        last = await agents.Runner.run(agent, "我叫什么名字？", conversation_id=conv.id)
        assert last.final_output == "Your name is 李雷."
        kinds = [i.type async for i in client.conversations.items.list(conv.id, order="asc")]
        assert kinds == ["message", "message", "message", "function_call", "function_call_output", "message",
                         "message", "message"]

    asyncio.run(run())

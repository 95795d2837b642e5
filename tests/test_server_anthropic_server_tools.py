"""Anthropic server tools (web_search_20250305 …) through `flywheel serve`'s /v1/messages, with the official
`anthropic` SDK: to an alias whose every fallback is `provider: anthropic` the tool goes as it came and the
server_tool_use / web_search_tool_result blocks come back as fake_llm (Anthropic's shape) sent them, streamed
too, and the next turn can carry them in its history; an alias that may reach another provider answers a 400
naming the tool. Also: a stream waiting on a slow upstream gets `ping` events (interval set small)."""

from __future__ import annotations

import anthropic
import httpx
import pytest
from server_support import last_messages_request, serving

from flywheel.testing.fake_llm import FakeLLM

PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}
  claude: {{provider: anthropic, base_url: "{base}", model: fake-claude, max_retries: 0}}
  claude_or_gpt: {{provider: anthropic, base_url: "{base}", model: fake-claude, max_retries: 0, fallbacks: [gpt]}}
cache: {{exact: false}}
"""
SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
CUSTOM = {"name": "lookup", "description": "Look a word up", "input_schema": {"type": "object", "properties": {}}}


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        server.add(r"news", "Here is what the search found.")
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, llm):
    with serving(tmp_path_factory.mktemp("server_tools"), PROJECT.format(base=llm.url)) as server:
        yield server


@pytest.fixture(scope="module")
def ant(live):
    return anthropic.Anthropic(base_url=live.url, api_key="unused", max_retries=0)


def test_web_search_passes_through_and_its_blocks_come_back(ant, llm):
    msg = ant.messages.create(model="claude", max_tokens=200, tools=[SEARCH, CUSTOM],
                              messages=[{"role": "user", "content": "latest news"}])
    assert last_messages_request(llm)["tools"] == [SEARCH, CUSTOM]
    assert [b.type for b in msg.content] == ["server_tool_use", "web_search_tool_result", "text"]
    use, result = msg.content[0], msg.content[1]
    assert use.name == "web_search" and use.input == {"query": "latest news"}
    assert result.tool_use_id == use.id and result.content[0].type == "web_search_result"
    assert msg.content[2].text == "Here is what the search found." and msg.stop_reason == "end_turn"
    # the next turn carries the server blocks in its history, unchanged upstream
    history = [{"role": "user", "content": "latest news"},
               {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
               {"role": "user", "content": "more news"}]
    again = ant.messages.create(model="claude", max_tokens=200, tools=[SEARCH], messages=history)
    assert last_messages_request(llm)["messages"][1]["content"][:2] == history[1]["content"][:2]
    assert again.content[-1].text == "Here is what the search found."


def test_web_search_streams_its_blocks(ant):
    with ant.messages.stream(model="claude", max_tokens=200, tools=[SEARCH],
                             messages=[{"role": "user", "content": "news today"}]) as stream:
        events = list(stream)
        final = stream.get_final_message()
    starts = [e.content_block.type for e in events if e.type == "content_block_start"]
    assert starts == ["server_tool_use", "web_search_tool_result", "text"]
    assert [b.type for b in final.content] == starts
    assert final.content[0].input == {"query": "news today"}
    assert final.content[1].content[0].url.startswith("https://example.com/")
    assert final.content[2].text == "Here is what the search found."


@pytest.mark.parametrize("model", ["gpt", "claude_or_gpt"])
def test_server_tool_to_a_model_another_provider_may_answer_is_a_400(ant, llm, model):
    before = len(llm.requests)
    with pytest.raises(anthropic.BadRequestError) as err:
        ant.messages.create(model=model, max_tokens=100, tools=[CUSTOM, SEARCH],
                            messages=[{"role": "user", "content": "news"}])
    assert "'web_search'" in err.value.message and "provider: anthropic" in err.value.message
    assert err.value.body["error"]["type"] == "invalid_request_error"
    assert len(llm.requests) == before


def test_slow_stream_gets_pings(live, llm, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_STREAM_PING_SECONDS", "0.02")
    llm.chunk_latency = 0.2
    body = {"model": "claude", "max_tokens": 100, "stream": True,
            "messages": [{"role": "user", "content": "say one two three"}]}
    try:
        with httpx.stream("POST", f"{live.url}/v1/messages", json=body, timeout=30,
                          headers={"anthropic-version": "2023-06-01"}) as r:
            names = [line.removeprefix("event: ") for line in r.iter_lines() if line.startswith("event: ")]
        client = anthropic.Anthropic(base_url=live.url, api_key="unused", max_retries=0)
        with client.messages.stream(model="gpt", max_tokens=100,
                                    messages=[{"role": "user", "content": "say one two three"}]) as stream:
            text = stream.get_final_message().content[0].text
    finally:
        llm.chunk_latency = 0.0
    first_delta = names.index("content_block_delta")
    assert "ping" in names[first_delta:], names  # pings between the upstream's slow chunks, not just the first
    assert names[-1] == "message_stop"
    assert text == "You said: say one two three"

"""`flywheel serve`'s /v1/messages as coding agents use it (Claude Code with ANTHROPIC_BASE_URL, the Claude Agent
SDK): request shapes taken from captured Claude Code traffic, sent with the official `anthropic` SDK's beta client
(`?beta=true`, `anthropic-beta`), to an `anthropic` alias (pass-through: thinking and its signatures round-trip,
cache_control and unknown fields forwarded, cache usage reported) and to an `openai_compat` alias (translation).
Upstream is fake_llm, which checks thinking signatures and reports cache usage as Anthropic does."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest
from server_support import last_messages_request, serving

from flywheel.gateway.providers import anthropic_native as native_
from flywheel.testing.fake_llm import FakeLLM, ToolCall
from flywheel.testing.fake_llm_anthropic import sign
from flywheel.types import ChatRequest, Message

PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}
  claude: {{provider: anthropic, base_url: "{base}", model: fake-claude, max_retries: 0}}
  claude_or_gpt: {{provider: anthropic, base_url: "{base}", model: fake-claude, max_retries: 0, fallbacks: [gpt]}}
cache: {{exact: false}}
"""
BETAS = ["claude-code-20250219", "oauth-2025-04-20", "interleaved-thinking-2025-05-14",
         "context-management-2025-06-27"]
SYSTEM = [{"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
          {"type": "text", "text": "Answer in the repository's style.", "cache_control": {"type": "ephemeral"}}]
TOOLS = [{"name": "Read", "description": "Read a file",
          "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}},
          "cache_control": {"type": "ephemeral"}}]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def claude_code(model: str, messages: list[dict], **extra: object) -> dict:
    """A Claude Code turn: system blocks and tools with cache_control, thinking, metadata.user_id, 32k tokens."""
    return {"model": model, "max_tokens": 32000, "messages": messages, "system": SYSTEM, "tools": TOOLS,
            "thinking": {"type": "enabled", "budget_tokens": 4096},
            "metadata": {"user_id": "user_abc_account__session_1234"}, "betas": BETAS,
            "extra_body": {"temperature": 1, "context_management": {"edits": [{"type": "clear_thinking_20251015"}]}},
            **extra}


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        server.add(r"read the readme", [ToolCall("Read", {"file_path": "README.md"}, id="toolu_1")])
        server.add(r"# flywheel", "The README introduces flywheel.")
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, llm):
    with serving(tmp_path_factory.mktemp("agents"), PROJECT.format(base=llm.url)) as server:
        yield server


@pytest.fixture(scope="module")
def ant(live):
    return anthropic.Anthropic(base_url=live.url, api_key="unused", max_retries=0)


def _tool_turns(first: list[dict]) -> list[dict]:
    """The history Claude Code sends after running the Read tool the first answer asked for."""
    return [{"role": "user", "content": "read the readme"},
            {"role": "assistant", "content": first},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                          "content": [{"type": "text", "text": "# flywheel\nthe system around"}],
                                          "cache_control": {"type": "ephemeral"}}]}]


def test_streamed_claude_code_tool_loop_keeps_thinking_signatures_and_reports_cache_usage(ant, llm):
    with ant.beta.messages.stream(**claude_code("claude", [{"role": "user", "content": "read the readme"}])) as s:
        first = s.get_final_message()
    sent = last_messages_request(llm)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert sent["system"] == SYSTEM and sent["tools"][0]["cache_control"] == {"type": "ephemeral"}
    assert sent["metadata"] == {"user_id": "user_abc_account__session_1234"}
    assert sent["context_management"] == {"edits": [{"type": "clear_thinking_20251015"}]}
    assert sent["anthropic_beta"] == "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27"
    kinds = [b.type for b in first.content]
    assert kinds == ["thinking", "tool_use"] and first.stop_reason == "tool_use"
    assert first.content[0].signature == sign(first.content[0].thinking)
    assert first.usage.cache_creation_input_tokens and first.usage.input_tokens
    history = _tool_turns([b.model_dump(exclude_none=True) for b in first.content])
    with ant.beta.messages.stream(**claude_code("claude", history)) as s:
        second = s.get_final_message()
    assert [b.type for b in second.content] == ["thinking", "text"]
    assert second.content[1].text == "The README introduces flywheel."
    assert second.usage.cache_read_input_tokens and not second.usage.cache_creation_input_tokens
    sent = last_messages_request(llm)["messages"]
    assert sent[1]["content"][0]["signature"] == first.content[0].signature  # round-tripped as it came
    assert sent[2]["content"][0]["cache_control"] == {"type": "ephemeral"}


def test_stream_has_a_ping_and_numbers_thinking_text_blocks_in_order(live):
    body = claude_code("claude", [{"role": "user", "content": "hello"}])
    body.pop("betas")
    body.update(body.pop("extra_body"))
    body["stream"] = True
    with httpx.stream("POST", live.url + "/v1/messages?beta=true", json=body,
                      headers={"anthropic-beta": ",".join(BETAS)}, timeout=30) as response:
        lines = [ln for ln in response.iter_lines() if ln.startswith("data: ")]
    events = [json.loads(ln[6:]) for ln in lines]
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["message_start", "ping"]
    usage = events[0]["message"]["usage"]
    assert usage["input_tokens"] > 0 and usage["cache_creation_input_tokens"] > 0
    starts = [(e["index"], e["content_block"]["type"]) for e in events if e["type"] == "content_block_start"]
    assert starts == [(0, "thinking"), (1, "text")]
    deltas = {e["delta"]["type"] for e in events if e["type"] == "content_block_delta"}
    assert deltas == {"thinking_delta", "signature_delta", "text_delta"}
    assert kinds.count("content_block_stop") == 2 and kinds[-1] == "message_stop"


def test_non_streamed_thinking_round_trip_and_cache_usage(ant, llm):
    first = ant.beta.messages.create(**claude_code("claude", [{"role": "user", "content": "read the readme"}]),
                                     timeout=60)
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    assert first.usage.cache_creation_input_tokens
    history = _tool_turns([b.model_dump(exclude_none=True) for b in first.content])
    second = ant.beta.messages.create(**claude_code("claude", history), timeout=60)
    assert second.content[0].signature == sign(second.content[0].thinking)
    assert second.content[-1].text == "The README introduces flywheel." and second.usage.cache_read_input_tokens


def test_images_documents_and_mid_conversation_system_turns_pass_through_to_anthropic(ant, llm):
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    url = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}}
    done = ant.beta.messages.create(model="claude", max_tokens=64000, betas=BETAS, service_tier="auto", timeout=60, extra_body={"top_k": 5},
                                    messages=[
        {"role": "user", "content": [image, url, doc, {"type": "text", "text": "describe these"}]},
        {"role": "assistant", "content": "Two images and a note."},
        {"role": "system", "content": "The user is on macOS."},  # type: ignore[list-item]
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": [image]},
                                     {"type": "text", "text": "and this screenshot?"}]}])
    assert done.content[0].type == "text"
    sent = last_messages_request(llm)
    assert sent["messages"][0]["content"][:3] == [image, url, doc] and sent["top_k"] == 5
    assert sent["messages"][2] == {"role": "system", "content": "The user is on macOS."}
    assert sent["messages"][3]["content"][0]["content"] == [image] and sent["service_tier"] == "auto"
    assert sent["max_tokens"] == 64000
    assert ant.messages.count_tokens(model="claude", messages=[{"role": "user", "content": [image]}]).input_tokens


def test_the_same_turns_to_an_openai_compatible_alias_are_translated(ant, llm):
    first = ant.beta.messages.create(**claude_code("gpt", [{"role": "user", "content": "read the readme"}]),
                                     timeout=60)
    assert [b.type for b in first.content] == ["tool_use"] and first.stop_reason == "tool_use"
    thinking = {"type": "thinking", "thinking": "I should read it", "signature": "sig-x"}
    history = _tool_turns([thinking, *(b.model_dump(exclude_none=True) for b in first.content)])
    second = ant.beta.messages.create(**claude_code("gpt", history), timeout=60)
    assert second.content[0].text == "The README introduces flywheel."
    sent = [r for r in llm.requests if r["path"] == "/v1/chat/completions"][-1]
    assert "thinking" not in sent and "context_management" not in sent and "cache_control" not in json.dumps(sent)
    assert sent["messages"][0] == {"role": "system", "content": SYSTEM[0]["text"] + "\n" + SYSTEM[1]["text"]}
    assert sent["messages"][-1]["role"] == "tool" and "# flywheel" in sent["messages"][-1]["content"]


@pytest.mark.parametrize("model", ["gpt", "claude_or_gpt"])
def test_an_image_that_could_reach_a_text_only_provider_is_a_400_naming_the_block(ant, model):
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    with pytest.raises(anthropic.BadRequestError) as info:
        ant.messages.create(model=model, max_tokens=50, messages=[
            {"role": "user", "content": [{"type": "text", "text": "see"}, image]}])
    error = info.value.body["error"]
    assert "'image'" in error["message"] and "provider: anthropic" in error["message"]


def test_a_rewritten_request_falls_back_to_the_translation():
    request = ChatRequest(messages=[Message(role="user", content="hi")], model="claude")
    request.metadata[native_.NATIVE] = native_.NativeExchange(
        {"messages": [{"role": "user", "content": "hi"}], "thinking": {"type": "enabled"}}, [], request)
    assert native_.usable_exchange(request) is not None
    repaired = request.model_copy(update={"messages": [*request.messages, Message(role="assistant", content="x")]})
    assert native_.usable_exchange(repaired) is None  # its history differs: thinking must not go without it
    assert native_.forwarded_betas(" oauth-2025-04-20, a-1 ,,b-2") == ["a-1", "b-2"]

"""Prompt-cache tokens are counted and priced: OpenAI's `prompt_tokens_details.cached_tokens`, Anthropic's
`cache_read_input_tokens` / `cache_creation_input_tokens` and Bedrock's `cacheRead/WriteInputTokens` land in
`Usage` (whose `input_tokens` counts every input token), and `price.cache_read` / `price.cache_write` price them.
Before: Anthropic's cache reads and writes were dropped, so a Claude Code session (mostly cache reads) cost a
fraction of what it does; the Anthropic wire still reports the uncached `input_tokens` as Anthropic does."""

from __future__ import annotations

import anthropic
import pytest

from flywheel.config import Price, Project
from flywheel.gateway.pricing import cost_usd, usage_cost
from flywheel.gateway.providers.bedrock_wire import converse_usage
from flywheel.gateway.providers.sdk_errors import reported_usage
from flywheel.testing.fake_llm import FakeLLM
from flywheel.types import Usage

PRICE = Price(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75)


def test_cached_tokens_are_priced_at_their_own_rates():
    # 1,000 input tokens: 800 read from the cache, 100 written to it, 100 plain; 50 output
    assert cost_usd(PRICE, 1000, 50, 800, 100) == pytest.approx((100 * 3 + 800 * 0.3 + 100 * 3.75 + 50 * 15) / 1e6)
    plain = Price(input=3.0, output=15.0)  # cache prices unset: the input price, as before
    assert cost_usd(plain, 1000, 50, 800, 100) == pytest.approx((1000 * 3 + 50 * 15) / 1e6)
    assert usage_cost(PRICE, Usage(input_tokens=1000, output_tokens=50, cache_read_tokens=800,
                                   cache_write_tokens=100)) == cost_usd(PRICE, 1000, 50, 800, 100)
    assert cost_usd(PRICE, 10, 0, 50, 0) == pytest.approx(10 * 0.3 / 1e6)  # a bad report never goes negative
    assert (Usage(input_tokens=5, cache_read_tokens=2) + Usage(input_tokens=7, cache_write_tokens=3)) == \
        Usage(input_tokens=12, cache_read_tokens=2, cache_write_tokens=3)


def test_reported_usage_reads_every_wire():
    openai_body = {"usage": {"prompt_tokens": 1200, "completion_tokens": 40,
                             "prompt_tokens_details": {"cached_tokens": 1024}}}
    assert reported_usage(openai_body) == Usage(input_tokens=1200, output_tokens=40, cache_read_tokens=1024)
    anthropic_body = {"usage": {"input_tokens": 20, "output_tokens": 40, "cache_read_input_tokens": 1000,
                                "cache_creation_input_tokens": 300}}
    assert reported_usage(anthropic_body) == Usage(input_tokens=1320, output_tokens=40, cache_read_tokens=1000,
                                                   cache_write_tokens=300)
    bedrock_body = {"usage": {"inputTokens": 20, "outputTokens": 40, "cacheReadInputTokens": 1000,
                              "cacheWriteInputTokens": 0}}
    assert converse_usage(bedrock_body) == Usage(input_tokens=1020, output_tokens=40, cache_read_tokens=1000)


PROJECT = """
models:
  claude:
    provider: anthropic
    base_url: "{base}"
    model: fake-claude
    max_retries: 0
    price: {{input: 3.0, output: 15.0, cache_read: 0.3, cache_write: 3.75}}
cache: {{exact: false}}
"""
SYSTEM = [{"type": "text", "text": "You answer questions about the flywheel repository, briefly and exactly. " * 8,
           "cache_control": {"type": "ephemeral"}}]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from server_support import LiveServer

    from flywheel.server import create_app

    with FakeLLM() as llm:
        llm.add(r"readme", "The README introduces flywheel.")
        root = tmp_path_factory.mktemp("cache_pricing")
        (root / "flywheel.yaml").write_text(PROJECT.format(base=llm.url), encoding="utf-8")
        server = LiveServer(create_app(Project.load(root))).start()
        yield server
        server.stop()


def _trace_cost(live, message_id: str) -> float:
    from flywheel.tracing import get_trace, tracer

    tracer.flush()
    trace = get_trace(live.state.store, message_id.removeprefix("msg_"))
    assert trace is not None
    return float(trace["cost_usd"])


@pytest.mark.parametrize("later", [False, True], ids=["cache-write", "cache-read"])
def test_a_claude_turn_is_priced_with_its_cache_tokens(live, later):
    client = anthropic.Anthropic(base_url=live.url, api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": "what is in the readme?"}]
    if later:
        messages = [*messages, {"role": "assistant", "content": "Let me look."},
                    {"role": "user", "content": "and the readme title?"}]
    msg = client.messages.create(model="claude", max_tokens=200, system=SYSTEM, messages=messages)
    u = msg.usage
    read, write = u.cache_read_input_tokens or 0, u.cache_creation_input_tokens or 0
    assert (read if later else write) > 0 and (write if later else read) == 0
    # the wire keeps Anthropic's meaning: input_tokens is the uncached part
    expected = (u.input_tokens * 3 + read * 0.3 + write * 3.75 + u.output_tokens * 15) / 1e6
    assert _trace_cost(live, msg.id) == pytest.approx(expected)

"""Reasoning tokens end to end: an OpenAI-wire upstream's `completion_tokens_details.reasoning_tokens` (fake_llm's
`Reasoned` reply; the Responses shape's `output_tokens_details.reasoning_tokens` too) land in
`Usage.reasoning_tokens` (part of `output_tokens`), on the `llm` span as `gen_ai.usage.reasoning.output_tokens`,
and come back out of `flywheel serve` read with the official `openai` SDK: chat completions (streamed final usage
chunk too), the Responses API (streamed and stored too) and a batch's output lines and totals. A reply that
reported none has no `completion_tokens_details` on the chat wire (unknown is not 0)."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
from openai.types import Batch
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response

from flywheel.config import ModelAlias, Project
from flywheel.gateway import Gateway
from flywheel.gateway.choices import merge
from flywheel.gateway.providers.base import ProviderResponse, make_usage
from flywheel.gateway.providers.sdk_errors import reported_usage
from flywheel.testing.fake_llm import FakeLLM
from flywheel.testing.fake_llm_wire import Cached, Reasoned, count_tokens
from flywheel.types import ChatRequest, Usage

THINKING = 37  # reasoning tokens the upstream reports for a "why" question
ANSWER = "Because the sky scatters blue light."
PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}", model: fake-model, max_retries: 0}}
cache: {{exact: false}}
retrieval: {{embedder: none}}
server: {{batch_concurrency: 2, online_evaluators: false, embed_worker: false}}
"""
WHY = [{"role": "user", "content": "why is the sky blue?"}]
PLAIN = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        server.add(r"\bwhy\b", Reasoned(ANSWER, THINKING))
        server.add(r"shared prefix", Cached("Noted.", 4))
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, llm):
    from server_support import LiveServer

    from flywheel.server import create_app

    root = tmp_path_factory.mktemp("reasoning_tokens")
    (root / "flywheel.yaml").write_text(PROJECT.format(base=llm.base_url), encoding="utf-8")
    server = LiveServer(create_app(Project.load(root))).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(live):
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)


def test_usage_reads_reasoning_from_either_openai_shape():
    chat = {"usage": {"prompt_tokens": 12, "completion_tokens": 50, "prompt_tokens_details": {"cached_tokens": 8},
                      "completion_tokens_details": {"reasoning_tokens": 30}}}
    assert reported_usage(chat) == Usage(input_tokens=12, output_tokens=50, cache_read_tokens=8, reasoning_tokens=30)
    responses = {"usage": {"input_tokens": 12, "output_tokens": 50, "input_tokens_details": {"cached_tokens": 8},
                           "output_tokens_details": {"reasoning_tokens": 30}}}
    assert reported_usage(responses) == Usage(input_tokens=12, output_tokens=50, cache_read_tokens=8,
                                              reasoning_tokens=30)
    null = {"usage": {"prompt_tokens": 3, "completion_tokens": 4, "completion_tokens_details": None}}
    assert reported_usage(null) == Usage(input_tokens=3, output_tokens=4)
    # a server reporting more reasoning than output: never more than the output it is part of
    over = {"usage": {"prompt_tokens": 3, "completion_tokens": 4, "completion_tokens_details": {"reasoning_tokens": 9}}}
    assert reported_usage(over).reasoning_tokens == 4
    # Anthropic counts thinking inside output_tokens with no separate number
    assert reported_usage({"usage": {"input_tokens": 5, "output_tokens": 40}}).reasoning_tokens == 0
    assert Usage(output_tokens=9, reasoning_tokens=4) + Usage(output_tokens=6, reasoning_tokens=1) == \
        Usage(output_tokens=15, reasoning_tokens=5)


def test_merged_choices_keep_cache_and_reasoning_tokens():
    """A gateway that asks again for the choices a server left out sums every count of the answers' usage."""
    first = ProviderResponse("a", make_usage(10, 20, 6, 0, 12), "m", "stop")
    second = ProviderResponse("b", make_usage(10, 25, 6, 0, 15), "m", "stop")
    assert merge([first, second], 2).usage == Usage(input_tokens=20, output_tokens=45, cache_read_tokens=12,
                                                    reasoning_tokens=27)


def test_fake_llm_reports_reasoning_tokens_only_when_scripted(llm):
    up = openai.OpenAI(base_url=llm.base_url, api_key="x", max_retries=0)
    why = up.chat.completions.create(model="fake-model", messages=WHY)
    assert why.usage.completion_tokens_details.reasoning_tokens == THINKING
    assert why.usage.completion_tokens == count_tokens(ANSWER) + THINKING
    assert up.chat.completions.create(model="fake-model", messages=PLAIN).usage.completion_tokens_details is None


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
def test_gateway_result_and_llm_span_carry_reasoning_tokens(llm, spans, stream):
    gw = Gateway({"r1": ModelAlias(model="fake-model", base_url=llm.base_url, max_retries=0)})
    try:
        request = ChatRequest.of("why is the sky blue?", model="r1")
        if stream:
            s = gw.stream(request)
            assert "".join(c.delta for c in s) == ANSWER
            result = s.result
        else:
            result = gw.chat(request)
    finally:
        gw.close()
    assert result is not None and result.usage.reasoning_tokens == THINKING
    assert result.usage.output_tokens == count_tokens(ANSWER) + THINKING
    (span,) = [s for s in spans if "flywheel.attempt" in s.attributes and s.trace_id == result.trace_id]
    assert span.attributes["gen_ai.usage.reasoning.output_tokens"] == THINKING
    assert span.attributes["gen_ai.usage.output_tokens"] == result.usage.output_tokens


def test_chat_completion_reports_reasoning_tokens_and_span_records_them(live, spans):
    raw = httpx.post(f"{live.url}/v1/chat/completions", timeout=30, json={"model": "gpt", "messages": WHY}).json()
    done = ChatCompletion.model_validate(raw)
    assert done.usage.completion_tokens_details.reasoning_tokens == THINKING
    assert done.usage.completion_tokens == count_tokens(ANSWER) + THINKING
    (span,) = [s for s in spans if "flywheel.attempt" in s.attributes and s.trace_id == raw["flywheel"]["trace_id"]]
    assert span.attributes["gen_ai.usage.reasoning.output_tokens"] == THINKING
    plain = httpx.post(f"{live.url}/v1/chat/completions", timeout=30, json={"model": "gpt", "messages": PLAIN}).json()
    assert "completion_tokens_details" not in plain["usage"]  # none reported: not claimed to be 0


def test_streamed_final_usage_chunk_reports_reasoning_tokens(client):
    chunks = list(client.chat.completions.create(model="gpt", messages=WHY, stream=True,
                                                 stream_options={"include_usage": True}))
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk.model_dump())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens_details.reasoning_tokens == THINKING
    assert usage.completion_tokens == count_tokens(ANSWER) + THINKING


def test_responses_report_reasoning_tokens_streamed_and_stored(client):
    done = client.responses.create(model="gpt", input="why is the sky blue?")
    Response.model_validate(done.model_dump())
    assert done.output_text == ANSWER and done.usage.output_tokens_details.reasoning_tokens == THINKING
    assert done.usage.output_tokens == count_tokens(ANSWER) + THINKING
    assert client.responses.retrieve(done.id).usage.output_tokens_details.reasoning_tokens == THINKING
    events = list(client.responses.create(model="gpt", input="why is the sky blue?", stream=True))
    final = next(e for e in events if e.type == "response.completed").response
    assert final.usage.output_tokens_details.reasoning_tokens == THINKING
    plain = client.responses.create(model="gpt", input="hello there")
    assert plain.usage.output_tokens_details.reasoning_tokens == 0  # the Responses shape always has the field


def _wait_final(c: openai.OpenAI, batch_id: str) -> Batch:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # readiness poll with a deadline, not a timed assertion
        batch = c.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} did not finish")


def test_batch_output_lines_and_totals_carry_reasoning_tokens(client):
    texts = ["why is the sky blue?", "why do cats purr?", "hello there"]
    lines = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "gpt", "messages": [{"role": "user", "content": t}]}} for i, t in enumerate(texts)]
    f = client.files.create(file=("in.jsonl", "\n".join(json.dumps(x) for x in lines).encode()), purpose="batch")
    done = _wait_final(client, client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                                     completion_window="24h").id)
    assert done.status == "completed" and done.request_counts.completed == 3, done
    out = {x["custom_id"]: x for x in map(json.loads, client.files.content(done.output_file_id).text.splitlines())}
    bodies = [ChatCompletion.model_validate(out[f"r{i}"]["response"]["body"]) for i in range(3)]
    details = [b.usage.completion_tokens_details for b in bodies]
    assert [d.reasoning_tokens if d else None for d in details] == [THINKING, THINKING, None]
    assert done.usage is not None and done.usage.output_tokens_details.reasoning_tokens == 2 * THINKING
    assert done.usage.output_tokens == sum(b.usage.completion_tokens for b in bodies)

"""flywheel against a real llama.cpp server (`llama-cpp-python[server]`) serving the tiny random-weights GGUF of
`flywheel.testing.tiny_gguf`: the gateway's `openai_compat` provider (plain, streamed, usage, log-probabilities),
`flywheel serve` in front of it for the official openai SDK, and its `/v1/embeddings` as the retrieval embedder.

The server (tests/llamacpp_support.py) runs from FLYWHEEL_LLAMA_CPP_PYTHON or this interpreter; without
llama-cpp-python the module skips, and fails under FLYWHEEL_REQUIRE_SERVICES=1. The model's words are noise, so every expectation is
the server's own answer to the same request, asked directly with the openai SDK.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from llamacpp_support import direct_client, llama_server
from server_support import openai_client, serving

QUESTION = [{"role": "user", "content": "How do refunds work? 退款怎么办理？"}]


@pytest.fixture(scope="module")
def llama() -> Iterator[str]:
    """Base URL (…/v1) of a llama.cpp server with the tiny model as `tiny` (chat), `tiny-embed` (embeddings, mean
    pooling), `tiny-tokens` (embeddings without pooling) and `tiny-tools` (forced tool calls)."""
    with llama_server() as base:
        yield base


_direct = direct_client


PROJECT = """
models:
  local: {{provider: openai_compat, base_url: "{base}", model: tiny, max_retries: 0, timeout: 120}}
  local-short: {{provider: openai_compat, base_url: "{base}", model: tiny, max_retries: 0, timeout: 120,
                params: {{max_tokens: 8, temperature: 0}}}}
  local-tools: {{provider: openai_compat, base_url: "{base}", model: tiny-tools, max_retries: 0, timeout: 120}}
  local-embed: {{provider: openai_compat, base_url: "{base}", model: tiny-embed, timeout: 120,
                params: {{languages: [en, zh]}}}}
retrieval: {{embedder: local-embed}}
cache: {{exact: false}}
apps:
  docs: {{kind: docs_qa, model: local}}
"""


@pytest.fixture(scope="module")
def served(llama: str, tmp_path_factory: pytest.TempPathFactory):
    docs = {"refunds.md": "# Refunds\n\nRefunds are paid back to the card within five business days.\n",
            "退款.md": "# 退款\n\n退款会在五个工作日内退回原银行卡。\n"}
    with serving(tmp_path_factory.mktemp("llamacpp"), PROJECT.format(base=llama), docs) as server:
        yield server


def test_the_sdk_through_serve_gets_the_servers_own_answer_plain_and_streamed(llama, served):
    ask = {"messages": QUESTION, "max_tokens": 12, "temperature": 0, "seed": 0}
    direct = _direct(llama).chat.completions.create(model="tiny", **ask)
    client = openai_client(served)
    plain = client.chat.completions.create(model="local", **ask)
    assert plain.choices[0].message.content == direct.choices[0].message.content
    assert plain.choices[0].finish_reason == direct.choices[0].finish_reason
    assert plain.usage.prompt_tokens == direct.usage.prompt_tokens
    assert plain.usage.completion_tokens == direct.usage.completion_tokens

    chunks = list(client.chat.completions.create(model="local", stream=True,
                                                 stream_options={"include_usage": True}, **ask))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == direct.choices[0].message.content
    # the usage chunk: the upstream's own numbers when its stream reports them; null (never zeros) when not —
    # llama-cpp-python's server ignores stream_options.include_usage
    upstream = list(_direct(llama).chat.completions.create(model="tiny", stream=True,
                                                           stream_options={"include_usage": True}, **ask))
    reported = next((c.usage for c in upstream if c.usage is not None), None)
    last = chunks[-1]
    assert last.choices == [] and "usage" in last.model_fields_set
    if reported is None:
        assert last.usage is None
    else:
        assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (reported.prompt_tokens,
                                                                            reported.completion_tokens)


def test_a_stream_without_upstream_usage_is_marked_unreported_in_the_trace(llama, served):
    from flywheel.tracing import get_trace, tracer

    ask = {"messages": QUESTION, "max_tokens": 6, "temperature": 0}
    upstream = list(_direct(llama).chat.completions.create(model="tiny", stream=True,
                                                           stream_options={"include_usage": True}, **ask))
    if any(c.usage is not None for c in upstream):
        pytest.skip("this llama-cpp-python reports usage in streams")  # the assertion above covers it then
    chunks = list(openai_client(served).chat.completions.create(model="local", stream=True, **ask))
    tracer.flush()
    trace = get_trace(served.state.store, chunks[0].id.removeprefix("chatcmpl-"))
    assert trace is not None
    tops = [s for s in trace["spans"][0]["children"] if s["kind"] == "llm"]
    assert tops and tops[0]["attributes"]["flywheel.usage.reported"] is False


def test_log_probabilities_are_relayed_as_the_server_gave_them(llama, served):
    ask = {"messages": QUESTION, "max_tokens": 3, "temperature": 0, "logprobs": True, "top_logprobs": 3}
    direct = _direct(llama).chat.completions.create(model="tiny", **ask)
    relayed = openai_client(served).chat.completions.create(model="local", **ask)
    want = [(t.token, round(t.logprob, 4), [a.token for a in t.top_logprobs])
            for t in direct.choices[0].logprobs.content]
    got = [(t.token, round(t.logprob, 4), [a.token for a in t.top_logprobs])
           for t in relayed.choices[0].logprobs.content]
    assert got == want and len(got) == direct.usage.completion_tokens


def test_the_trace_records_the_calls_tokens(served):
    from flywheel.tracing import get_trace, tracer

    reply = openai_client(served).chat.completions.create(model="local", messages=QUESTION, max_tokens=5,
                                                          temperature=0)
    tracer.flush()
    trace = get_trace(served.state.store, reply.id.removeprefix("chatcmpl-"))
    assert trace is not None
    assert (trace["input_tokens"], trace["output_tokens"]) == (reply.usage.prompt_tokens,
                                                               reply.usage.completion_tokens)
    def walk(spans):
        for span in spans:
            yield span
            yield from walk(span.get("children") or [])

    attempts = [s for s in walk(trace["spans"]) if s["kind"] == "llm" and s["attributes"].get("gen_ai.request.model")]
    assert {s["attributes"]["gen_ai.request.model"] for s in attempts} == {"tiny"}, attempts


def test_the_embedder_stores_the_servers_vectors_for_both_languages(llama, served):
    from sqlalchemy import select

    from flywheel.retrieval.embed import embedding_text
    from flywheel.store.schema_retrieval import chunks, embeddings

    with served.state.store.engine.connect() as conn:
        rows = conn.execute(select(chunks.c.title, chunks.c.location, chunks.c.text, chunks.c.lang,
                                   embeddings.c.vector, embeddings.c.dim)
                            .join(embeddings, embeddings.c.hash == chunks.c.embed_hash)
                            .where(embeddings.c.model == "tiny-embed")).all()
    assert {r.lang for r in rows} == {"en", "zh"}
    direct = _direct(llama).embeddings.create(model="tiny-embed", input=[embedding_text(r.title, r.location, r.text) for r in rows]).data
    for row, want in zip(rows, direct, strict=True):
        stored = np.frombuffer(row.vector, dtype=np.float32) if isinstance(row.vector, bytes) else np.array(row.vector)
        assert row.dim == len(want.embedding) == len(stored)
        assert float(stored @ np.array(want.embedding)) / (np.linalg.norm(stored) * np.linalg.norm(want.embedding)) > 0.9999


def test_a_docs_app_answers_over_the_llama_cpp_model_with_both_sides_of_search(served):
    r = httpx.post(f"{served.url}/v1/apps/docs", json={"input": "退款多久能到账？"}, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert any("退款" in (s.get("text") or s.get("snippet") or "") for s in body.get("sources", [])), body


def test_a_server_that_does_not_pool_gets_a_clear_error_not_a_numpy_one(llama):
    from flywheel.config import ModelAlias
    from flywheel.errors import UserError
    from flywheel.retrieval.embedders_remote import OpenAICompatEmbedder

    alias = ModelAlias(provider="openai_compat", base_url=llama, model="tiny-tokens", max_retries=0)
    with pytest.raises(UserError, match="one per token") as caught:
        OpenAICompatEmbedder("tokens", alias).embed(["Refunds take five days.", "退款需要五天。"])
    assert "--pooling mean" in caught.value.hint


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "北京"]}},
                   "required": ["city"]}}}]


def _calls(deltas: list) -> list[tuple[str, str]]:
    """(name, arguments) of each tool call a client assembles from stream deltas the OpenAI way: the name is
    set once, the arguments are concatenated."""
    out: dict[int, list[str]] = {}
    for d in deltas:
        for piece in d.tool_calls or []:
            name = out.setdefault(piece.index, ["", ""])[0]
            if piece.function and piece.function.name and not name:
                out[piece.index][0] = piece.function.name
            if piece.function and piece.function.arguments:
                out[piece.index][1] += piece.function.arguments
    return [(name, args) for name, args in out.values()]


def test_forced_tool_calls_reach_the_sdk_as_llama_cpp_wrote_them_plain_and_streamed(llama, served):
    ask = {"messages": [{"role": "user", "content": "北京天气怎么样？"}], "tools": TOOLS, "max_tokens": 40,
           "tool_choice": {"type": "function", "function": {"name": "get_weather"}}, "temperature": 0}
    direct = _direct(llama).chat.completions.create(model="tiny-tools", **ask).choices[0]
    want = [(c.function.name, c.function.arguments) for c in direct.message.tool_calls]
    assert want and want[0][0] == "get_weather"

    client = openai_client(served)
    plain = client.chat.completions.create(model="local-tools", **ask).choices[0]
    assert [(c.function.name, c.function.arguments) for c in plain.message.tool_calls] == want
    assert plain.finish_reason == "tool_calls"

    chunks = list(client.chat.completions.create(model="local-tools", stream=True, **ask))
    assert _calls([c.choices[0].delta for c in chunks if c.choices]) == want
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_flywheel_chat_says_when_the_server_reported_no_tokens(llama, served):
    from click.testing import CliRunner

    from flywheel.cli import main

    upstream = list(_direct(llama).chat.completions.create(
        model="tiny", messages=QUESTION, max_tokens=8, temperature=0, stream=True,
        stream_options={"include_usage": True}))
    streamed_usage = any(c.usage is not None for c in upstream)
    root = str(served.state.project.root)
    plain = CliRunner().invoke(main, ["--project", root, "chat", "-m", "local-short", "退款怎么办理？"])
    streamed = CliRunner().invoke(main, ["--project", root, "chat", "-m", "local-short", "--stream", "退款怎么办理？"])
    assert plain.exit_code == 0 and streamed.exit_code == 0, (plain.output, streamed.output)
    assert " in / " in plain.output  # llama.cpp reports usage on plain answers
    assert ("tokens not reported by the server" in streamed.output) is not streamed_usage, streamed.output

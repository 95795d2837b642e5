"""What clients beyond the basic SDK calls send to `flywheel serve`, reproduced at the wire with the official
`openai` / `anthropic` SDKs and httpx (no node, LangChain or LlamaIndex needed): LangChain's token-id embeddings,
LlamaIndex's legacy /v1/completions, `logprobs`, `modalities`, Anthropic's `messages.parse` (`output_config`),
`messages.count_tokens`, top-level `cache_control`, and the Anthropic SDK's `models.list`. Upstream is fake_llm."""

from __future__ import annotations

import base64
import struct

import anthropic
import httpx
import openai
import pytest
from pydantic import BaseModel

from flywheel.config import Project
from flywheel.testing.fake_llm import FakeLLM

PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}
  claude: {{provider: anthropic, base_url: "{base}", model: fake-claude, max_retries: 0}}
  emb: {{provider: openai_compat, base_url: "{base}/v1", model: fake-embedding}}
retrieval: {{embedder: emb}}
cache: {{exact: false}}
"""
PERSON = '{"name": "Ada", "age": 36}'


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        server.add(r"extract the person", PERSON)
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, llm):
    from server_support import LiveServer

    from flywheel.server import create_app

    root = tmp_path_factory.mktemp("clients")
    (root / "flywheel.yaml").write_text(PROJECT.format(base=llm.url), encoding="utf-8")
    server = LiveServer(create_app(Project.load(root))).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def oai(live):
    return openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def ant(live):
    return anthropic.Anthropic(base_url=live.url, api_key="unused", max_retries=0)


def _last(llm: FakeLLM, path: str) -> dict:
    return [r for r in llm.requests if r["path"].endswith(path)][-1]


# ----------------------------------------------------------------------------------------------- embeddings


@pytest.mark.parametrize("token_ids", [[[15339, 1917]], [15339, 1917]])
def test_embeddings_of_token_ids_are_a_400_that_names_the_langchain_fix(live, token_ids):
    # LangChain's OpenAIEmbeddings sends tiktoken ids unless check_embedding_ctx_length=False
    r = httpx.post(live.url + "/v1/embeddings", json={"model": "emb", "input": token_ids})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "input" and err["code"] == "unsupported_value"
    assert "token ids" in err["message"] and "check_embedding_ctx_length=False" in err["message"]


def test_embeddings_sdk_default_base64_matches_float_and_dimensions_mismatch_says_what_to_send(oai):
    floats = oai.embeddings.create(model="emb", input="hello world", encoding_format="float").data[0].embedding
    raw = oai.embeddings.with_raw_response.create(model="emb", input="hello world", encoding_format="base64")
    packed = raw.http_response.json()["data"][0]["embedding"]
    decoded = struct.unpack(f"<{len(floats)}f", base64.b64decode(packed))
    assert decoded == pytest.approx(floats, abs=1e-6)
    assert len(oai.embeddings.create(model="emb", input="hello world").data[0].embedding) == len(floats)
    with pytest.raises(openai.BadRequestError) as info:
        oai.embeddings.create(model="emb", input="hello", dimensions=8)
    assert info.value.body["param"] == "dimensions"
    assert f"send {len(floats)}" in info.value.body["message"]


# ------------------------------------------------------------------------------------- chat completion extras


def test_logprobs_are_relayed_not_answered_with_null(oai):  # more in test_logprobs_relay.py
    scored = oai.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}], logprobs=True,
                                         top_logprobs=2)
    tokens = scored.choices[0].logprobs.content
    assert "".join(t.token for t in tokens) == scored.choices[0].message.content
    assert all(len(t.top_logprobs) == 2 for t in tokens)
    done = oai.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}], logprobs=False)
    assert done.choices[0].message.content and done.choices[0].logprobs is None


def test_text_modality_and_verbosity_are_accepted_audio_is_refused(oai):
    msgs = [{"role": "user", "content": "hi"}]
    assert oai.chat.completions.create(model="gpt", messages=msgs, modalities=["text"],
                                       verbosity="low").choices[0].message.content
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model="gpt", messages=msgs, modalities=["text", "audio"])
    assert info.value.body["param"] == "modalities"


def test_chat_parse_with_a_pydantic_model_reaches_an_anthropic_alias_as_output_config(oai, llm):
    done = oai.chat.completions.parse(model="claude", response_format=Person,
                                      messages=[{"role": "user", "content": "extract the person"}])
    assert done.choices[0].message.parsed == Person(name="Ada", age=36)
    fmt = _last(llm, "/v1/messages")["output_config"]["format"]
    assert fmt["type"] == "json_schema" and set(fmt["schema"]["properties"]) == {"name", "age"}


# -------------------------------------------------------------------------------- legacy /v1/completions


def test_legacy_completions_answer_plain_and_streamed(oai):
    # LlamaIndex's OpenAILike (is_chat_model=False by default) and other completion-model clients
    done = oai.completions.create(model="gpt", prompt="extract the person", max_tokens=50)
    assert done.object == "text_completion" and done.choices[0].text == PERSON
    assert done.choices[0].finish_reason == "stop" and done.usage.completion_tokens > 0
    chunks = list(oai.completions.create(model="gpt", prompt=["extract the person"], stream=True,
                                         stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == PERSON
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == done.usage.completion_tokens


@pytest.mark.parametrize(("extra", "param"), [({"prompt": [[1, 2]]}, "prompt"), ({"prompt": ["a", "b"], "stream": True}, "prompt"),
                                              ({"prompt": "x", "echo": True}, "echo")])
def test_legacy_completions_refuse_what_they_cannot_answer_by_name(live, extra, param):
    r = httpx.post(live.url + "/v1/completions", json={"model": "gpt", **extra})
    assert r.status_code == 400 and r.json()["error"]["param"] == param


# ------------------------------------------------------------------------------------------ anthropic extras


def test_messages_parse_sends_output_config_as_the_gateways_response_format(ant, llm):
    msgs = [{"role": "user", "content": "extract the person"}]
    done = ant.messages.parse(model="gpt", max_tokens=100, messages=msgs, output_format=Person)
    assert done.parsed_output == Person(name="Ada", age=36)
    sent = _last(llm, "/chat/completions")["response_format"]
    assert sent["type"] == "json_schema" and set(sent["json_schema"]["schema"]["properties"]) == {"name", "age"}
    done = ant.messages.parse(model="claude", max_tokens=100, messages=msgs, output_format=Person,
                              output_config={"effort": "low"})
    assert done.parsed_output == Person(name="Ada", age=36)
    assert _last(llm, "/v1/messages")["output_config"]["format"]["type"] == "json_schema"


def test_top_level_cache_control_is_accepted_and_a_bad_output_format_is_a_400(ant):
    msgs = [{"role": "user", "content": "hi"}]
    done = ant.messages.create(model="claude", max_tokens=50, messages=msgs, cache_control={"type": "ephemeral"})
    assert done.content[0].text
    with pytest.raises(anthropic.BadRequestError) as info:
        ant.messages.create(model="claude", max_tokens=50, messages=msgs,
                            output_config={"format": {"type": "xml"}})
    assert "output_config.format" in info.value.body["error"]["message"]


def test_count_tokens_estimates_system_messages_and_tools(ant):
    msgs = [{"role": "user", "content": "What is the weather in Paris today?"}]
    plain = ant.messages.count_tokens(model="claude", messages=msgs).input_tokens
    assert plain == (len(msgs[0]["content"]) + 3) // 4
    more = ant.messages.count_tokens(model="gpt", system="You are terse.", messages=msgs, tools=[
        {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}])
    assert more.input_tokens > plain + 3
    with pytest.raises(anthropic.NotFoundError):
        ant.messages.count_tokens(model="nope", messages=msgs)


def test_anthropic_sdk_extras_that_already_worked(ant, llm):
    system = [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}]
    with ant.messages.stream(model="claude", max_tokens=50, system=system, stop_sequences=["END"],
                             messages=[{"role": "user", "content": "extract the person"}],
                             extra_body={"temperature": 0.3}) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == PERSON and final.content[0].text == PERSON and final.stop_reason == "end_turn"
    sent = _last(llm, "/v1/messages")
    assert sent["temperature"] == 0.3 and sent["stop_sequences"] == ["END"] and "Be terse." in str(sent["system"])
    with pytest.raises(anthropic.BadRequestError) as info:
        ant.messages.create(model="gpt", max_tokens=50, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]}])
    assert "image" in info.value.body["error"]["message"]


def test_models_list_carries_anthropic_model_fields(ant, oai):
    models = list(ant.models.list())
    assert {m.id for m in models} >= {"gpt", "claude", "emb"}
    assert all(m.type == "model" and m.display_name == m.id and m.created_at.year > 2000 for m in models)
    assert [m.id for m in oai.models.list()] == [m.id for m in models]


def test_thinking_blocks_sent_back_in_history_are_dropped_not_refused(ant, llm):
    # extended-thinking clients send the assistant's earlier thinking blocks back with the conversation
    done = ant.messages.create(model="gpt", max_tokens=50, messages=[
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "sig"},
                                          {"type": "redacted_thinking", "data": "opaque"},
                                          {"type": "text", "text": "an earlier answer"}]},
        {"role": "user", "content": "extract the person"}])
    assert done.content[0].text == PERSON
    sent = _last(llm, "/chat/completions")["messages"]
    assert sent[1] == {"role": "assistant", "content": "an earlier answer"}
    assert "hmm" not in str(sent) and "opaque" not in str(sent)


def test_anthropic_defined_tools_are_refused_by_type_not_turned_into_functions(ant):
    with pytest.raises(anthropic.BadRequestError) as info:  # to a non-Anthropic alias (Anthropic ones relay it)
        ant.messages.create(model="gpt", max_tokens=50, messages=[{"role": "user", "content": "hi"}],
                            tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert "web_search_20250305" in info.value.body["error"]["message"]
    done = ant.messages.create(model="claude", max_tokens=50, messages=[{"role": "user", "content": "hi"}],
                               tools=[{"type": "custom", "name": "lookup", "input_schema": {"type": "object"}}])
    assert done.stop_reason == "end_turn"


def test_wrong_method_names_the_allowed_one_and_a_gzip_body_is_a_415(live):
    got = httpx.get(live.url + "/v1/chat/completions")
    assert got.status_code == 405
    assert got.json()["error"]["message"] == "GET is not allowed on /v1/chat/completions; use POST"
    import gzip
    body = gzip.compress(b'{"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}')
    for path in ("/v1/chat/completions", "/v1/review/queues"):  # read by the route itself / by FastAPI
        sent = httpx.post(live.url + path, content=body,
                          headers={"content-type": "application/json", "content-encoding": "gzip"})
        assert sent.status_code == 415, (path, sent.text)
        assert "content-encoding: gzip" in sent.json()["error"]["message"]
    assert httpx.post(live.url + "/completions", json={}).json()["error"]["message"].endswith(live.url + "/v1")

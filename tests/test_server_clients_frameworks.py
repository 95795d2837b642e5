"""Third-party clients against `flywheel serve`, run for real when installed (each group skips when its client is
absent; none is a dependency of flywheel): LangChain (`langchain-openai`), LlamaIndex (`llama-index-llms-openai-like`,
`llama-index-embeddings-openai`), LiteLLM as a client, the Vercel AI SDK in node (`FLYWHEEL_AI_SDK_DIR` names a
folder where `npm install ai @ai-sdk/openai zod` was run; tests/clients/vercel_ai.mjs), and the curl lines of
docs/server.md, run as written there (host and port swapped for the test server's). The wire-level twins of these
cases, which need no third-party client, are in tests/test_server_clients_sdk_extras.py. Upstream is fake_llm,
behind an OpenAI-compatible alias (`strong`) and an Anthropic one (`claude`)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import openai
import pytest
from pydantic import BaseModel

from flywheel.testing.fake_llm import FakeLLM, ToolCall

PROJECT = """
models:
  strong: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}
  claude: {{provider: anthropic, base_url: "{base}", model: fake-claude, max_retries: 0}}
  emb: {{provider: openai_compat, base_url: "{base}/v1", model: fake-embedding}}
retrieval: {{embedder: emb}}
cache: {{exact: false}}
apps:
  docs_qa: {{kind: docs_qa, model: strong}}
  support: {{kind: chat, model: strong}}
"""
DOCS = {"pin.md": "# Pinning\n\nSet `version:` on the model alias in flywheel.yaml to pin a model version.\n"}
ALIASES = ["strong", "claude"]
ASK = "What is the weather in Paris?"
DOC_PAGES = [Path(__file__).resolve().parents[1] / "docs" / page for page in ("server.md", "zh/server.md")]


class Person(BaseModel):
    name: str
    age: int


def _person(body: dict):
    """The person as JSON text, or as a call of the first tool when the request offers tools (structured output
    done with a forced function call: LangChain's `function_calling`, LlamaIndex's `structured_predict`)."""
    tools = body.get("tools") or []
    if tools:
        spec = tools[0].get("function", tools[0])
        return ToolCall(spec["name"], {"name": "Ada", "age": 36}, id="call_p1")
    return '{"name": "Ada", "age": 36}'


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        server.add(r"weather in Paris", ToolCall("get_weather", {"city": "Paris"}, id="call_w1"))
        server.add(r'"temp": ?21', "It is 21 degrees in Paris.")
        server.add(r"extract the person", _person)
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, llm):
    from server_support import serve_project

    server = serve_project(tmp_path_factory.mktemp("frameworks"), PROJECT.format(base=llm.url), docs=DOCS)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def v1(live) -> str:
    return live.url + "/v1"


def _server_vector(v1: str, text: str) -> list[float]:
    client = openai.OpenAI(base_url=v1, api_key="unused", max_retries=0)
    return client.embeddings.create(model="emb", input=text, encoding_format="float").data[0].embedding


def get_weather(city: str) -> str:
    """Current weather in a city"""
    return json.dumps({"temp": 21, "city": city})


# ------------------------------------------------------------------------------------------------------ LangChain


@pytest.fixture(scope="module")
def lc():
    return pytest.importorskip("langchain_openai", reason="langchain-openai not installed")


def _summed(chunks: list):
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.parametrize("responses_api", [False, True], ids=["chat", "responses"])
def test_langchain_chat_invoke_and_stream_with_usage(lc, v1, alias, responses_api):
    chat = lc.ChatOpenAI(model=alias, base_url=v1, api_key="unused", max_retries=0, stream_usage=True,
                         use_responses_api=responses_api)
    answer = chat.invoke("hello there")
    assert answer.text == "You said: hello there"
    usage = answer.usage_metadata
    assert usage["output_tokens"] > 0 and usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    streamed = _summed(list(chat.stream("你好，世界")))
    assert streamed.text == "You said: 你好，世界"
    assert streamed.usage_metadata["output_tokens"] > 0  # the usage chunk reached the client


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.parametrize("responses_api", [False, True], ids=["chat", "responses"])
def test_langchain_bind_tools_round_trip_plain_and_streamed(lc, v1, alias, responses_api):
    from langchain_core.messages import HumanMessage
    from langchain_core.tools import tool

    weather = tool(get_weather)
    chat = lc.ChatOpenAI(model=alias, base_url=v1, api_key="unused", max_retries=0, use_responses_api=responses_api)
    bound = chat.bind_tools([weather])
    asked = bound.invoke(ASK)
    assert [(c["name"], c["args"]) for c in asked.tool_calls] == [("get_weather", {"city": "Paris"})]
    result = weather.invoke(asked.tool_calls[0])
    final = bound.invoke([HumanMessage(ASK), asked, result])
    assert final.text == "It is 21 degrees in Paris."
    streamed = _summed(list(bound.stream(ASK)))
    assert [c["args"] for c in streamed.tool_calls] == [{"city": "Paris"}]


@pytest.mark.parametrize("alias", [*ALIASES, "app:support"])
@pytest.mark.parametrize("method", ["json_schema", "json_mode", "function_calling"])
def test_langchain_with_structured_output(lc, v1, llm, alias, method):
    chat = lc.ChatOpenAI(model=alias, base_url=v1, api_key="unused", max_retries=0)
    structured = chat.with_structured_output(Person, method=method)
    if alias.startswith("app:") and method == "function_calling":
        with pytest.raises(openai.BadRequestError, match="does not call tools"):  # said plainly, not a None
            structured.invoke("extract the person: Ada, 36")
        return
    assert structured.invoke("extract the person: Ada, 36") == Person(name="Ada", age=36)
    if method == "json_schema" and not alias.startswith("app:"):
        sent = llm.requests[-1]
        assert "json_schema" in json.dumps(sent)  # the schema reached the upstream (output_config for claude)


def test_langchain_async_invoke_and_stream_in_one_loop(lc, v1):
    # LangChain caches its async HTTP client per event loop: one asyncio.run for all async calls
    chat = lc.ChatOpenAI(model="claude", base_url=v1, api_key="unused", max_retries=0)

    async def both():
        answer = await chat.ainvoke("hello")
        pieces = [chunk.text async for chunk in chat.astream("again")]
        return answer.text, "".join(pieces)

    assert asyncio.run(both()) == ("You said: hello", "You said: again")


def test_langchain_embeddings_without_the_token_check_match_the_server_vectors(lc, v1):
    emb = lc.OpenAIEmbeddings(model="default", base_url=v1, api_key="unused", check_embedding_ctx_length=False,
                              chunk_size=2)  # three texts: two requests
    documents = emb.embed_documents(["hello world", "你好，世界", "third"])
    assert len(documents) == 3
    assert documents[0] == pytest.approx(_server_vector(v1, "hello world"), abs=1e-6)
    assert emb.embed_query("你好，世界") == pytest.approx(documents[1], abs=1e-6)


def test_langchain_embeddings_default_token_ids_get_a_400_that_names_the_switch(lc, v1, monkeypatch):
    # Its default tokenizes with tiktoken and sends token ids; cl100k_base downloads on first use, so a small
    # byte-level encoding stands in for it here: what goes over the wire has the same shape.
    import tiktoken

    byte_level = tiktoken.Encoding(name="bytes", pat_str=r"\S+|\s+", special_tokens={},
                                   mergeable_ranks={bytes([i]): i for i in range(256)})
    monkeypatch.setattr(tiktoken, "encoding_for_model", lambda name: byte_level)
    emb = lc.OpenAIEmbeddings(model="default", base_url=v1, api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        emb.embed_documents(["hello world"])
    assert info.value.body["param"] == "input"
    assert "check_embedding_ctx_length=False" in info.value.body["message"]


def test_langchain_completion_model_class_invoke_stream_and_several_prompts(lc, v1):
    legacy = lc.OpenAI(model="strong", base_url=v1, api_key="unused", max_retries=0)  # POST /v1/completions
    assert legacy.invoke("hello") == "You said: hello"
    assert "".join(legacy.stream("你好")) == "You said: 你好"
    # batch / generate send several prompts in one request: each is answered, in order
    assert legacy.batch(["one", "two", "three"]) == ["You said: one", "You said: two", "You said: three"]
    both = legacy.generate(["alpha", "beta"])
    assert [g[0].text for g in both.generations] == ["You said: alpha", "You said: beta"]


def test_several_legacy_prompts_number_their_choices_in_openai_order_and_sum_usage(v1):
    client = openai.OpenAI(base_url=v1, api_key="unused", max_retries=0)
    one = client.completions.create(model="strong", prompt="alpha", n=2)
    both = client.completions.create(model="strong", prompt=["alpha", "beta"], n=2)
    assert [(c.index, c.text) for c in both.choices] == [
        (0, "You said: alpha"), (1, "You said: alpha"), (2, "You said: beta"), (3, "You said: beta")]
    assert both.usage.prompt_tokens == 2 * one.usage.prompt_tokens
    assert len(both.model_extra["flywheel"]["trace_ids"]) == 2
    from_app = client.completions.create(model="app:support", prompt=["alpha", "你好"])
    assert [c.text for c in from_app.choices] == ["You said: alpha", "You said: 你好"]
    with pytest.raises(openai.BadRequestError, match="streamed") as info:
        client.completions.create(model="strong", prompt=["alpha", "beta"], stream=True)
    assert info.value.body["param"] == "prompt"
    with pytest.raises(openai.BadRequestError, match="token ids"):
        client.completions.create(model="strong", prompt=[[1, 2, 3]])


# ----------------------------------------------------------------------------------------------------- LlamaIndex


@pytest.fixture(scope="module")
def li():
    return pytest.importorskip("llama_index.llms.openai_like", reason="llama-index-llms-openai-like not installed")


def _openai_like(li, v1: str, alias: str, *, chat_model: bool = True):
    return li.OpenAILike(model=alias, api_base=v1, api_key="unused", max_retries=0, context_window=8000,
                         is_chat_model=chat_model, is_function_calling_model=True)


@pytest.mark.parametrize("alias", ALIASES)
def test_llamaindex_chat_model_chat_and_complete_plain_and_streamed(li, v1, alias):
    from llama_index.core.llms import ChatMessage

    model = _openai_like(li, v1, alias)
    said = [ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content="hello")]
    assert model.chat(said).message.content == "You said: hello"
    assert "".join(r.delta for r in model.stream_chat(said)) == "You said: hello"
    assert model.complete("你好").text == "You said: 你好"
    assert "".join(r.delta for r in model.stream_complete("你好")) == "You said: 你好"


@pytest.mark.parametrize("alias", ALIASES)
def test_llamaindex_default_is_the_legacy_completions_route(li, v1, llm, alias):
    model = _openai_like(li, v1, alias, chat_model=False)
    assert model.complete("hello").text == "You said: hello"
    assert "".join(r.delta for r in model.stream_complete("hello")) == "You said: hello"


@pytest.mark.parametrize("alias", ALIASES)
def test_llamaindex_tools_structured_output_and_agent(li, v1, alias):
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.prompts import PromptTemplate
    from llama_index.core.tools import FunctionTool

    model = _openai_like(li, v1, alias)
    weather = FunctionTool.from_defaults(fn=get_weather)
    chosen = model.get_tool_calls_from_response(model.chat_with_tools([weather], user_msg=ASK))
    assert [(c.tool_name, c.tool_kwargs) for c in chosen] == [("get_weather", {"city": "Paris"})]
    assert json.loads(str(model.predict_and_call([weather], user_msg=ASK))) == {"temp": 21, "city": "Paris"}
    assert model.structured_predict(Person, PromptTemplate("extract the person: {who}"), who="Ada, 36") == \
        Person(name="Ada", age=36)
    agent = FunctionAgent(tools=[weather], llm=model, system_prompt="You answer weather questions.")

    async def in_one_loop():  # the async client is bound to the loop it was made in
        from llama_index.core.llms import ChatMessage

        said = [ChatMessage(role="user", content="hello")]
        plain = (await model.achat(said)).message.content
        streamed = "".join([r.delta async for r in await model.astream_chat(said)])
        return plain, streamed, str(await agent.run(ASK))

    assert asyncio.run(in_one_loop()) == ("You said: hello", "You said: hello", "It is 21 degrees in Paris.")


def test_llamaindex_openai_embedding_by_model_name(v1):
    embeddings = pytest.importorskip("llama_index.embeddings.openai", reason="llama-index-embeddings-openai absent")
    emb = embeddings.OpenAIEmbedding(model_name="emb", api_base=v1, api_key="unused", max_retries=0)
    batch = emb.get_text_embedding_batch(["hello world", "你好，世界"])
    assert batch[0] == pytest.approx(_server_vector(v1, "hello world"), abs=1e-6)
    assert asyncio.run(emb.aget_query_embedding("你好，世界")) == pytest.approx(batch[1], abs=1e-6)
    # its default model name is OpenAI's: the 404 says which names this server answers to
    with pytest.raises(openai.NotFoundError, match="send model `emb` or `default`"):
        embeddings.OpenAIEmbedding(api_base=v1, api_key="unused", max_retries=0).get_query_embedding("hi")


# -------------------------------------------------------------------------------------------- LiteLLM (a client)


@pytest.fixture(scope="module")
def litellm():
    with pytest.MonkeyPatch.context() as env:  # read when litellm is imported: else it downloads its price list
        env.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        yield pytest.importorskip("litellm", reason="litellm not installed")


@pytest.mark.parametrize("alias", [*ALIASES, "app:support"])
def test_litellm_completion_plain_and_streamed_with_usage(litellm, v1, alias):
    said = [{"role": "user", "content": "hello"}]
    plain = litellm.completion(model=f"openai/{alias}", api_base=v1, api_key="unused", messages=said)
    assert plain.choices[0].message.content == "You said: hello"
    chunks = list(litellm.completion(model=f"openai/{alias}", api_base=v1, api_key="unused", messages=said,
                                     stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "You said: hello"
    assert chunks[-1].usage.completion_tokens == 4


@pytest.mark.parametrize("alias", ALIASES)
def test_litellm_tools_structured_output_and_embedding(litellm, v1, alias):
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    common = {"model": f"openai/{alias}", "api_base": v1, "api_key": "unused"}
    asked = litellm.completion(messages=[{"role": "user", "content": ASK}], tools=tools, **common)
    call = asked.choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    done = litellm.completion(tools=tools, **common, messages=[
        {"role": "user", "content": ASK}, asked.choices[0].message.model_dump(),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 21}'}])
    assert done.choices[0].message.content == "It is 21 degrees in Paris."
    parsed = litellm.completion(messages=[{"role": "user", "content": "extract the person: Ada"}],
                                response_format=Person, **common)
    assert Person.model_validate_json(parsed.choices[0].message.content) == Person(name="Ada", age=36)
    vectors = litellm.embedding(model="openai/emb", api_base=v1, api_key="unused", input=["hello world"])
    assert vectors.data[0]["embedding"] == pytest.approx(_server_vector(v1, "hello world"), abs=1e-6)


# -------------------------------------------------------------------------------------------- Vercel AI SDK (node)


def test_vercel_ai_sdk_generate_stream_and_tools(live):
    sdk = os.environ.get("FLYWHEEL_AI_SDK_DIR")
    if not shutil.which("node") or not sdk or not (Path(sdk) / "node_modules" / "ai").is_dir():
        pytest.skip("node and FLYWHEEL_AI_SDK_DIR (a folder with `npm install ai @ai-sdk/openai zod`) needed")
    script = Path(__file__).parent / "clients" / "vercel_ai.mjs"
    done = subprocess.run(["node", str(script), live.url], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "FLYWHEEL_AI_SDK_DIR": sdk}, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    cases = json.loads(done.stdout)
    failed = {name: c["error"] for name, c in cases.items() if "error" in c}
    assert not failed
    for wire in ("responses", "chat"):  # openai(...) speaks the Responses API, openai.chat(...) chat completions
        for alias in ALIASES:
            key = f"{wire}/{alias}"
            assert cases[f"{key}/generate"]["text"] == "You said: hello there"
            assert cases[f"{key}/stream"]["text"] == "You said: stream me"
            assert cases[f"{key}/stream"]["outputTokens"] == 5
            assert cases[f"{key}/tools"]["calls"] == [["get_weather", {"city": "Paris"}]]
            assert cases[f"{key}/tools"]["text"] == cases[f"{key}/tools_stream"]["text"] == "It is 21 degrees in Paris."
    assert cases["embed"]["length"] == len(_server_vector(live.url + "/v1", "hello"))


# ----------------------------------------------------------------------- curl, as docs/server.md (and zh/) have it


def _doc_curl_lines() -> list[str]:
    lines = [line for page in DOC_PAGES for line in page.read_text(encoding="utf-8").splitlines()
             if line.startswith("curl ") and "localhost:8300/" in line]
    return list(dict.fromkeys(lines))  # the Chinese page repeats some


def test_the_curl_lines_of_the_server_pages_work_as_written(live):
    if not shutil.which("curl"):
        pytest.skip("curl not installed")
    lines = _doc_curl_lines()
    assert len(lines) >= 8  # the OpenAI-route lines, the app API and the feedback ones
    token = None
    for line in lines:
        command = re.sub(r"\s+#.*$", "", line).replace("localhost:8300", live.url.removeprefix("http://"))
        if token is not None:
            command = command.replace('"token": "…"', json.dumps({"token": token})[1:-1])
        done = subprocess.run([*shlex.split(command), "-w", "\n%{http_code}"], capture_output=True, text=True,
                              timeout=120, check=False)
        body, _, status = done.stdout.rpartition("\n")
        assert done.returncode == 0 and status in ("200", "201"), f"{line}\n{done.stdout[-1500:]}"
        if '"stream": true' in line:
            assert "data: " in body
            continue
        answer = json.loads(body)
        if "/v1/apps/" in line and token is None:
            token = answer["feedback"]["token"]
            assert answer["citations"][0]["source"] == "docs/pin.md"
        elif "/v1/embeddings" in line:
            assert [len(d["embedding"]) for d in answer["data"]] == [len(answer["data"][0]["embedding"])] * 2
        elif "/v1/chat/completions" in line:
            assert answer["choices"][0]["message"]["content"].startswith("You said:")
    assert token is not None, "the app line of docs/server.md no longer gives a feedback token"

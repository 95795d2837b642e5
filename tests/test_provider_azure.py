"""The azure provider through the official openai SDK (AzureOpenAI / OpenAI) against fake_llm's Azure routes."""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import threading
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from flywheel.config import ModelAlias, Price, Project
from flywheel.errors import GatewayError
from flywheel.gateway import Gateway, RetryPolicy
from flywheel.gateway.providers.azure import DEFAULT_API_VERSION, AzureProvider
from flywheel.testing.fake_llm import FakeLLM, Fault, ToolCall
from flywheel.types import ChatRequest, Message

KEY = "azure-test-key-0123456789abcdef"
# a Microsoft Entra ID access token has a JWT's shape (header.payload.signature, base64url)
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2NvZ25pdGl2ZXNlcnZpY2VzIn0.c2lnbmF0dXJl"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM(api_key=KEY) as llm:
        yield llm


@pytest.fixture
def llm(fake: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    monkeypatch.setenv("AZ_TEST_KEY", KEY)
    fake.reset()
    fake.api_key = KEY
    fake.add("capital", "Paris.")
    fake.add("weather in Paris", ToolCall("get_weather", {"city": "Paris"}))
    fake.add(r'"temp": 21', "It is 21 degrees in Paris.")
    yield fake
    fake.reset()


def alias(llm: FakeLLM, *, v1: bool = False, **kw) -> ModelAlias:
    base = llm.url + "/openai/v1" if v1 else llm.url
    fields = {"provider": "azure", "base_url": base, "model": "gpt4o-prod", "api_key_env": "AZ_TEST_KEY",
              "price": Price(input=2.5, output=10.0), "max_retries": 1, **kw}
    return ModelAlias(**fields)


def gateway(a: ModelAlias) -> Gateway:
    return Gateway({"az": a}, retry=RetryPolicy(base_s=0.01, max_s=0.02))


def ask(text: str = "What is the capital of France?") -> ChatRequest:
    return ChatRequest.of(text, system="Answer briefly.", model="az", temperature=0.2)


def test_classic_chat_hits_the_deployment_with_the_default_api_version_and_api_key(llm):
    result = gateway(alias(llm)).chat(ask())
    assert result.text == "Paris." and result.provider == "azure"
    sent = llm.requests[-1]
    assert sent["path"] == "/openai/deployments/gpt4o-prod/chat/completions"
    assert sent["api_version"] == DEFAULT_API_VERSION and sent["auth"] == "api-key"
    assert sent["messages"][0] == {"role": "system", "content": "Answer briefly."} and sent["temperature"] == 0.2
    usage = result.usage
    assert usage.input_tokens > 0 and usage.output_tokens == 2
    assert result.cost_usd == pytest.approx((usage.input_tokens * 2.5 + usage.output_tokens * 10.0) / 1e6)


def test_api_version_on_the_alias_is_sent(llm):
    gateway(alias(llm, api_version="2025-04-01-preview")).chat(ask())
    assert llm.requests[-1]["api_version"] == "2025-04-01-preview"


def test_v1_endpoint_sends_the_deployment_as_model_and_no_api_version(llm):
    result = gateway(alias(llm, v1=True)).chat(ask())
    sent = llm.requests[-1]
    assert result.text == "Paris." and sent["path"] == "/openai/v1/chat/completions"
    assert sent["model"] == "gpt4o-prod" and sent["api_version"] is None and sent["auth"] == "bearer"


def test_entra_token_goes_as_bearer(llm, monkeypatch):
    monkeypatch.setenv("AZ_TEST_TOKEN", TOKEN)
    llm.api_key = TOKEN
    assert gateway(alias(llm, api_key_env="AZ_TEST_TOKEN")).chat(ask()).text == "Paris."
    assert llm.requests[-1]["auth"] == "bearer"


def test_stream_sync_and_async_with_usage(llm):
    gw = gateway(alias(llm))
    stream = gw.stream(ask())
    chunks = list(stream)
    assert "".join(c.delta for c in chunks) == "Paris." and chunks[-1].finish_reason == "stop"
    assert stream.result.usage.output_tokens == 2 and stream.result.cost_usd > 0
    assert llm.requests[-1]["stream"] is True and llm.requests[-1]["stream_options"] == {"include_usage": True}

    async def run() -> str:
        parts = [c.delta async for c in gw.astream(ask())]
        return "".join(parts) + "|" + (await gw.achat(ask())).text

    assert asyncio.run(run()) == "Paris.|Paris."


@pytest.mark.parametrize("v1", [False, True])
def test_tool_call_round_trip(llm, v1):
    gw = gateway(alias(llm, v1=v1))
    req = ChatRequest(model="az", tools=[WEATHER], tool_choice="auto",
                      messages=[Message(role="user", content="Weather in Paris?")])
    first = gw.chat(req)
    assert first.finish_reason == "tool_calls"
    assert first.tool_calls[0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert llm.requests[-1]["tools"] == [WEATHER] and llm.requests[-1]["tool_choice"] == "auto"
    req.messages += [Message(role="assistant", tool_calls=first.tool_calls),
                     Message(role="tool", tool_call_id=first.tool_calls[0]["id"], content='{"temp": 21}')]
    assert gw.chat(req).text == "It is 21 degrees in Paris."
    streamed = gw.stream(ChatRequest(model="az", tools=[WEATHER], messages=req.messages[:1]))
    list(streamed)
    assert streamed.result.tool_calls[0]["function"]["arguments"] == '{"city": "Paris"}'


def test_structured_output_passes_response_format(llm):
    fmt = {"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object"}}}
    gateway(alias(llm)).chat(ChatRequest(model="az", response_format=fmt,
                                         messages=[Message(role="user", content="capital?")]))
    assert llm.requests[-1]["response_format"] == fmt


def test_rate_limit_is_retried_and_a_wrong_key_is_a_user_mistake(llm, monkeypatch):
    gw = gateway(alias(llm))
    llm.fail(Fault.RATE_LIMIT, times=1)
    assert gw.chat(ask()).attempts == 2
    monkeypatch.setenv("AZ_TEST_KEY", "wrong-key")
    with pytest.raises(GatewayError) as err:
        gateway(alias(llm)).chat(ask())
    assert [a.status for a in err.value.attempts] == [401] and err.value.exit_code == 2


class _ContentFilter(http.server.BaseHTTPRequestHandler):
    """Azure's answer to a prompt its content filter refuses."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"error": {"message": "The response was filtered due to the prompt triggering Azure "
                                                "OpenAI's content management policy.", "type": None,
                                     "param": "prompt", "code": "content_filter", "status": 400}}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_content_filter_refusal_says_so_and_is_not_retried(monkeypatch):
    monkeypatch.setenv("AZ_TEST_KEY", KEY)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ContentFilter)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        a = ModelAlias(provider="azure", base_url=f"http://127.0.0.1:{srv.server_port}", model="d",
                       api_key_env="AZ_TEST_KEY", max_retries=2)
        for call in (lambda gw: gw.chat(ask()), lambda gw: list(gw.stream(ask()))):
            with pytest.raises(GatewayError) as err:
                call(gateway(a))
            attempts = err.value.attempts
            assert len(attempts) == 1 and attempts[0].status == 400 and err.value.exit_code == 2
            assert "Azure content filter refused the prompt" in attempts[0].error
    finally:
        srv.shutdown()
        srv.server_close()


def test_the_credential_is_never_logged_or_shown(llm, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    provider = AzureProvider(alias(llm))
    gateway(alias(llm)).chat(ask())
    monkeypatch.setenv("AZ_TEST_KEY", KEY + "-revoked")
    with pytest.raises(GatewayError) as err:
        gateway(alias(llm)).chat(ask())
    shown = caplog.text + str(err.value) + repr(provider) + repr(provider.credential) + json.dumps(llm.requests)
    assert KEY not in shown


def test_credentials_from_the_environment_only_go_to_azure_hosts(monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    monkeypatch.delenv("AZURE_OPENAI_AD_TOKEN", raising=False)
    on_azure = AzureProvider(ModelAlias(provider="azure", base_url="https://res.openai.azure.com", model="d"))
    assert on_azure.credential.secret == KEY and not on_azure.credential.bearer
    assert on_azure.endpoint.base_url == "https://res.openai.azure.com/openai/deployments/d"
    elsewhere = Gateway({"az": ModelAlias(provider="azure", base_url="http://127.0.0.1:9", model="d")})
    with pytest.raises(GatewayError) as err:
        elsewhere.chat(ask())
    assert "not an Azure host" in str(err.value) and err.value.exit_code == 2


def test_missing_api_version_takes_the_default_and_bad_fields_fail_at_file_and_line(tmp_path, monkeypatch):
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
    (tmp_path / "flywheel.yaml").write_text(
        "models:\n  default: {provider: extractive}\n"
        "  az:\n    provider: azure\n    base_url: https://res.openai.azure.com\n    model: gpt4o\n")
    assert Project.load(tmp_path).config.models["az"].api_version is None  # DEFAULT_API_VERSION at call time
    (tmp_path / "flywheel.yaml").write_text(
        "models:\n  default: {provider: extractive}\n  az:\n    provider: azure\n    model: gpt4o\n")
    from flywheel.cli import main

    res = CliRunner().invoke(main, ["--project", str(tmp_path), "chat", "hi", "--model", "az"])
    assert res.exit_code == 2 and "flywheel.yaml:3" in res.output and "no endpoint" in res.output
    (tmp_path / "flywheel.yaml").write_text(
        "models:\n  default: {provider: extractive}\n"
        "  oa:\n    provider: openai_compat\n    model: m\n    api_version: '2024-10-21'\n")
    res = CliRunner().invoke(main, ["--project", str(tmp_path), "chat", "hi"])
    assert res.exit_code == 2 and "flywheel.yaml:6" in res.output and "applies to provider azure" in res.output


def test_azure_v1_embeddings_serve_as_an_openai_compat_embedder(llm):
    from flywheel.config import RetrievalConfig
    from flywheel.retrieval.embedders import build_embedder

    models = {"azemb": ModelAlias(provider="openai_compat", base_url=llm.url + "/openai/v1",
                                  model="text-embedding-3-small-prod", api_key_env="AZ_TEST_KEY")}
    embedder = build_embedder(RetrievalConfig(embedder="azemb"), models)
    vectors = embedder.embed(["capital of France", "capital of France", "unrelated words here"])
    assert vectors.shape == (3, 384) and vectors[0] @ vectors[1] == pytest.approx(1.0)
    sent = llm.requests[-1]
    assert sent["path"] == "/openai/v1/embeddings" and sent["model"] == "text-embedding-3-small-prod"
    assert sent["auth"] == "bearer"


@pytest.mark.parametrize("v1", [False, True], ids=["deployment", "v1"])
def test_an_azure_alias_is_an_embedder(llm: FakeLLM, v1: bool) -> None:
    """`retrieval.embedder: <azure alias>`: the embedding deployment answers through the Azure routes, with
    api-version on the deployment style and the key in the right header (before: refused, openai_compat only)."""
    from flywheel.retrieval.embedders import OpenAICompatEmbedder

    emb = OpenAICompatEmbedder("az", alias(llm, v1=v1, model="embed-prod"))
    vectors = emb.embed(["refund policy", "退款规则"])
    assert vectors.shape[0] == 2 and vectors.shape[1] > 0
    sent = [r for r in llm.requests if str(r.get("path", "")).endswith("/embeddings")][-1]
    assert ("deployments/embed-prod" in sent["path"]) != v1
    assert KEY not in json.dumps(sent, default=str)  # the credential is never recorded

"""The bedrock provider (Converse / ConverseStream over httpx, SigV4 or a Bedrock API key) against fake_llm's
Bedrock routes, and its SigV4 signer and event-stream codec against AWS's test vectors and botocore."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from flywheel.config import ModelAlias, Price, Project
from flywheel.errors import GatewayError
from flywheel.gateway import Gateway, RetryPolicy
from flywheel.gateway.providers.aws_eventstream import EventStreamDecoder, encode_message
from flywheel.gateway.providers.aws_sigv4 import AwsCredentials, sign_v4
from flywheel.gateway.providers.base import ProviderError
from flywheel.gateway.providers.bedrock import BedrockProvider, SigV4Auth
from flywheel.gateway.providers.bedrock_wire import ConverseFold
from flywheel.testing.fake_llm import FakeLLM, Fault, ToolCall
from flywheel.types import ChatRequest, Message

SECRET = "bedrock-secret-0123456789abcdef"  # the fake's api_key: the Bedrock API key, and the SigV4 secret
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
ANSWER = "Paris is the capital of France."
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture(autouse=True)
def no_ambient_aws(monkeypatch, tmp_path):
    """No credentials, region or profile from the machine running the tests, and no instance-metadata lookups."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK",
                "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("BEDROCK_TEST_KEY", SECRET)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM(api_key=SECRET) as llm:
        yield llm


@pytest.fixture
def llm(fake: FakeLLM) -> Iterator[FakeLLM]:
    fake.reset()
    fake.add("capital", ANSWER)
    fake.add("weather in Paris", ToolCall("get_weather", {"city": "Paris"}))
    fake.add(r'"temp": 21', "It is 21 degrees in Paris.")
    yield fake
    fake.reset()


def alias(llm: FakeLLM, **kw) -> ModelAlias:
    fields = {"provider": "bedrock", "base_url": llm.url, "model": MODEL, "api_key_env": "BEDROCK_TEST_KEY",
              "price": Price(input=0.25, output=1.25), "max_retries": 1, **kw}
    return ModelAlias(**fields)


def gateway(a: ModelAlias) -> Gateway:
    return Gateway({"br": a}, retry=RetryPolicy(base_s=0.01, max_s=0.02))


def ask(text: str = "What is the capital of France?") -> ChatRequest:
    return ChatRequest.of(text, system="Answer briefly.", model="br", temperature=0.2, max_tokens=200)


def sigv4_env(monkeypatch, secret: str = SECRET) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-xyz")


# ---------------------------------------------------------------------------- SigV4 and event stream

VECTOR = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
VECTOR_TIME = dt.datetime(2015, 8, 30, 12, 36, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("url", "signature"), [
    ("https://example.amazonaws.com/", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("https://example.amazonaws.com/?Param2=value2&Param1=value1",
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
])
def test_sigv4_matches_aws_published_test_vectors(url, signature):
    """get-vanilla and get-vanilla-query-order-key-case from AWS's SigV4 test suite."""
    headers = sign_v4("GET", url, {}, b"", VECTOR, region="us-east-1", service="service", now=VECTOR_TIME)
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}")


def test_sigv4_matches_botocore_on_a_bedrock_request():
    botocore_auth = pytest.importorskip("botocore.auth")
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = ("https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/"
           "converse-stream?b=2%203&a=1")
    body = json.dumps({"messages": [{"role": "user", "content": [{"text": "你好"}]}]}, ensure_ascii=False).encode()
    req = AWSRequest("POST", url, data=body, headers={"Content-Type": "application/json"})
    botocore_auth.SigV4Auth(Credentials("AKID", "SECRET", "TOKEN"), "bedrock", "us-east-1").add_auth(req)
    now = dt.datetime.strptime(req.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    ours = sign_v4("POST", url, {"content-type": "application/json"}, body, AwsCredentials("AKID", "SECRET", "TOKEN"),
                   region="us-east-1", service="bedrock", now=now)
    assert ours["authorization"] == req.headers["Authorization"]
    assert ours["x-amz-security-token"] == "TOKEN"


def test_event_stream_round_trip_and_botocore_reads_ours():
    messages = [encode_message({":event-type": "contentBlockDelta", ":message-type": "event"},
                               json.dumps({"delta": {"text": f"piece {i} 中"}}, ensure_ascii=False).encode())
                for i in range(3)]
    wire = b"".join(messages)
    decoder = EventStreamDecoder()
    got = [m for i in range(0, len(wire), 7) for m in decoder.feed(wire[i:i + 7])]  # arbitrary cuts
    assert [h[":event-type"] for h, _ in got] == ["contentBlockDelta"] * 3 and decoder.pending == 0
    assert json.loads(got[2][1]) == {"delta": {"text": "piece 2 中"}}
    eventstream = pytest.importorskip("botocore.eventstream")
    buffer = eventstream.EventStreamBuffer()
    buffer.add_data(wire)
    assert [m.headers[":event-type"] for m in buffer] == ["contentBlockDelta"] * 3
    corrupt = bytearray(messages[0])
    corrupt[-6] ^= 1
    with pytest.raises(ValueError, match="CRC"):
        list(EventStreamDecoder().feed(bytes(corrupt)))


def test_a_stream_exception_event_maps_to_its_status():
    fold = ConverseFold()
    frame = ({":message-type": "exception", ":exception-type": "throttlingException"}, b'{"message": "slow down"}')
    with pytest.raises(ProviderError) as err:
        fold.take(frame)
    assert err.value.status == 429 and err.value.retryable and "slow down" in err.value.message


# ---------------------------------------------------------------------------- against the fake

def test_chat_with_a_bedrock_api_key_sends_converse_and_reports_usage(llm):
    result = gateway(alias(llm)).chat(ask())
    assert result.text == ANSWER and result.provider == "bedrock" and result.finish_reason == "stop"
    sent = llm.requests[-1]
    assert sent["path"] == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse" and sent["model_id"] == MODEL
    assert sent["auth"] == "bearer"
    assert sent["system"] == [{"text": "Answer briefly."}]
    assert sent["messages"] == [{"role": "user", "content": [{"text": "What is the capital of France?"}]}]
    assert sent["inferenceConfig"] == {"maxTokens": 200, "temperature": 0.2}
    usage = result.usage
    assert usage.input_tokens == 10 and usage.output_tokens == 7  # fake_llm's tokenizer, system included
    assert result.cost_usd == pytest.approx((10 * 0.25 + 7 * 1.25) / 1e6)


def test_sigv4_from_environment_credentials_is_verified_by_the_fake(llm, monkeypatch):
    sigv4_env(monkeypatch)
    a = alias(llm, api_key_env=None, region="eu-west-1", params={"top_p": 0.9, "top_k": 50})
    assert gateway(a).chat(ask()).text == ANSWER
    sent = llm.requests[-1]
    assert sent["auth"] == "sigv4" and sent["region"] == "eu-west-1"
    assert sent["inferenceConfig"]["topP"] == 0.9 and sent["additionalModelRequestFields"] == {"top_k": 50}
    sigv4_env(monkeypatch, secret="not-the-secret")  # a wrong signature: 403, the user's to fix
    with pytest.raises(GatewayError) as err:
        gateway(a).chat(ask())
    assert [x.status for x in err.value.attempts] == [403] and err.value.exit_code == 2


def test_stream_sync_and_async(llm, monkeypatch):
    sigv4_env(monkeypatch)
    gw = gateway(alias(llm, api_key_env=None, region="us-east-1"))
    stream = gw.stream(ask())
    chunks = list(stream)
    assert "".join(c.delta for c in chunks) == ANSWER and len(chunks) > 3
    assert chunks[-1].finish_reason == "stop" and stream.result.usage.output_tokens == 7
    assert llm.requests[-1]["path"].endswith("/converse-stream")

    async def run() -> str:
        parts = [c.delta async for c in gw.astream(ask())]
        return "".join(parts) + "|" + (await gw.achat(ask())).text

    assert asyncio.run(run()) == f"{ANSWER}|{ANSWER}"


@pytest.mark.parametrize("streamed", [False, True])
def test_tool_call_round_trip(llm, streamed):
    gw = gateway(alias(llm))
    req = ChatRequest(model="br", tools=[WEATHER], tool_choice="required",
                      messages=[Message(role="user", content="Weather in Paris?")])
    if streamed:
        stream = gw.stream(req)
        list(stream)
        first = stream.result
    else:
        first = gw.chat(req)
    assert first.finish_reason == "tool_calls"
    assert first.tool_calls[0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert llm.requests[-1]["toolConfig"] == {"tools": [{"toolSpec": {
        "name": "get_weather", "description": "Current weather in a city",
        "inputSchema": {"json": WEATHER["function"]["parameters"]}}}], "toolChoice": {"any": {}}}
    req.messages += [Message(role="assistant", tool_calls=first.tool_calls),
                     Message(role="tool", tool_call_id=first.tool_calls[0]["id"], content='{"temp": 21}')]
    assert gw.chat(req).text == "It is 21 degrees in Paris."
    turns = llm.requests[-1]["messages"]
    call_id = first.tool_calls[0]["id"]
    assert turns[1] == {"role": "assistant", "content": [{"toolUse": {"toolUseId": call_id, "name": "get_weather",
                                                                       "input": {"city": "Paris"}}}]}
    assert turns[2] == {"role": "user", "content": [{"toolResult": {"toolUseId": call_id,
                                                                     "content": [{"text": '{"temp": 21}'}]}}]}


@pytest.mark.parametrize("fault", [Fault.RATE_LIMIT, Fault.SERVER_ERROR, Fault.TRUNCATED_STREAM, Fault.INVALID_JSON])
def test_faults_are_retried_in_chat_and_stream(llm, fault):
    gw = gateway(alias(llm))
    llm.fail(fault, times=1)
    assert gw.chat(ask()).attempts == 2
    llm.fail(fault, times=1)
    stream = gw.stream(ask())
    assert "".join(c.delta for c in stream) == ANSWER
    assert [f.fault for f in llm.injected] == [fault, fault]


def test_client_errors_fail_fast_with_bedrocks_error_type(llm):
    llm.fail(Fault.SERVER_ERROR, times=1, status=400)
    with pytest.raises(GatewayError) as err:
        gateway(alias(llm)).chat(ask())
    (attempt,) = err.value.attempts
    assert attempt.status == 400 and "ValidationException" in attempt.error and err.value.exit_code == 2


def test_secrets_are_never_logged_or_shown(llm, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    gateway(alias(llm)).chat(ask())
    sigv4_env(monkeypatch)
    signed = BedrockProvider(alias(llm, api_key_env=None, region="us-east-1"))
    assert isinstance(signed.auth, SigV4Auth)
    list(gateway(alias(llm, api_key_env=None, region="us-east-1")).stream(ask()))
    monkeypatch.setenv("BEDROCK_TEST_KEY", SECRET + "-revoked")
    with pytest.raises(GatewayError) as err:
        gateway(alias(llm)).chat(ask())
    shown = caplog.text + str(err.value) + repr(signed) + repr(signed.auth) + repr(signed.auth.current())
    shown += json.dumps(llm.requests)
    assert SECRET not in shown and "session-token-xyz" not in shown


def test_the_bedrock_api_key_from_the_environment_only_goes_to_aws_hosts(monkeypatch):
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", SECRET)
    on_aws = BedrockProvider(ModelAlias(provider="bedrock", model=MODEL, region="us-west-2"))
    assert on_aws.endpoint == "https://bedrock-runtime.us-west-2.amazonaws.com"
    assert on_aws.auth.headers("POST", on_aws.endpoint, {}, b"")["authorization"] == f"Bearer {SECRET}"
    elsewhere = Gateway({"br": ModelAlias(provider="bedrock", model=MODEL, base_url="http://127.0.0.1:9")})
    with pytest.raises(GatewayError) as err:
        elsewhere.chat(ask())
    assert "no AWS credentials" in str(err.value) and err.value.exit_code == 2


def test_missing_region_fails_at_the_alias_line_with_exit_2(tmp_path, monkeypatch):
    from flywheel.cli import main

    (tmp_path / "flywheel.yaml").write_text(
        f"models:\n  default: {{provider: extractive}}\n  claude:\n    provider: bedrock\n    model: {MODEL}\n")
    res = CliRunner().invoke(main, ["--project", str(tmp_path), "chat", "hi", "--model", "claude"])
    assert res.exit_code == 2 and "flywheel.yaml:3" in res.output and "no AWS region" in res.output
    assert "Traceback" not in res.output
    monkeypatch.setenv("AWS_REGION", "ap-northeast-1")  # the environment's region is enough
    assert Project.load(tmp_path).config.models["claude"].region is None
    (tmp_path / "flywheel.yaml").write_text(
        "models:\n  default: {provider: extractive}\n  oa:\n    provider: openai_compat\n    model: m\n"
        "    region: us-east-1\n")
    res = CliRunner().invoke(main, ["--project", str(tmp_path), "chat", "hi"])
    assert res.exit_code == 2 and "flywheel.yaml:6" in res.output and "applies to provider bedrock" in res.output

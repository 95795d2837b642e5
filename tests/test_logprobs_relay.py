"""Log-probabilities end to end: the gateway relays `logprobs` / `top_logprobs` from openai_compat aliases (pooled
and SDK paths, sync and async, streamed, n > 1) and refuses them for aliases that cannot return them; `flywheel
serve` answers them to the official OpenAI SDK (chat, stream, legacy completions) and refuses them by name for
other aliases and apps; fake_llm derives or scripts them."""
# ruff: noqa: F811 - pytest fixtures imported from gateway_support are redefined as parameters

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import openai
import pytest
from gateway_support import llm, server  # noqa: F401 - fixtures

from flywheel.config import ModelAlias
from flywheel.errors import GatewayError, UserError
from flywheel.gateway import Gateway, RetryPolicy
from flywheel.testing.fake_llm import Choices, Fault
from flywheel.testing.fake_llm_wire import Scored, token_logprobs
from flywheel.types import ChatRequest

ANSWER = "Paris is the capital."
SCORED = Scored(" B", {" A": -1.7, " B": -0.2, " C": -3.1})


@pytest.fixture
def gw(llm):
    return Gateway({
        "gpt": ModelAlias(provider="openai_compat", model="fake-model", base_url=llm.base_url, max_retries=0),
        "claude": ModelAlias(provider="anthropic", model="claude-test", base_url=llm.anthropic_base_url,
                             max_retries=0, params={"max_tokens": 50}),
        "quoting": ModelAlias(provider="extractive"),
        "gpt_then_claude": ModelAlias(provider="openai_compat", model="flaky", base_url=llm.base_url, max_retries=0,
                                      fallbacks=["claude"]),
    }, retry=RetryPolicy(base_s=0.001, max_s=0.002))


def scored(top: int = 3, **kw) -> ChatRequest:
    return ChatRequest.of("capital of France?", model=kw.pop("model", "gpt"), logprobs=True, top_logprobs=top, **kw)


def assert_tokens_spell(tokens: list[dict], text: str, top: int) -> None:
    assert "".join(t["token"] for t in tokens) == text
    for t in tokens:
        assert bytes(t["bytes"]) == t["token"].encode() and t["logprob"] < 0
        assert len(t["top_logprobs"]) == top and t["top_logprobs"][0]["token"] == t["token"]


# ------------------------------------------------------------------ gateway, openai_compat


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("path", ["pooled", "sdk"])
def test_the_gateway_relays_logprobs(gw, llm, mode, path):
    if path == "sdk":  # the road OpenAI's own endpoint and proxied setups take
        prov = gw.provider("gpt")
        prov._pool, prov._headers = None, None
    result = gw.chat(scored()) if mode == "sync" else asyncio.run(gw.achat(scored()))
    assert result.text == ANSWER
    assert_tokens_spell(result.logprobs, ANSWER, 3)
    assert result.logprobs == token_logprobs(ANSWER, 3)
    (sent,) = llm.requests
    assert sent["logprobs"] is True and sent["top_logprobs"] == 3


def test_without_logprobs_nothing_is_asked_or_returned(gw, llm):
    result = gw.chat(ChatRequest.of("capital of France?", model="gpt"))
    assert result.logprobs is None and "logprobs" not in llm.requests[0]


def test_scripted_logprobs_come_back_as_scripted(gw, llm):
    llm.add("Italy", SCORED)
    result = gw.chat(ChatRequest.of("Which one, Italy?", model="gpt", logprobs=True, top_logprobs=2))
    (token,) = result.logprobs
    assert (token["token"], token["logprob"]) == (" B", -0.2)
    assert [(a["token"], a["logprob"]) for a in token["top_logprobs"]] == [(" B", -0.2), (" A", -1.7)]


def test_every_choice_carries_its_logprobs(gw, llm):
    llm.add("6", Choices("42", "41"))
    result = gw.chat(ChatRequest.of("6 * 7?", model="gpt", n=2, logprobs=True, top_logprobs=1))
    assert [c.text for c in result.choices] == ["42", "41"]
    assert [[t["token"] for t in c.logprobs] for c in result.choices] == [["42"], ["41"]]
    assert result.logprobs == result.choices[0].logprobs


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_stream_carries_each_chunks_logprobs(gw, llm, mode):
    async def collect_async():
        stream = gw.astream(scored(top=2))
        return [c async for c in stream], stream

    if mode == "sync":
        stream = gw.stream(scored(top=2))
        chunks = list(stream)
    else:
        chunks, stream = asyncio.run(collect_async())
    tokens = [t for c in chunks for t in (c.logprobs or [])]
    assert_tokens_spell(tokens, ANSWER, 2)
    assert all(c.logprobs is None or "".join(t["token"] for t in c.logprobs) == c.delta for c in chunks)
    assert stream.result.logprobs == tokens and stream.result.text == ANSWER


def test_logprobs_stay_off_the_trace(gw, llm, spans):
    result = gw.chat(scored())
    mine = [s for s in spans if s.trace_id == result.trace_id]
    assert mine and all(s.outputs == ANSWER for s in mine)
    assert all("logprob" not in repr(s.attributes) for s in mine)


# ------------------------------------------------------------------ gateway refusals


@pytest.mark.parametrize(("alias", "provider"), [("claude", "anthropic"), ("quoting", "extractive")])
def test_an_alias_that_cannot_return_logprobs_is_refused_by_name(gw, llm, alias, provider):
    for call in (gw.chat, gw.stream, lambda r: asyncio.run(gw.achat(r))):
        with pytest.raises(UserError) as err:
            call(scored(model=alias))
        assert "logprobs" in err.value.message and f"'{alias}' (provider {provider})" in err.value.message
        assert not isinstance(err.value, GatewayError)
    assert llm.requests == []  # refused before anything was sent


@pytest.mark.parametrize(("fields", "message"), [({"top_logprobs": 21}, "from 0 to 20"),
                                                 ({"top_logprobs": -1}, "from 0 to 20"),
                                                 ({"logprobs": None, "top_logprobs": 2}, "needs logprobs: true")])
def test_bad_logprobs_fields_are_user_errors(gw, llm, fields, message):
    request = ChatRequest.of("capital of France?", model="gpt", **{"logprobs": True, **fields})
    with pytest.raises(UserError, match=message):
        gw.chat(request)
    assert llm.requests == []


def test_a_fallback_that_cannot_return_logprobs_is_skipped(gw, llm):
    llm.fail(Fault.SERVER_ERROR, times=1, model="flaky")
    with pytest.raises(GatewayError) as err:
        gw.chat(scored(model="gpt_then_claude"))
    assert "'claude' (provider anthropic) does not return log-probabilities" in err.value.message
    assert [r["path"] for r in llm.requests] == ["/v1/chat/completions"]  # claude was never asked


# ------------------------------------------------------------------ flywheel serve, official openai SDK

PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}
  claude: {{provider: anthropic, base_url: "{base}", model: fake-claude, max_retries: 0}}
  emb: {{provider: openai_compat, base_url: "{base}/v1", model: fake-embedding}}
retrieval: {{embedder: emb}}
cache: {{exact: false}}
"""
MSGS = [{"role": "user", "content": "capital of France?"}]


@pytest.fixture(scope="module")
def live(tmp_path_factory, server):
    from server_support import LiveServer

    from flywheel.config import Project
    from flywheel.server import create_app

    root: Path = tmp_path_factory.mktemp("logprobs")
    (root / "flywheel.yaml").write_text(PROJECT.format(base=server.url), encoding="utf-8")
    app = LiveServer(create_app(Project.load(root))).start()
    yield app
    app.stop()


@pytest.fixture
def oai(live, llm):
    return openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)


def test_serve_relays_chat_logprobs_to_the_openai_sdk(oai, llm):
    done = oai.chat.completions.create(model="gpt", messages=MSGS, logprobs=True, top_logprobs=3)
    content = done.choices[0].message.content
    tokens = [t.model_dump() for t in done.choices[0].logprobs.content]
    assert content == ANSWER and tokens == token_logprobs(ANSWER, 3)
    assert llm.requests[-1]["logprobs"] is True and llm.requests[-1]["top_logprobs"] == 3
    plain = oai.chat.completions.create(model="gpt", messages=MSGS, logprobs=False)
    assert plain.choices[0].message.content == ANSWER and plain.choices[0].logprobs is None


def test_serve_streams_logprobs_on_each_chunk(oai, llm):
    chunks = list(oai.chat.completions.create(model="gpt", messages=MSGS, logprobs=True, top_logprobs=2,
                                              stream=True))
    with_text = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(c.choices[0].delta.content for c in with_text) == ANSWER
    tokens = [t.model_dump() for c in with_text for t in c.choices[0].logprobs.content]
    assert tokens == token_logprobs(ANSWER, 2)


def test_serve_answers_legacy_completion_logprobs_in_the_legacy_shape(oai, llm):
    llm.add("Italy", SCORED)
    done = oai.completions.create(model="gpt", prompt="Which one, Italy?", logprobs=2)
    lp = done.choices[0].logprobs
    assert done.choices[0].text == " B"
    assert (lp.tokens, lp.token_logprobs, lp.top_logprobs, lp.text_offset) == \
        ([" B"], [-0.2], [{" B": -0.2, " A": -1.7}], [0])
    assert llm.requests[-1]["logprobs"] is True and llm.requests[-1]["top_logprobs"] == 2
    streamed = list(oai.completions.create(model="gpt", prompt="capital of France?", logprobs=1, stream=True))
    pieces = [c.choices[0] for c in streamed if c.choices and c.choices[0].text]
    assert "".join(p.text for p in pieces) == ANSWER
    offsets = [o for p in pieces for o in p.logprobs.text_offset]
    tokens = [t for p in pieces for t in p.logprobs.tokens]
    assert offsets == [ANSWER.index(t, o) for t, o in zip(tokens, offsets)] and offsets[0] == 0
    assert "".join(tokens) == ANSWER


@pytest.mark.parametrize(("body", "param", "says"), [
    ({"model": "claude", "logprobs": True}, "logprobs", "provider anthropic"),
    ({"model": "app:docs_qa", "logprobs": True, "top_logprobs": 2}, "logprobs", "app"),
    ({"model": "gpt", "top_logprobs": 2}, "top_logprobs", "needs logprobs: true"),
    ({"model": "gpt", "logprobs": True, "top_logprobs": 21}, "top_logprobs", "20"),
])
def test_serve_refuses_logprobs_it_cannot_answer_by_name(live, llm, body, param, says):
    r = httpx.post(live.url + "/v1/chat/completions", json={"messages": MSGS, **body}, timeout=60)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and says in err["message"]
    assert llm.requests == []


def test_serve_takes_logprobs_false_from_any_model(live, llm):
    for model in ("claude", "app:docs_qa"):
        r = httpx.post(live.url + "/v1/chat/completions", json={"model": model, "messages": MSGS, "logprobs": False},
                       timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["logprobs"] is None


def test_serve_refuses_legacy_logprobs_for_an_alias_that_cannot_return_them(live, llm):
    r = httpx.post(live.url + "/v1/completions", json={"model": "claude", "prompt": "hi", "logprobs": 2},
                   timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "logprobs"
    assert "provider anthropic" in r.json()["error"]["message"]


# ------------------------------------------------------------------ fake_llm scripts


def test_a_script_scores_a_reply(tmp_path, llm, gw):
    script = tmp_path / "script.yaml"
    script.write_text("rules:\n  - match: Italy\n    reply: ' B'\n    logprobs: {' A': -1.7, ' B': -0.2}\n",
                      encoding="utf-8")
    llm.load_script(script)
    result = gw.chat(ChatRequest.of("Which one, Italy?", model="gpt", logprobs=True, top_logprobs=2))
    assert [(a["token"], a["logprob"]) for a in result.logprobs[0]["top_logprobs"]] == [(" B", -0.2), (" A", -1.7)]


def test_a_script_refuses_logprobs_without_a_reply(tmp_path, llm):
    from flywheel.errors import ConfigError

    script = tmp_path / "script.yaml"
    script.write_text("rules:\n  - match: x\n    tool_call: {name: f}\n    logprobs: {A: -1.0}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        llm.load_script(script)
    assert "`logprobs:` scores a text reply" in err.value.message and err.value.where == f"{script}:4"

"""More of flywheel against a real llama.cpp server (`llama-cpp-python[server]`, tests/llamacpp_support.py) on
the tiny random-weights GGUF: structured output, multiple-choice evals scored by log-probabilities, chat sessions,
and `n` / `stop` / `max_tokens` relayed. The model's words are noise, so every expectation is the server's own
answer to the same request, asked directly with the openai SDK (temperature 0 is deterministic).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from llamacpp_support import direct_client, llama_server
from pydantic import BaseModel
from server_support import openai_client, serving

from flywheel.cli import main
from flywheel.config import ModelAlias
from flywheel.evals.choices import choice_question, first_token_alternatives, option_of_token
from flywheel.gateway.gateway import Gateway
from flywheel.gateway.providers.base import BaseProvider, ProviderResponse, make_usage
from flywheel.gateway.structured import _prepare, chat_structured
from flywheel.types import ChatRequest

QUESTION = [{"role": "user", "content": "How do refunds work? 退款怎么办理？"}]


class User(BaseModel):
    name: str
    age: int


@pytest.fixture(scope="module")
def llama() -> Iterator[str]:
    with llama_server(models=[{"model": "$chat", "model_alias": "tiny"}]) as base:
        yield base


PROJECT = """
models:
  local: {{provider: openai_compat, base_url: "{base}", model: tiny, max_retries: 0, timeout: 120}}
  short: {{provider: openai_compat, base_url: "{base}", model: tiny, max_retries: 0, timeout: 120,
          params: {{max_tokens: 8, temperature: 0, logit_bias: {{"{letter}": 100}}}}}}
cache: {{exact: false}}
apps:
  # the random weights answer only newlines: a declined answer, which a chat app does not remember
  support: {{kind: chat, model: short, options: {{system: "You are ACME support. 你是客服。"}}}}
"""


def _token_id(llama: str, text: str) -> int:
    r = httpx.post(llama.removesuffix("/v1") + "/extras/tokenize", json={"input": text, "model": "tiny"}, timeout=30)
    tokens = r.json()["tokens"]
    assert len(tokens) == 1, tokens
    return tokens[0]


@pytest.fixture(scope="module")
def served(llama: str, tmp_path_factory: pytest.TempPathFactory):
    with serving(tmp_path_factory.mktemp("llamacpp-features"), PROJECT.format(base=llama, letter=_token_id(llama, "B"))) as server:
        yield server


# -- structured output


def test_llama_cpp_refuses_the_json_schema_form_it_is_sent_as_json_object(llama) -> None:
    """Why `json_schema: json_object` exists: this server takes the schema only in the json_object form."""
    schema = User.model_json_schema()
    with pytest.raises(Exception, match="json_object"):
        direct_client(llama).chat.completions.create(
            model="tiny", messages=QUESTION, max_tokens=8, temperature=0,
            response_format={"type": "json_schema", "json_schema": {"name": "User", "schema": schema}})


def test_a_default_alias_that_llama_cpp_refuses_says_how_to_fix_it(llama, tmp_path: Path) -> None:
    """`flywheel workflow run` with a schema step on a plain openai_compat alias: the server's refusal comes with
    the alias setting that fixes it, not "check the endpoint is up"."""
    (tmp_path / "flywheel.yaml").write_text(
        f"models:\n  default: {{provider: openai_compat, base_url: \"{llama}\", model: tiny, max_retries: 0, "
        "timeout: 120, params: {temperature: 0, max_tokens: 40}}\nretrieval: {embedder: none}\n"
        "cache: {exact: false}\n", encoding="utf-8")
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "x.yaml").write_text(
        "name: extract\ninputs: [text]\nmodel: default\nsteps:\n  - id: user\n"
        "    prompt: \"Extract the user: {{inputs.text}}\"\n"
        f"    schema: {json.dumps(User.model_json_schema())}\n", encoding="utf-8")
    run = CliRunner().invoke(main, ["--project", str(tmp_path), "workflow", "run", "workflows/x.yaml",
                                    "--input", "text=Ann, 31"])
    assert run.exit_code == 3, run.output
    assert "`json_schema: json_object` on that alias" in run.output
    assert "check the endpoint is up" not in run.output


def test_chat_structured_on_a_json_object_alias_gets_the_servers_constrained_answer(llama) -> None:
    gateway = Gateway({"local": ModelAlias(provider="openai_compat", base_url=llama, model="tiny", max_retries=0,
                                           timeout=120, json_schema="json_object")})
    request = ChatRequest.of("Extract the user: Ann, 31. 用户：安，31 岁", model="local").model_copy(
        update={"temperature": 0, "max_tokens": 60})
    out = chat_structured(gateway, request, User, max_reasks=0)
    sent = _prepare(gateway, request, User, "User")
    direct = direct_client(llama).chat.completions.create(
        model="tiny", messages=[m.model_dump(include={"role", "content"}) for m in sent.messages],
        temperature=0, max_tokens=60,
        response_format={"type": "json_object", "schema": User.model_json_schema()})
    assert out.value == User.model_validate(json.loads(direct.choices[0].message.content or ""))
    assert out.result.usage.input_tokens == direct.usage.prompt_tokens


JSON_PROJECT = """
models:
  local: {{provider: openai_compat, base_url: "{base}", model: tiny, max_retries: 0, timeout: 120}}
  local-json: {{provider: openai_compat, base_url: "{base}", model: tiny, max_retries: 0, timeout: 120,
               json_schema: json_object}}
cache: {{exact: false}}
"""


def test_the_sdks_parse_and_json_object_through_serve_match_the_server(llama, tmp_path: Path) -> None:
    with serving(tmp_path, JSON_PROJECT.format(base=llama)) as served:
        _parse_and_json_object(llama, served)


def _parse_and_json_object(llama: str, served) -> None:
    messages = [{"role": "user", "content": "Extract the user: Bo, 7. 用户：博，7 岁"}]
    parsed = openai_client(served).chat.completions.parse(model="local-json", messages=messages,
                                                          response_format=User, max_tokens=60, temperature=0)
    direct = direct_client(llama).chat.completions.create(
        model="tiny", messages=messages, max_tokens=60, temperature=0,
        response_format={"type": "json_object", "schema": User.model_json_schema()})
    assert parsed.choices[0].message.parsed == User.model_validate_json(direct.choices[0].message.content or "")

    plain = {"messages": messages, "max_tokens": 30, "temperature": 0, "response_format": {"type": "json_object"}}
    relayed = openai_client(served).chat.completions.create(model="local", **plain)
    own = direct_client(llama).chat.completions.create(model="tiny", **plain)
    assert relayed.choices[0].message.content == own.choices[0].message.content
    assert relayed.choices[0].finish_reason == own.choices[0].finish_reason


def test_a_json_object_alias_sends_the_schema_in_the_json_object_form(server) -> None:
    """Without llama.cpp (the fake LLM records what it is sent): `json_schema: json_object` turns the schema of
    chat_structured into `{type: json_object, schema}`; other aliases keep OpenAI's json_schema form."""
    server.reset()
    server.add("Extract", '{"name": "Ann", "age": 31}')
    gateway = Gateway({name: ModelAlias(provider="openai_compat", base_url=server.base_url, model="fake-model",
                                        max_retries=0, json_schema=flag)
                       for name, flag in (("llama", "json_object"), ("openai", None))})
    for alias in ("llama", "openai"):
        out = chat_structured(gateway, ChatRequest.of("Extract the user: Ann, 31", model=alias), User)
        assert out.value == User(name="Ann", age=31)
    schema = User.model_json_schema()
    assert [r["response_format"] for r in server.requests] == [
        {"type": "json_object", "schema": schema},
        {"type": "json_schema", "json_schema": {"name": "User", "schema": schema}}]
    server.reset()


# -- multiple choice by log-probabilities

# the random weights favour "\n"; a logit bias on "B" makes the first answer token a letter, while llama.cpp's
# log-probabilities stay those of the unbiased model: the documented rule must then read the case from the text
MC_SUITE = """\
name: mc
target: model:mc
prompt: "{{question}}"
cases:
  - id: capital
    vars: {question: "Capital of France? 法国的首都？"}
    choices: [Paris, Rome, Madrid]
    answer: 0
"""


def test_flywheel_eval_scores_multiple_choice_by_the_documented_rule_on_the_servers_logprobs(
        llama: str, tmp_path: Path) -> None:
    bias = {str(_token_id(llama, "B")): 100}
    params = {"logprobs": True, "top_logprobs": 10, "temperature": 0, "max_tokens": 4, "logit_bias": bias}
    (tmp_path / "flywheel.yaml").write_text(
        f"models:\n  mc: {{provider: openai_compat, base_url: \"{llama}\", model: tiny, max_retries: 0, "
        f"timeout: 120, params: {json.dumps(params)}}}\ncache: {{exact: false}}\n", encoding="utf-8")
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "mc.yaml").write_text(MC_SUITE, encoding="utf-8")
    run = CliRunner().invoke(main, ["--project", str(tmp_path), "eval", "--json", "--results", "--no-progress",
                                    "evals/mc.yaml"], catch_exceptions=False)
    summary = json.loads(run.stdout)["suites"][0]
    details = summary["results"][0]["checks"][0]["details"]

    choices = ["Paris", "Rome", "Madrid"]
    asked = [{"role": "user", "content": choice_question("Capital of France? 法国的首都？", choices)}]
    direct = direct_client(llama).chat.completions.create(model="tiny", messages=asked, **params)
    tokens = [t.model_dump() for t in direct.choices[0].logprobs.content]
    top = first_token_alternatives(tokens)
    assert top is not None  # the biased first token is a letter, not leading markup
    # the rule: the likeliest first token decides when it spells an option; anything else → read the text
    likeliest = max(top, key=lambda t: top[t])
    by_logprobs = option_of_token(likeliest, choices)
    if by_logprobs is not None:
        assert details == {"chosen": by_logprobs, "answer": 0, "method": "logprobs"}
    else:
        assert details["method"] == "generation-fallback"
        assert summary["results"][0]["output"] == direct.choices[0].message.content
    assert summary["multiple_choice"]["methods"] == {details["method"]: 1}


# -- sessions


def test_the_second_turn_of_a_session_sends_the_first_to_llama_cpp(llama, served) -> None:
    from flywheel.tracing import get_trace, tracer

    url = f"{served.url}/v1/apps/support"
    first = httpx.post(url, json={"input": "Hi, my name is Ann. 我叫安。", "session_id": "s-1"}, timeout=120).json()
    second = httpx.post(url, json={"input": "What is my name?", "session_id": "s-1"}, timeout=120).json()
    tracer.flush()
    trace = get_trace(served.state.store, second["trace_id"])
    assert trace is not None
    system = {"role": "system", "content": "You are ACME support. 你是客服。"}
    with_history = [system, {"role": "user", "content": "Hi, my name is Ann. 我叫安。"},
                    {"role": "assistant", "content": first["text"]}, {"role": "user", "content": "What is my name?"}]
    without = [system, {"role": "user", "content": "What is my name?"}]
    want = direct_client(llama).chat.completions.create(model="tiny", messages=with_history, max_tokens=1)
    alone = direct_client(llama).chat.completions.create(model="tiny", messages=without, max_tokens=1)
    assert trace["input_tokens"] == want.usage.prompt_tokens > alone.usage.prompt_tokens


# -- n, stop, max_tokens


@pytest.mark.parametrize("ask", [{"max_tokens": 4}, {"stop": ["\n\n"], "max_tokens": 20}, {"n": 2, "max_tokens": 5},
                                 {"seed": 7, "max_tokens": 6}], ids=["length", "stop", "n", "seed"])
def test_n_stop_seed_and_length_are_relayed_as_the_server_answers(llama, served, ask) -> None:
    direct = direct_client(llama).chat.completions.create(model="tiny", messages=QUESTION, temperature=0,
                                                          **{k: v for k, v in ask.items() if k != "n"})
    relayed = openai_client(served).chat.completions.create(model="local", messages=QUESTION, temperature=0,
                                                            **ask)
    # llama-cpp-python answers one choice whatever `n`; the gateway asks again for the others
    want = [(direct.choices[0].message.content, direct.choices[0].finish_reason)] * ask.get("n", 1)
    assert [(c.message.content, c.finish_reason) for c in relayed.choices] == want
    assert [c.index for c in relayed.choices] == list(range(ask.get("n", 1)))
    assert relayed.usage.completion_tokens == direct.usage.completion_tokens * ask.get("n", 1)


def _letters(llama: str) -> dict[str, int]:
    """A logit bias that makes the first ten capital letters the only likely tokens: sampling among them at
    temperature 1 depends on the seed (the random weights alone always say newlines)."""
    return {str(_token_id(llama, letter)): 100 for letter in "ABCDEFGHIJ"}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_seeded_n_over_llama_cpp_gives_different_reproducible_samples(llama, mode) -> None:
    """llama-cpp-python answers one choice whatever `n`; the gateway asks for the others one by one, choice k
    with seed + k, so the choices are the server's own answers to seeds 7, 8, 9, 10 — not four copies of seed 7."""
    bias = _letters(llama)
    gateway = Gateway({"local": ModelAlias(provider="openai_compat", base_url=llama, model="tiny", max_retries=0,
                                           timeout=120, params={"logit_bias": bias})})
    request = ChatRequest.of("Pick a letter. 选一个字母。", model="local").model_copy(
        update={"n": 4, "seed": 7, "temperature": 1.0, "max_tokens": 6})
    result = gateway.chat(request) if mode == "sync" else asyncio.run(gateway.achat(request))
    direct = [direct_client(llama).chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Pick a letter. 选一个字母。"}], temperature=1.0,
        max_tokens=6, seed=7 + k, logit_bias=bias).choices[0].message.content for k in range(4)]
    assert len(set(direct)) > 1  # the seeds do sample differently
    assert [c.text for c in result.choices] == direct


class SeedEcho(BaseProvider):
    """An in-process sampler whose answer is its seed; with supports_n it answers one choice, as llama.cpp does."""

    name = "seed-echo"

    def chat(self, alias, request, timeout):
        assert request.n == 1 or self.supports_n
        return ProviderResponse(f"seed {request.seed}", make_usage(1, 1), "seed-echo", "stop")


class SeedEchoIgnoresN(SeedEcho):
    supports_n = True


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("provider", [SeedEcho, SeedEchoIgnoresN])
def test_each_choice_requested_on_its_own_gets_its_own_seed(mode, provider) -> None:
    gw = Gateway({"x": ModelAlias(provider="extractive", model="x")})
    gw.register_provider("extractive", lambda alias: provider(alias))
    run = (lambda r: gw.chat(r)) if mode == "sync" else (lambda r: asyncio.run(gw.achat(r)))
    assert [c.text for c in run(ChatRequest.of("q", model="x", n=3, seed=7)).choices] == \
        ["seed 7", "seed 8", "seed 9"]
    assert [c.text for c in run(ChatRequest.of("q", model="x", n=2)).choices] == ["seed None"] * 2

"""An `app:NAME` request whose app redacts its input stores the masked text only: the request's root span used to
keep the raw messages, so the trace's input preview (the traces list, review queues) showed the user's email
although the app span and the model saw `<EMAIL_ADDRESS_…>`. Also: the root span of POST /v1/apps/NAME is named
for the app (`server /v1/apps/docs`), not the route template. Official openai SDK and httpx against a real
server in front of fake_llm."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from flywheel.testing.fake_llm import FakeLLM

PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}
retrieval: {{embedder: none}}
cache: {{exact: false}}
apps:
  docs:
    kind: docs_qa
    model: gpt
    guards:
      input:
        - {{check: pii, entities: [EMAIL_ADDRESS], on_fail: redact}}
"""
PAGE = "# Keys\n\nCreate an API key with `flywheel keys create NAME`. The key is shown once.\n"
EMAIL = "alice.wong@example.com"


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        server.add(r"API key", "Run `flywheel keys create NAME` [1].")
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, llm):
    from server_support import serve_project

    server = serve_project(tmp_path_factory.mktemp("app_input_redaction"), PROJECT.format(base=llm.url),
                           {"keys.md": PAGE})
    yield server
    server.stop()


def _stored(live, trace_id: str) -> tuple[dict, str]:
    from flywheel.tracing import get_trace, tracer

    tracer.flush()
    trace = get_trace(live.state.store, trace_id)
    assert trace is not None
    return trace, json.dumps(trace, ensure_ascii=False, default=str)


def test_chat_completions_to_an_app_stores_the_masked_question_only(live, llm):
    client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(
        model="app:docs", messages=[{"role": "user", "content": f"My email is {EMAIL}, how do I create an API key?"}])
    trace, dumped = _stored(live, reply.id.removeprefix("chatcmpl-"))
    assert EMAIL not in dumped and "alice.wong" not in dumped
    assert trace["input_preview"] and "<EMAIL_ADDRESS" in trace["input_preview"]
    assert "create an API key" in trace["input_preview"]
    assert llm.requests and all(EMAIL not in json.dumps(r) for r in llm.requests)  # the model saw the masked text


def test_the_app_api_root_span_is_named_for_the_app_and_masked(live):
    r = httpx.post(f"{live.url}/v1/apps/docs", json={"input": f"I am {EMAIL}. How do I create an API key?"},
                   timeout=30)
    assert r.status_code == 200, r.text
    trace, dumped = _stored(live, r.json()["trace_id"])
    assert trace["spans"][0]["name"] == "server /v1/apps/docs"
    assert EMAIL not in dumped
    assert "<EMAIL_ADDRESS" in (trace["input_preview"] or "")

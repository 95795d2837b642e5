"""`model: app:NAME` with `stream: true` on /v1/chat/completions streams the app's answer as it comes (before the
fix: the whole answer was run, then sent as one chunk), through the same output guards as /v1/apps/NAME; and a
streamed answer a guard stopped says which checks ran and which model answered (before: `checks: []`,
`models: {}` although the judge and the model were called). Driven by the official openai SDK against a real
uvicorn server in front of fake_llm."""

from __future__ import annotations

import time

import openai
import pytest
from test_pipeline import gateway, judge_policy

from flywheel.apps.chat import ChatApp
from flywheel.testing.fake_llm import FakeLLM

PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}
  down: {{provider: openai_compat, base_url: "http://127.0.0.1:9/v1", model: fake-model, max_retries: 0}}
retrieval: {{embedder: none}}
cache: {{exact: false}}
apps:
  docs:
    kind: docs_qa
    model: gpt
    guards:
      output:
        - {{check: pii, entities: [EMAIL_ADDRESS], on_fail: redact}}
  broken: {{kind: chat, model: down}}
"""
PAGE = """# Models

## Pinning

To pin a model version, set `version:` on the alias. Every result then records the pinned version.
"""
LEAK = "ops.team@example.com"
REPLY = (f"Set `version:` on the alias to pin it [1]. Every result then records the version [1]. "
         f"Write to {LEAK} if it does not. That is all there is to it.")


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        server.add(r"pin a model version", REPLY)
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, llm):
    from server_support import serve_project

    server = serve_project(tmp_path_factory.mktemp("app_stream"), PROJECT.format(base=llm.url), {"models.md": PAGE})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(live):
    return openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)


def test_an_app_answer_streams_sentence_by_sentence_through_its_guards(live, client):
    question = [{"role": "user", "content": "How do I pin a model version?"}]
    whole = client.chat.completions.create(model="app:docs", messages=question)
    chunks = list(client.chat.completions.create(model="app:docs", messages=question, stream=True,
                                                 stream_options={"include_usage": True}))
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) > 1  # as it comes, not one chunk at the end
    assert "".join(texts) == whole.choices[0].message.content
    assert "<EMAIL_ADDRESS>" in whole.choices[0].message.content
    assert all(LEAK not in t and "ops.team" not in t for t in texts)  # redacted in every chunk
    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    extra, expected = final.model_extra["flywheel"], whole.model_extra["flywheel"]
    assert final.choices[0].finish_reason == "stop" and extra["app"] == "docs"
    assert extra["citations"] == expected["citations"] and extra["citations"][0]["source"] == "docs/models.md"
    assert extra["models"] == {"gpt": "fake-model"} and extra["refused"] is False
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0

    from flywheel.tracing import get_trace, tracer

    for _ in range(400):  # the request's span ends after the last byte is sent: poll until it is stored
        tracer.flush()
        trace = get_trace(live.state.store, final.id.removeprefix("chatcmpl-"))
        if trace and trace["spans"][0]["name"] != "docs":
            break
        time.sleep(0.02)
    root = trace["spans"][0]
    assert root["name"] == "server /v1/chat/completions" and trace["app"] == "docs"
    assert [c["name"] for c in root["children"]] == ["docs"]  # the app's run, inside the request's trace


def test_an_app_that_fails_before_any_text_is_an_http_error_not_a_broken_stream(client):
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="app:broken", stream=True,
                                       messages=[{"role": "user", "content": "hello?"}])
    assert err.value.status_code >= 500


def test_a_stream_a_guard_stopped_says_which_checks_ran_and_which_model_answered(llm):
    llm.add(r"<output>.*refund", "It promises a refund.\nVerdict: FAIL", model="judge-model")
    llm.add(r"<output>", "It promises nothing.\nVerdict: PASS", model="judge-model")
    llm.add(r"money back", "Thanks for asking. We are open 9 to 5. You will get a full refund. "
                           "Anything else I can do for you today?", model="fake-model")
    app = ChatApp(gateway=gateway(llm), model="gpt", guards=judge_policy("block"))
    stream = app.stream("Can I get my money back?")
    shown = "".join(stream)
    answer = stream.answer
    assert answer is not None and answer.refused and shown.endswith("[held back]") and "refund" not in shown
    assert answer.models == {"gpt": "fake-model"}  # the model was called, though its stream was cut
    assert [c.name for c in answer.checks] == ["judge"] * len(answer.guard_actions)
    assert [c.passed for c in answer.checks] == [a.passed for a in answer.guard_actions]
    assert answer.checks[-1].passed is False and "refund" in answer.checks[-1].reason
    assert len(answer.checks) == len([r for r in llm.requests if r.get("model") == "judge-model"]) > 1

"""A trace whose answer has n > 1 choices previews the first choice's answer after a `[N choices]` mark (as
`flywheel traces show` heads them: `out: N choices`), in `flywheel traces` and the dashboard's list, never the
JSON of every answer: through `flywheel serve` with the official openai SDK, and through the gateway in-process.
In front of fake_llm."""

from __future__ import annotations

import json

import openai
import pytest
from click.testing import CliRunner

from flywheel.config import ModelAlias
from flywheel.gateway import Gateway
from flywheel.testing.fake_llm import Choices, FakeLLM
from flywheel.tracing import attach_store, get_trace, list_traces, tracer
from flywheel.tracing.store_sink import PREVIEW_CHARS, answer_preview
from flywheel.types import ChatRequest

COLOURS = ("red", "green", "blue")


def _listed(store, trace_id: str) -> dict:
    tracer.flush()
    return next(t for t in list_traces(store, last=500) if t["trace_id"] == trace_id)


def test_served_n3_lists_the_first_answer_with_a_choices_mark(live, server_llm, monkeypatch):
    server_llm.reset()
    server_llm.add(r"pick a colour", Choices(*COLOURS))
    client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt", n=3, messages=[{"role": "user", "content": "pick a colour"}])
    assert [c.message.content for c in raw.parse().choices] == list(COLOURS)
    tid = raw.headers["x-flywheel-trace-id"]
    row = _listed(live.state.store, tid)
    assert row["output_preview"] == "[3 choices] red"
    # `flywheel traces --json` (the list) says the same
    from flywheel.cli import main

    monkeypatch.chdir(live.state.project.root)
    listed = CliRunner().invoke(main, ["traces", "--json", "--last", "500"])
    assert listed.exit_code == 0, listed.output
    assert next(t for t in json.loads(listed.output) if t["trace_id"] == tid)["output_preview"] == "[3 choices] red"
    # the root span holds every choice as the model spans do, so `traces show` prints each under its own label
    trace = get_trace(live.state.store, tid)
    assert trace is not None
    assert trace["spans"][0]["outputs"] == {"content": "red", "choices": list(COLOURS)}


def test_in_process_gateway_n3_lists_the_first_answer_with_a_choices_mark(store):
    with FakeLLM() as llm:
        llm.add(r"pick", Choices(*COLOURS))
        gw = Gateway({"gpt": ModelAlias(provider="openai_compat", model="fake-model", base_url=llm.base_url,
                                        max_retries=0)})
        detach = attach_store(store)
        try:
            result = gw.chat(ChatRequest.of("pick a colour", model="gpt", n=3))
        finally:
            detach()
    assert [c.text for c in result.choices] == list(COLOURS)
    (row,) = [t for t in list_traces(store, last=500) if t["input_preview"] == "pick a colour"]
    assert row["output_preview"] == "[3 choices] red"


@pytest.mark.parametrize(("outputs", "shown"), [
    ({"content": "a", "choices": ["a", "b"]}, "[2 choices] a"),
    ({"content": "", "choices": [{"content": "x", "reasoning": "hidden"}, {"content": "y", "reasoning": "no"}]},
     "[2 choices] x"),  # an attempt span: the answer, never the thinking
    ({"content": "one", "choices": ["one"]}, "one"),
    (["a", "b"], '["a","b"]'),  # a list that is not the choices of a model span stays as it was
])
def test_answer_preview_shapes(outputs, shown):
    assert answer_preview(outputs) == shown


def test_a_long_first_answer_keeps_the_mark_within_the_preview_length():
    shown = answer_preview({"content": "w " * 400, "choices": ["w " * 400, "b"]})
    assert shown is not None and shown.startswith("[2 choices] w w") and len(shown) == PREVIEW_CHARS

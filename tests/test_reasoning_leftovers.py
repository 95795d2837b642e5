"""Leftovers of the reasoning and judge work.

- Several thinking blocks read the same streamed as not: one "\\n" between blocks (Anthropic, Bedrock).
- With n > 1, the attempt span records each choice's reasoning, not the first choice's alone.
- A stored pairwise comparison keeps each pair's `judge_calls`; `compare --show` names the pairs re-asked.
"""
# ruff: noqa: F811 - pytest fixtures imported from test_evals_support are redefined as parameters

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import anthropic.types as at
from click.testing import CliRunner
from test_evals_support import llm, write_project  # noqa: F401 - fixtures

from flywheel.cli import main
from flywheel.config import ModelAlias, Project
from flywheel.evals.comparisons import load_comparison, save_comparison
from flywheel.evals.pairwise import summarize_pairs
from flywheel.gateway import Gateway
from flywheel.gateway.providers.anthropic import AnthropicProvider, _Events
from flywheel.gateway.providers.bedrock_wire import ConverseFold, parse_converse
from flywheel.store import Store
from flywheel.testing.fake_llm import Choices
from flywheel.testing.fake_llm_wire import Reasoned
from flywheel.types import ChatRequest

FIRST, SECOND = "Six sevens.", "Check: 6*7 = 42."

# ------------------------------------------------------------------------------------ several thinking blocks


def _anthropic_delta(index: int, delta: object) -> at.RawContentBlockDeltaEvent:
    return at.RawContentBlockDeltaEvent(type="content_block_delta", index=index, delta=delta)


def test_anthropic_streamed_thinking_blocks_read_as_the_whole_answers():
    blocks = [at.ThinkingBlock(type="thinking", thinking=FIRST, signature="s1"),
              at.TextBlock(type="text", text="Let me check. "),
              at.ThinkingBlock(type="thinking", thinking=SECOND, signature="s2"),
              at.TextBlock(type="text", text="42.")]
    whole = AnthropicProvider._decode(SimpleNamespace(content=blocks, usage=None, model="m", stop_reason="end_turn",
                                                       stop_sequence=None))
    events = [_anthropic_delta(0, at.ThinkingDelta(type="thinking_delta", thinking="Six ")),
              _anthropic_delta(0, at.ThinkingDelta(type="thinking_delta", thinking="sevens.")),
              _anthropic_delta(0, at.SignatureDelta(type="signature_delta", signature="s1")),
              _anthropic_delta(1, at.TextDelta(type="text_delta", text="Let me check. ")),
              _anthropic_delta(2, at.ThinkingDelta(type="thinking_delta", thinking=SECOND)),
              _anthropic_delta(3, at.TextDelta(type="text_delta", text="42."))]
    fold, thoughts, text = _Events(), [], []
    for event in events:
        text.append(fold.take(event))
        if fold.thought:
            thoughts.append(fold.thought)
            fold.thought = None
    assert "".join(text) == whole.text
    assert "".join(thoughts) == whole.reasoning == f"{FIRST}\n{SECOND}"


def _converse(kind: str, data: dict) -> tuple[dict[str, str], bytes]:
    return {":message-type": "event", ":event-type": kind}, json.dumps(data).encode()


def test_bedrock_streamed_thinking_blocks_read_as_the_whole_answers():
    body = {"output": {"message": {"role": "assistant", "content": [
        {"reasoningContent": {"reasoningText": {"text": FIRST, "signature": "s1"}}},
        {"reasoningContent": {"reasoningText": {"text": SECOND, "signature": "s2"}}},
        {"text": "42."}]}}, "stopReason": "end_turn", "usage": {"inputTokens": 1, "outputTokens": 2}}
    whole = parse_converse(200, json.dumps(body).encode(), "claude")
    fold, thoughts, text = ConverseFold(), [], []
    for event in [_converse("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Six "}}}),
                  _converse("contentBlockDelta", {"contentBlockIndex": 0,
                                                  "delta": {"reasoningContent": {"text": "sevens."}}}),
                  _converse("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "s"}}}),
                  _converse("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"reasoningContent": {"text": SECOND}}}),
                  _converse("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"text": "42."}}),
                  _converse("messageStop", {"stopReason": "end_turn"})]:
        text.append(fold.take(event))
        if fold.thought:
            thoughts.append(fold.thought)
            fold.thought = None
    assert "".join(text) == whole.text == "42."
    assert "".join(thoughts) == whole.reasoning == f"{FIRST}\n{SECOND}"


# ------------------------------------------------------------------------------------ n > 1 on the attempt span


def test_the_attempt_span_keeps_each_choices_reasoning(llm, spans):
    llm.add(r"\btwo minds\b", Choices(Reasoned("Red.", 2, thought="Warm colours first."),
                                      Reasoned("Blue.", 2, thought="The sky decides.")))
    gw = Gateway({"gpt": ModelAlias(model="fake-model", base_url=llm.base_url, max_retries=0)})
    try:
        result = gw.chat(ChatRequest.of("two minds", model="gpt", n=2))
    finally:
        gw.close()
    assert result.choices is not None
    (span,) = [s for s in spans if "flywheel.attempt" in s.attributes and s.trace_id == result.trace_id]
    got = {c["content"]: c["reasoning"] for c in span.outputs["choices"]}
    assert got == {c.text: c.reasoning for c in result.choices} == {"Red.": "Warm colours first.",
                                                                     "Blue.": "The sky decides."}
    assert span.outputs["reasoning"] == result.reasoning
    (top,) = [s for s in spans if s.name == "gateway.chat" and s.trace_id == result.trace_id]
    assert "reasoning" not in json.dumps(top.outputs)  # the call's span keeps the answers alone


# ------------------------------------------------------------------------------------ judge calls per stored pair


def _pair(case_id: str, calls: int) -> dict:
    return {"case_id": case_id, "question": "q?", "reference": None, "answer_a": "a", "answer_b": "b",
            "tenant": None, "trace_id": None, "replay_trace_id": None, "outcome": "win", "verdicts": ["A", "B"],
            "reasons": ["r1", "r2"], "preferences": ["a", "a"], "consistent": True, "len_a": 1, "len_b": 1,
            "length_ratio": 1.0, "flagged": False, "reason": "r1", "error": None, "judge_cost_usd": 0.01,
            "judge_calls": calls}


def test_a_stored_comparison_keeps_each_pairs_judge_calls(tmp_path: Path, llm):
    write_project(tmp_path, llm)
    report = summarize_pairs([_pair("plain", 2), _pair("hedged", 3)], a="run-a", b="run-b", judge="judge",
                             judge_model="fake-judge", max_length_diff=None, length_action="flag")
    store = Store.open(Project.load(tmp_path).store_url)
    try:
        cid = save_comparison(store, report, kind="pairwise")
        stored = load_comparison(store, cid)
    finally:
        store.close()
    assert [p["judge_calls"] for p in stored["pairs"]] == [2, 3] and stored["judge_calls"] == 5
    assert "pair_judge_calls" not in stored
    shown = CliRunner().invoke(main, ["--project", str(tmp_path), "compare", "--show", cid[:8]],
                               catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert "re-asked in 1 pair(s): hedged (3 calls)" in " ".join(shown.stdout.split())

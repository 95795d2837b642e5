"""`flywheel traces show` prints a span whose answer is a tool call as `→ name(arguments)` (before: the raw JSON of
the output dict, or nothing for a list of messages whose last turn only calls tools)."""

from __future__ import annotations

from flywheel.cli.traces import _outputs

CALL = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "巴黎"}'}}


def test_tool_calls_are_shown_as_calls():
    assert _outputs({"content": "", "tool_calls": [CALL]}) == "→ get_weather(city=巴黎)"
    turns = [{"role": "user", "content": "天气？"}, {"role": "assistant", "content": "Let me check.", "tool_calls": [CALL]}]
    assert _outputs(turns) == "Let me check.  → get_weather(city=巴黎)"
    broken = {"tool_calls": [{"function": {"name": "f", "arguments": "{not json"}}]}
    assert _outputs(broken) == "→ f({not json)"


def test_other_outputs_are_unchanged():
    assert _outputs("plain") == "plain"
    assert _outputs({"a": 1}) == '{"a": 1}'
    assert _outputs([{"role": "assistant", "content": "done"}]) == "done"


def test_an_app_answer_shows_its_text_not_the_wrapper():
    """The root span of `flywheel ask` stores {"text", "citations"}: `traces show` prints the answer."""
    answer = {"text": "Rotate keys every 90 days [1].", "citations": [{"id": 1, "source": "keys.md"}]}
    assert _outputs(answer) == "Rotate keys every 90 days [1].  [1 source(s)]"
    assert _outputs({"text": "我不知道。", "citations": []}) == "我不知道。"

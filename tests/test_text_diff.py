"""The one word diff (flywheel.text.diff): CJK per character, everything else per word; the evals report's HTML
and `flywheel prompts diff` both use it."""

from __future__ import annotations

import pytest

from flywheel.evals.textdiff import diff_html
from flywheel.prompts import Prompt
from flywheel.prompts.diff import prompt_diff, render_word_diff
from flywheel.text.diff import tokens, word_diff


@pytest.mark.parametrize("text", ["Set `version:` on the alias.", "请简短回答。  Use [1]!", "", "日本語のテキスト"])
def test_tokens_join_back_to_the_text(text):
    assert "".join(tokens(text)) == text


def test_cjk_is_one_token_per_character_and_latin_one_per_word():
    assert tokens("用中文回答 in English") == ["用", "中", "文", "回", "答", " ", "in", " ", "English"]


def test_word_diff_runs():
    assert word_diff("one two three", "one 2 three") == [
        ("equal", "one "), ("delete", "two"), ("insert", "2"), ("equal", " three")]
    assert word_diff("same", "same") == [("equal", "same")]


def test_a_chinese_prompt_diff_is_per_character():
    old = Prompt(name="zh", template="{{question}}", system="请简短回答，并引用来源。")
    new = Prompt(name="zh", template="{{question}}", system="请详细回答，并引用来源。")
    changes = prompt_diff(old, new)
    assert list(changes) == ["system"]
    assert render_word_diff(changes["system"]) == "请[-简短-]{+详细+}回答，并引用来源。"


def test_the_html_diff_uses_the_same_runs():
    assert diff_html("请简短回答", "请详细回答") == "请<del>简短</del><ins>详细</ins>回答"
    assert diff_html("a <b>", "a <i>") == "a &lt;<del>b</del><ins>i</ins>&gt;"

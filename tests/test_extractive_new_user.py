"""A new user's own documents answered offline (docs-QA app, extractive model, BM25): a Chinese word jieba cuts
into single characters in the question (年假 → 年 假) still matches it; an acronym of the question (US) is
found where a source spells it out ("United States"), while one no source spells still declines; and a
sentence under a section about the question beats one that mentions its words in passing elsewhere."""

from __future__ import annotations

import pytest
from docs_support import bm25_runtime, offline_app

from flywheel.gateway.providers.extractive import extractive_answer, source_sections
from flywheel.text import segment

PAGES = {
    "请假制度.txt": """请假制度

一、年假
员工入职满一年后享有带薪年假。工作满1年不满10年的，年假为5天；满10年不满20年的，年假为10天。
当年未休完的年假可以结转到下一年度，最多结转5天，结转的年假须在次年3月31日前休完，逾期作废。

二、事假
事假为无薪假期，每年累计不超过15天。请事假须提前三个工作日在系统中提交申请，经直属主管批准。
""",
    "travel-policy.md": """# Travel Policy

## Booking

All business trips must be booked through the company travel portal at least 14 days in advance.

## Meal allowance

Employees travelling on company business receive a daily meal allowance. In the United States the meal
allowance is 75 dollars per day. In Europe the allowance is 60 euros per day. Alcohol is not reimbursed.

## Hotels

Hotel stays are reimbursed up to 200 dollars per night in major cities.
""",
    "配置.md": """# 配置：flywheel.yaml

## models

### 备用模型

要添加备用模型，把它定义为另一个别名，并把这个别名列在它所备份的别名的 `fallbacks:` 下。备用别名未知或备用关系形成循环都是配置错误。
""",
    "追踪.md": """# 链路追踪与网关流式调用

## 网关的流式调用

- 在输出任何文字之前断开的流，会像非流式调用一样重试或切换到备用模型。
- 实测：主模型 20% 的流式请求失败时，配置健康的备用模型后，60 次流式调用失败 0 次。
""",
}
DECLINED = ("提供的资料没有涵盖这个问题", "The sources do not cover this question")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The user's documents, ingested BM25 only, asked through the docs-QA app with the extractive model."""
    with bm25_runtime(tmp_path_factory.mktemp("new_user"), PAGES) as rt:
        yield offline_app(rt.retriever)


def test_a_word_jieba_cuts_into_characters_still_matches(app):
    assert segment("年假可以结转到明年吗")[:2] == ["年", "假"]  # jieba does not know the word
    for question in ("年假可以结转到明年吗？", "年假可以结转几天？"):
        answer = app.run(question)
        assert not answer.refused, (question, answer.text)
        assert "最多结转5天" in answer.text.splitlines()[1]
    answer = app.run("年假有几天？")  # nothing but the characters jieba cut one by one
    assert not answer.refused and "年假为5天" in answer.text, answer.text


def test_an_acronym_matches_the_words_it_stands_for(app):
    answer = app.run("What is the meal allowance in the US?")
    assert not answer.refused, answer.text
    assert "In the United States the meal" in answer.text.splitlines()[1]


def test_an_acronym_no_source_spells_out_still_declines(app):
    answer = app.run("What is the meal allowance in the UK?")
    assert answer.refused and answer.text.startswith(DECLINED)


def test_two_letters_need_capitalised_words():
    from flywheel.gateway.providers.extractive_match import spells_out

    assert spells_out("US", "In the United States the allowance")
    assert not spells_out("US", "you can use sqlite here")
    assert spells_out("SLA", "our service level agreement")  # three letters: lowercase words spell it too
    sources = {1: "The meal allowance can use some of the budget."}
    assert extractive_answer("What is the meal allowance in the US?", sources).startswith(DECLINED)


def test_the_section_about_the_question_comes_before_a_mention_in_passing(app):
    answer = app.run("如何配置模型的备用方案？")
    assert not answer.refused, answer.text
    assert "备用别名未知或备用关系形成循环都是配置错误" in answer.text.splitlines()[1]


def test_source_sections_keep_the_whole_heading_path():
    prompt = "### [1] docs/配置.md 配置：flywheel.yaml > models > 备用模型, lines 3–5\ntext\n\nQuestion: x"
    assert source_sections(prompt) == {1: "配置：flywheel.yaml > models > 备用模型"}

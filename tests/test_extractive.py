"""The offline `extractive` model: quotes the best-matching source sentences with [n], through the real gateway."""

from __future__ import annotations

import pytest

from flywheel.checks import CheckContext, build
from flywheel.config import ModelAlias
from flywheel.gateway import Gateway
from flywheel.gateway.providers.extractive import find_question, parse_sources, split_sentences
from flywheel.prompts import PromptRegistry, SourceItem
from flywheel.types import ChatRequest

PASSAGES = [
    SourceItem(1, "Every result records the alias, the resolved model and the cost.\n"
                  "Traces are stored in the project's SQLite file.", "docs/tracing.md", "Tracing"),
    SourceItem(2, "Model aliases live under `models:` in flywheel.yaml. To pin a model version, set\n"
                  "`version:` on the alias. Each alias may list `fallbacks:`, tried in order when every\n"
                  "retry failed.", "docs/configuration.md", "Models"),
    SourceItem(3, "flywheel 默认完全离线运行。内置的抽取式模型会引用检索到的原文句子，并标注来源编号。\n"
                  "安装本地嵌入模型：pip install 'flywheel[local]'。", "docs/zh/quickstart.md", "快速开始"),
]


@pytest.fixture(scope="module")
def gateway():
    return Gateway({"default": ModelAlias(provider="extractive"),
                    "claude_like": ModelAlias(provider="extractive", family="anthropic")})


def ask(gateway, question, alias="default", metadata=True):
    family = "anthropic" if alias == "claude_like" else "openai"
    rendered = PromptRegistry().get("docs_qa").render(sources=PASSAGES, family=family, question=question)
    meta = {"question": question} if metadata else {}
    return gateway.chat(ChatRequest(messages=rendered.messages(), model=alias, metadata=meta))


@pytest.mark.parametrize("alias", ["default", "claude_like"])
def test_quotes_and_cites_the_passage_that_answers(gateway, alias):
    result = ask(gateway, "How do I pin a model version?", alias)
    assert result.provider == "extractive"
    first_quote = result.text.splitlines()[1]
    assert first_quote == "- “To pin a model version, set `version:` on the alias.” [2]"
    assert "[1]" not in result.text and "[3]" not in result.text
    assert result.usage.input_tokens > 50 and result.usage.output_tokens > 5


def test_every_answer_passes_the_grounding_check(gateway):
    for question in ["How do I pin a model version?", "When are fallbacks tried?", "如何离线运行？",
                     "Where are traces stored?"]:
        text = ask(gateway, question).text
        check = build("grounding", {"require_citations": True}).run(
            text, CheckContext(sources=[p.text for p in PASSAGES]))
        assert check.passed, (question, text, check.reason)


def test_chinese_question_gets_a_chinese_answer_from_the_chinese_source(gateway):
    text = ask(gateway, "flywheel 如何离线运行？").text
    assert text.startswith("根据资料：")
    assert "「flywheel 默认完全离线运行。」 [3]" in text


def test_unrelated_question_says_the_sources_do_not_cover_it(gateway):
    assert ask(gateway, "What is the boiling point of mercury?").text.startswith("The sources do not cover")
    assert ask(gateway, "水银的沸点是多少？").text.startswith("提供的资料没有涵盖")


def test_question_is_found_in_the_prompt_without_metadata(gateway):
    with_meta = ask(gateway, "When are fallbacks tried?")
    without = ask(gateway, "When are fallbacks tried?", metadata=False)
    assert with_meta.text == without.text and "[2]" in without.text


def test_deterministic(gateway):
    answers = {ask(gateway, "What does every result record?").text for _ in range(3)}
    assert len(answers) == 1


def test_no_sources_in_the_prompt(gateway):
    result = gateway.chat(ChatRequest.of("What is flywheel?"))
    assert "No sources were given" in result.text


def test_parse_sources_in_both_styles():
    prompt = PromptRegistry().get("docs_qa")
    for family in ("openai", "anthropic"):
        user = prompt.render(sources=PASSAGES, family=family, question="q?").user
        assert parse_sources(user) == {p.id: p.text for p in PASSAGES}
        req = ChatRequest.of(user)
        assert find_question(req) == "q?"


def test_sentence_splitting_english_chinese_lists_tables_and_wrapping():
    text = ("# Heading\nFirst sentence wraps\nacross lines. Second one, e.g. with an abbreviation! Third?\n\n"
            "- item one\n- item two\n\n中文第一句。中文第二句！\n```\nflywheel ingest docs/\n```\n"
            "| key | meaning |\n|---|---|\n| `k` | hits |")
    assert split_sentences(text) == [
        "First sentence wraps across lines.", "Second one, e.g. with an abbreviation!", "Third?",
        "item one", "item two", "中文第一句。", "中文第二句！", "| key | meaning |", "| `k` | hits |"]


def test_code_is_not_quoted_even_when_a_chunk_starts_inside_a_code_block():
    from flywheel.gateway.providers.extractive import extractive_answer

    cut_code = ('def test_pin():\n    ask("How do I pin a model version?")\n```\n\n'
                "To pin a model version, set `version:` on the alias.")
    answer = extractive_answer("How do I pin a model version?", {1: cut_code})
    assert "def test_pin" not in answer and "“To pin a model version, set `version:` on the alias.” [1]" in answer
    yaml_only = 'id: pin-version\nvars: {question: "How do I pin a model version?"}\n```'
    assert extractive_answer("How do I pin a model version?", {1: yaml_only}).startswith("The sources do not")


def test_one_shared_word_does_not_answer_a_question():
    from flywheel.gateway.providers.extractive import extractive_answer

    assert extractive_answer("How do I reset my password?",
                             {1: "Values under keys named password are scrubbed from traces."}
                             ).startswith("The sources do not cover")
    assert extractive_answer("什么是提示词版本？", {1: "每次提问都是一条追踪记录，包含检索、提示词和模型调用。"}
                             ).startswith("提供的资料没有涵盖")


def test_quotes_prefer_the_question_language():
    from flywheel.gateway.providers.extractive import extractive_answer

    sources = {1: "flywheel 可以完全离线运行，flywheel 是一个平台。", 2: "flywheel is a platform for LLM apps."}
    answer = extractive_answer("What is flywheel as a platform?", sources)
    assert "[2]" in answer and "[1]" not in answer
    assert "[1]" in extractive_answer("flywheel 是什么平台？", sources)

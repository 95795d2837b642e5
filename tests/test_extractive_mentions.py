"""The offline extractive model does not answer from what a sentence only mentions: a piece of an identifier
("CI" is not the `ci` of `bootstrap_ci`), a quoted example question (“发票什么时候发送”), a link's target, or — for
a question in another script than every source — code and names inside the other language's sentences, where
it says it cannot match across languages instead. Cases from an audit of this repository's own docs."""

from __future__ import annotations

import pytest

from flywheel.apps.docs_qa import DocsQA
from flywheel.apps.refusal import declined
from flywheel.apps.runtime import Runtime
from flywheel.config import ModelAlias, Project
from flywheel.gateway import Gateway
from flywheel.gateway.providers.extractive import extractive_answer
from flywheel.prompts import PromptRegistry

NOT_COVERED = ("提供的资料没有涵盖这个问题", "The sources do not cover this question")
CROSS = ("无法跨语言匹配", "I can't match this question to the documents")


# ------------------------------------------------------------------ names match whole
@pytest.mark.parametrize("question", ["如何在 CI 里运行评测？", "How do I run evals in CI?"])
def test_a_name_in_the_question_is_not_a_piece_of_an_identifier(question):
    sources = {1: "配对比较给出修复数和退化数。区间为每个用例差值的 `bootstrap_ci`。",
               2: "The paired comparison counts fixes and regressions; the interval is `bootstrap_ci` of the "
                  "per-case differences."}
    sections = {1: "评测", 2: "Evals"}
    assert extractive_answer(question, sources, sections=sections).startswith(NOT_COVERED)


def test_a_name_still_matches_a_whole_word_and_ordinary_words_still_match_pieces():
    sources = {1: "`flywheel eval` 在通过率低于阈值时以非零状态退出，所以可以在 CI 里运行评测并拦下合并。",
               2: "Call `register_provider(name, cls)` once at import time to add your own provider class."}
    answer = extractive_answer("如何在 CI 里运行评测？", sources)
    assert "可以在 CI 里运行评测" in answer and "[1]" in answer
    answer = extractive_answer("How do I register a provider class?", sources)
    assert "register_provider" in answer and "[2]" in answer


# ------------------------------------------------------------------ examples are mentions
def test_a_quoted_example_question_is_not_an_answer():
    sources = {1: "“发票什么时候发送”里的“发送”出现在文档的“电子邮件发送”之中，所以账单 FAQ 能回答它。",
               2: 'A question such as "How do I reset a forgotten password?" is matched by its content words.'}
    assert extractive_answer("發票怎麼開？", sources).startswith(NOT_COVERED)
    assert extractive_answer("How can I reset my password?", sources).startswith(NOT_COVERED)


def test_an_inline_code_example_question_is_not_an_answer():
    sources = {1: "The docs ask `How do I reset a password?` as an example of a question."}
    assert extractive_answer("How can I reset my password?", sources).startswith(NOT_COVERED)


def test_the_arguments_of_a_call_in_inline_code_are_not_content():
    sources = {1: "| `llm.reply(pattern, text, model=None)` | first matching rule wins; an OpenAI request gets it |",
               2: "Any OpenAI-compatible endpoint works: add a model alias with `provider: openai_compat`."}
    answer = extractive_answer("How do I add an OpenAI model?", sources)
    assert "[2]" in answer and "[1]" not in answer


def test_a_quoted_name_is_still_content():
    sources = {1: "登录后在“我的订单”页面可以看到全部订单，每个订单都有唯一的订单号。"}
    answer = extractive_answer("在哪里可以看到我的订单？", sources)
    assert "“我的订单”页面" in answer and "[1]" in answer


def test_a_link_target_is_not_content():
    sources = {1: "Read the [user guide](dashboard.md) before you open it for the first time."}
    assert extractive_answer("How do I open the dashboard?", sources).startswith(NOT_COVERED)


# ------------------------------------------------------------------ another script than the question
ZH_ONLY = {
    1: "中文文档：[configuration.md](configuration.md)、[server.md](server.md)、[dashboard.md](dashboard.md)、"
       "[review.md](review.md)。",
    2: "名为 `default` 的别名总是存在：你没有定义它时，它就是离线的 `extractive` 模型。",
}


@pytest.mark.parametrize("question", ["How do I start the dashboard?", "What is the extractive model?"])
def test_an_english_question_over_chinese_sources_says_it_cannot_match_across_languages(question):
    answer = extractive_answer(question, ZH_ONLY)
    assert answer.startswith(CROSS[1]) and "Chinese" in answer and "translate: auto" in answer
    assert declined(answer)


def test_a_chinese_question_over_english_sources_says_so_in_chinese():
    sources = {1: "The `extractive` model is the offline default: it quotes the sources."}
    answer = extractive_answer("离线模型会引用什么？", sources)
    assert answer.startswith(CROSS[0]) and "英文" in answer
    assert declined(answer)


def test_a_source_in_the_question_language_is_still_quoted_among_others():
    sources = {**ZH_ONLY, 3: "The `extractive` model is the offline default: it quotes the sources."}
    answer = extractive_answer("What is the extractive model?", sources)
    assert "offline default" in answer and "[3]" in answer and "离线" not in answer


PAGES = ["getting-started", "configuration", "gateway", "retrieval", "tracing", "cache", "server", "dashboard", "review", "monitor",
         "drift", "prompts", "workflows"]


@pytest.fixture(scope="module")
def chinese_docs(tmp_path_factory):
    """Chinese docs only, the relevance floor (and with it the retriever's language rule) off: what an English
    question finds is Chinese text sharing its Latin page names, as the real docs/zh/ index page does."""
    root = tmp_path_factory.mktemp("zh-only")
    (root / "docs").mkdir()
    links = "、".join(f"[{name}.md]({name}.md)" for name in PAGES)
    (root / "docs" / "index.md").write_text(
        f"# 文档\n\n中文文档：{links}。\n\n## 仪表盘\n\n运行 `flywheel serve` 后，在浏览器里打开仪表盘。\n",
        encoding="utf-8")
    (root / "flywheel.yaml").write_text("retrieval: {embedder: none, min_relevance: null}\n", encoding="utf-8")
    project = Project.load(root)
    from flywheel.retrieval.ingest import ingest

    with Runtime(project) as rt:
        ingest([root / "docs"], rt.store, project.config, root=root)
        yield rt


def test_the_docs_qa_app_refuses_an_english_question_over_chinese_docs(chinese_docs):
    app = DocsQA(retriever=chinese_docs.retriever, gateway=Gateway({"default": ModelAlias(provider="extractive")}),
                 prompt=PromptRegistry().get("docs_qa"))
    answer = app.run("How do I start the dashboard?")
    assert answer.text.startswith(CROSS[1]) and answer.refused and not answer.citations
    answer = app.run("如何打开仪表盘？")
    assert not answer.refused and "打开仪表盘" in answer.text

"""The offline extractive model and a question that carries the asker's own details: "How do I revoke an API
key? Mail me at zoe@mail.test", "怎么吊销 API 密钥？请发邮件到 zoe@mail.test 联系我", "电话 13812345678". An e-mail
address, a phone number — or the placeholder an input `pii` redact guard puts in their place
(`<EMAIL_ADDRESS_1_qhzvk>`) — says how to reach the asker, not what they ask: the model answers as it does
without them, with or without the guard, in both languages. An unseen product name or version still declines
(tests/test_extractive_unseen_identifiers.py has the identifier rule)."""

from __future__ import annotations

import pytest
from docs_support import bm25_runtime, offline_app

from flywheel.apps.runtime import Runtime
from flywheel.checks.pii import asked_part
from flywheel.config import Project
from flywheel.gateway.providers.extractive import extractive_answer
from flywheel.retrieval.ingest import ingest

PAGES = {
    "en/keys.md": """# API keys

## Revoking a key

Run `flywheel keys revoke ID` to revoke an API key. A revoked key stops working on the next request, and its
dashboard sessions end with it.

## Creating a key

Run `flywheel keys create --name NAME` to create an API key for a tenant.
""",
    "en/mail.md": """# Notifications

## E-mail alerts

Alerts can be sent by e-mail to an address you choose, and a phone number can receive them as text messages.
""",
    "zh/keys.md": """# API 密钥

## 吊销密钥

运行 `flywheel keys revoke ID` 吊销 API 密钥。吊销后的密钥在下一次请求时失效，它的控制台会话也随之结束。

## 创建密钥

运行 `flywheel keys create --name NAME` 为租户创建 API 密钥。
""",
    "zh/mail.md": """# 通知

## 邮件提醒

告警可以通过邮件发送到你指定的地址，也可以用短信发到手机或电话号码上。请联系管理员开通。
""",
}
EN_SOURCES = {1: PAGES["en/keys.md"].split("## Revoking a key", 1)[1].split("##", 1)[0].strip()}
ZH_SOURCES = {1: PAGES["zh/keys.md"].split("## 吊销密钥", 1)[1].split("##", 1)[0].strip()}
SECTIONS = {1: "Revoking a key"}
ZH_SECTIONS = {1: "吊销密钥"}
DECLINED = ("The sources do not cover this question", "提供的资料没有涵盖这个问题",
            "无法跨语言匹配", "I can't match this question to the documents")  # asked of the other language

EN_ASKED = [
    "How do I revoke an API key? Mail me at zoe@mail.test",
    "How do I revoke an API key? Call me on +1 415 555 0132.",
    "How do I revoke an API key for zoe@mail.test?",
    "How do I revoke an API key? Mail me at <EMAIL_ADDRESS_1_qhzvk>",  # as the redact guard hands it on
    "How do I revoke an API key? Call me on <PHONE_NUMBER_1>.",  # as a promoted eval case holds it
]
ZH_ASKED = [
    "如何吊销 API 密钥？请发邮件到 zoe@mail.test 联系我",
    "如何吊销 API 密钥？我的手机 13812345678",
    "如何吊销 API 密钥？电话 13812345678，谢谢",
    "如何吊销 API 密钥？请发邮件到 <EMAIL_ADDRESS_1_qhzvk> 联系我",
    "如何吊销 API 密钥？我的手机 <CN_MOBILE_1_qhzvk>",
]


# ------------------------------------------------------------------ the model, given the sources
@pytest.mark.parametrize("question", EN_ASKED)
def test_english_contact_details_do_not_make_the_model_decline(question):
    answer = extractive_answer(question, EN_SOURCES, sections=SECTIONS)
    assert "flywheel keys revoke ID" in answer and "[1]" in answer, answer


@pytest.mark.parametrize("question", ZH_ASKED)
def test_chinese_contact_details_do_not_make_the_model_decline(question):
    answer = extractive_answer(question, ZH_SOURCES, sections=ZH_SECTIONS)
    assert "flywheel keys revoke ID" in answer and "[1]" in answer, answer


@pytest.mark.parametrize("question,sources,sections", [
    ("How do I revoke a Zendesk API key? Mail me at zoe@mail.test", EN_SOURCES, SECTIONS),  # a product
    ("How do I revoke an API key in version 7.3? Mail me at <EMAIL_ADDRESS_1_qhzvk>", EN_SOURCES, SECTIONS),
    ("如何吊销 Zendesk 的 API 密钥？请发邮件到 zoe@mail.test 联系我", ZH_SOURCES, ZH_SECTIONS),
    ("如何吊销 Zendesk 的 API 密钥？我的手机 <CN_MOBILE_1_qhzvk>", ZH_SOURCES, ZH_SECTIONS),
])
def test_an_unseen_name_still_declines_beside_contact_details(question, sources, sections):
    assert extractive_answer(question, sources, sections=sections).startswith(DECLINED)


@pytest.mark.parametrize("question", ["zoe@mail.test", "<EMAIL_ADDRESS_1_qhzvk>", "13812345678？",
                                      "请发邮件到 zoe@mail.test 联系我"])
def test_a_question_that_is_only_contact_details_is_still_declined(question):
    for sources, sections in ((EN_SOURCES, SECTIONS), (ZH_SOURCES, ZH_SECTIONS)):
        assert extractive_answer(question, sources, sections=sections).startswith(DECLINED)


def test_what_is_left_of_a_question_without_the_askers_details():
    assert asked_part("How do I revoke an API key? Mail me at zoe@mail.test") == ("How do I revoke an API key?",
                                                                                    True)
    assert asked_part("怎么轮换 API 密钥？电话 <CN_MOBILE_1_qhzvk>") == ("怎么轮换 API 密钥？", True)
    kept, found = asked_part("我的手机 13812345678 收不到验证码，怎么办？")  # one sentence: only the number goes
    assert found and "13812345678" not in kept and "收不到验证码" in kept
    assert asked_part("What is order 20240101001?") == ("What is order 20240101001?", False)  # not personal


# ------------------------------------------------------------------ the docs-QA app, with and without the guard
@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    with bm25_runtime(tmp_path_factory.mktemp("personal"), PAGES) as rt:
        yield rt


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """The same pages, the docs-QA app behind an input `pii` redact guard."""
    root = tmp_path_factory.mktemp("personal_guarded")
    for name, text in PAGES.items():
        path = root / "docs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (root / "flywheel.yaml").write_text(
        "retrieval: {embedder: none}\n"
        "models:\n  default: {provider: extractive}\n"
        "apps:\n  docs_qa:\n    model: default\n    guards:\n      input:\n"
        "        - {check: pii, on_fail: redact}\n", encoding="utf-8")
    project = Project.load(root)
    with Runtime(project) as rt:
        ingest([root / "docs"], rt.store, project.config, root=root)
        yield rt.app("docs_qa", cache=False)


@pytest.mark.parametrize("question,source", [*((q, "docs/en/keys.md") for q in EN_ASKED[:3]),
                                             *((q, "docs/zh/keys.md") for q in ZH_ASKED[:3])])
def test_the_offline_app_answers_without_the_guard(runtime, question, source):
    answer = offline_app(runtime.retriever).run(question)
    assert not answer.refused, answer.text
    assert answer.citations[0].source == source and "flywheel keys revoke ID" in answer.text


@pytest.mark.parametrize("question,source", [*((q, "docs/en/keys.md") for q in EN_ASKED[:3]),
                                             *((q, "docs/zh/keys.md") for q in ZH_ASKED[:3])])
def test_the_offline_app_answers_behind_the_redact_guard(guarded, question, source):
    answer = guarded.run(question)
    assert not answer.refused, answer.text
    assert answer.citations[0].source == source and "flywheel keys revoke ID" in answer.text
    assert any(a.check == "pii" and a.action == "redact" for a in answer.guard_actions)


@pytest.mark.parametrize("question", ["How do I revoke a Zendesk API key? Mail me at zoe@mail.test",
                                      "如何吊销 Zendesk 的 API 密钥？请发邮件到 zoe@mail.test 联系我"])
def test_an_unseen_product_is_still_refused_behind_the_guard(guarded, question):
    assert guarded.run(question).refused

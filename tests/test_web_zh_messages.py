"""The dashboard's dynamic messages on Chinese pages: 404 texts, the core's errors while labelling, building a
queue or adding a trace to a suite, and the validation messages of the pages' URLs and forms are shown in Chinese
(flywheel.web.message_i18n); the English pages, the JSON twins and the core keep their English text. Its own
server (web_support.start_server): the queues and labels made here touch no other module."""

from __future__ import annotations

import html
import re

import httpx
import pytest
from web_support import ADMIN_KEY, login, start_server, trace_id

from flywheel.errors import UserError
from flywheel.web import message_i18n

pytest.importorskip("playwright")
from playwright.sync_api import expect

MISSING = "f" * 32
ZH = {"Authorization": f"Bearer {ADMIN_KEY}", "Accept-Language": "zh-CN,zh;q=0.9"}
EN = {"Authorization": f"Bearer {ADMIN_KEY}", "Accept-Language": "en-US"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    web = start_server(tmp_path_factory.mktemp("zh-messages"))
    yield web
    web.live.stop()


def english_sentences(text: str) -> list[str]:
    """Runs of 3+ English words left in `text`, outside quoted ids, `code` and --options."""
    text = re.sub(r"`[^`]*`|'[^']*'|\"[^\"]*\"|--[\w-]+", " ", html.unescape(text))
    return re.findall(r"[A-Za-z]+(?: [A-Za-z]+){2,}", text)


def assert_chinese(text: str, *expected: str) -> None:
    assert re.search(r"[\u4e00-\u9fff]", text), text
    assert english_sentences(text) == [], text
    for part in expected:
        assert part in text, text


def _element(page: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}"[^>]*>(.*?)</p>', page, re.DOTALL)
    assert m, page[:2000]
    return html.unescape(re.sub(r"<[^>]+>", "", m.group(1)))


def _invalid(page: str, name: str) -> str:
    m = re.search(rf'data-invalid="{name}"[^>]*>(.*?)</(?:span|p)>', page, re.DOTALL)
    assert m, page[:3000]
    return html.unescape(m.group(1))


def test_every_message_key_has_both_languages_and_unknown_text_stays_english():
    assert set(message_i18n.EN) == set(message_i18n.ZH)
    keys = {key for _, key, _ in message_i18n.PATTERNS}
    assert keys == set(message_i18n.EN)
    unknown = "something nobody mapped went wrong here"
    assert message_i18n.localize("zh", unknown) == unknown
    assert message_i18n.localize("en", "no trace with id 'abc'") == "no trace with id 'abc'"
    assert message_i18n.localize("zh", "no trace with id 'abc'") == "没有 ID 为 'abc' 的追踪"
    err = UserError("a queue named 'daily' already exists", hint="choose another --name, or omit it for a dated one")
    assert message_i18n.localize_error("en", err) == "a queue named 'daily' already exists " \
        "(choose another name, or leave the Name field empty for a dated one)"  # the form's field, not --name
    assert_chinese(message_i18n.localize_error("zh", err), "'daily'")
    # a pattern tied to an exception type does not claim another type's message
    from flywheel.feedback.queues import ConflictError

    text = "ana already labelled item ab12"
    assert message_i18n.localize("zh", text, UserError(text)) == text
    assert_chinese(message_i18n.localize("zh", text, ConflictError(text)), "ana", "ab12")


SAMPLE = {"n": "3", "low": "1", "high": "9", "kind": "binary", "side": "base", "what": "reason", "choices": "'a' or 'b'",
          "rest": "", "a": "x1", "b": "x2", "example": "{{question}}", "window": "1m", "who": "ana", "id": "ab12",
          "ids": "ab12, cd34", "scope": "app 'support'", "checks": "judge, exact", "known": "small, big",
          "detail": "ValueError: x", "strategy": "'mixed'", "apps": "support",
          "cmd": "`flywheel promote --traces ab12 --to evals/x.yaml --target app:NAME`"}
WHAT = {"cannot_read": "--window", "no_prompt_ref": "label"}


@pytest.mark.parametrize("key", sorted(message_i18n.EN))
def test_each_english_message_has_its_chinese_text(key):
    """Every mapped message, built from its English template, comes out Chinese with its parameters kept."""
    pattern = next(p for _, k, p in message_i18n.PATTERNS if k == key)
    names = re.findall(r"\(\?P<(\w+)>", pattern)
    values = {n: "'v-1'" if f"(?P<{n}>(?:'" in pattern else SAMPLE[n] for n in names}
    if key in WHAT:
        values["what"] = WHAT[key]
    english = message_i18n.EN[key].format(**values)
    source = next(kind for kind, k, _ in message_i18n.PATTERNS if k == key)
    chinese = message_i18n.localize("zh", english, None if source is object else source(english))
    assert chinese != english
    assert_chinese(chinese, *[v for n, v in values.items() if n in ("id", "who", "name", "spec") and v])


@pytest.mark.parametrize("path, expected", [
    (f"/ui/traces/{MISSING}", MISSING), ("/ui/prompts/no-such-prompt", "no-such-prompt"),
    ("/ui/review/no-such-queue", "no-such-queue"), (f"/ui/evals/{MISSING}", MISSING),
    ("/ui/sessions/no-such-session", "no-such-session"), (f"/ui/playground?trace={MISSING}", MISSING),
    (f"/ui/review/new?trace={MISSING}", MISSING), ("/ui/review/no-such-queue/agreement", "no-such-queue"),
    (f"/ui/evals/compare?base={MISSING}&cand={MISSING}", MISSING)])
def test_404_pages_in_chinese_and_english_twins(server, path, expected):
    zh = httpx.get(server.url + path, headers=ZH, timeout=30)
    assert zh.status_code == 404
    assert_chinese(_element(zh.text, "error-message"), expected)
    en = httpx.get(server.url + path, headers=EN, timeout=30)
    assert en.status_code == 404 and re.search(r"no [a-z ]+ '", _element(en.text, "error-message"))


def test_404_fragments_in_chinese_and_json_twins_in_english(server):
    span = httpx.get(f"{server.url}/ui/spans/{MISSING[:16]}/body", headers=ZH, timeout=30)
    assert span.status_code == 404
    assert_chinese(span.text, MISSING[:16])
    actions = httpx.get(f"{server.url}/ui/traces/{MISSING}/actions", headers=ZH, timeout=30)
    assert actions.status_code == 404
    assert_chinese(actions.text, MISSING)
    twin = httpx.get(f"{server.url}/ui/traces/{MISSING}.json", headers=ZH, timeout=30)
    assert twin.status_code == 404 and twin.json()["error"]["message"] == f"no trace with id '{MISSING}'"


def test_validation_messages_in_chinese(server):
    cases = [("/ui/traces?since=yesterday-ish&status=bogus&latency_min=-1&limit=0", ("since", "status",
                                                                                   "latency_min", "page")),
             ("/ui/sessions?since=soon", ("since",)),
             ("/ui/evals?limit=abc&status=bogus", ("page", "status")),
             ("/ui/metrics?window=3x&group_by=colour", ("window", "group_by")),
             ("/ui/metrics?since=2026-01-02&until=2026-01-01", ("since",))]
    for path, fields in cases:
        zh = httpx.get(server.url + path, headers=ZH, timeout=30)
        assert zh.status_code == 400, path
        for name in fields:
            assert_chinese(_invalid(zh.text, name))
    drift = httpx.get(server.url + "/ui/monitors/drift?window=zz&reference=window:2026-01-01..", headers=ZH,
                      timeout=30)
    for name in ("window", "reference"):
        assert_chinese(re.sub(r"^.*?: ", "", _invalid(drift.text, name)), "'")
    en = httpx.get(server.url + "/ui/traces?limit=0", headers=EN, timeout=30)
    assert "a whole number from 1 to 1000" in _invalid(en.text, "page")
    twin = httpx.get(server.url + "/ui/traces.json?limit=0", headers=ZH, timeout=30)
    assert twin.json()["errors"]["limit"] == "a whole number from 1 to 1000"


def test_favicon_is_no_404(server):
    resp = httpx.get(server.url + "/favicon.ico", timeout=30)
    assert resp.status_code == 204 and resp.content == b""


def test_labelling_conflict_and_undo_errors_in_chinese(browser, server):
    """Another tab labelled the item meanwhile: the core's ConflictError, then nothing to undo, in Chinese."""
    from flywheel.feedback import queues

    store = server.live.app.state.flywheel.store
    queue = queues.create_queue(store, "zh-conflict", kind="binary", overlap=2, trace_ids=[trace_id(1), trace_id(2)],
                                tenant="acme")
    w = login(browser, server, "acme", locale="zh-CN")
    try:
        w.page.goto(f"{server.url}/ui/review/{queue.name}?annotator=ana")
        item = w.page.locator("#current-item").get_attribute("data-item")
        queues.label(store, item, "ana", "pass")  # the other tab
        w.page.keyboard.press("f")
        message = w.page.locator("#message")
        expect(message).to_contain_text("ana")
        assert_chinese(message.inner_text(), "ana", item)
        assert "already labelled" not in message.inner_text()
        w.page.keyboard.press("p")  # the next item is labelled for real: "last" is set
        expect(w.page.locator("#mine")).to_have_text("2")
        last = w.page.locator('input[name="last"]').get_attribute("value")
        queues.undo(store, last, "ana")  # undone meanwhile: U has nothing to undo
        w.page.keyboard.press("u")
        expect(message).to_contain_text(last)
        assert_chinese(message.inner_text(), "ana", last)
        w.errors.clear()
    finally:
        w.context.close()


def test_queue_creation_errors_in_chinese(browser, server):
    """The core's sampling and naming errors on the new-queue form of a Chinese page."""
    from flywheel.feedback import queues

    store = server.live.app.state.flywheel.store
    queues.create_queue(store, "zh-taken", kind="binary", overlap=1, trace_ids=[trace_id(3)], tenant="acme")
    w = login(browser, server, "acme", locale="zh-CN")
    try:
        w.page.goto(f"{server.url}/ui/review/new")
        w.page.fill('input[name="app"]', "no-such-app")
        w.page.click("#create-queue")
        error = w.page.locator("#form-error")
        expect(error).to_contain_text("no-such-app")
        assert_chinese(error.inner_text(), "'no-such-app'", "“应用”一栏")  # the form field, not the CLI flag
        w.page.fill('input[name="app"]', "")
        w.page.fill('input[name="name"]', "zh-taken")
        w.page.fill('textarea[name="trace_ids"]', trace_id(4))
        w.page.click("#create-queue")
        expect(error).to_contain_text("zh-taken")
        assert_chinese(error.inner_text(), "'zh-taken'")
        w.page.fill('input[name="name"]', "zh-unknown")
        w.page.fill('textarea[name="trace_ids"]', MISSING)
        w.page.click("#create-queue")
        expect(error).to_contain_text(MISSING)
        assert_chinese(error.inner_text(), MISSING)
        w.errors.clear()  # Chromium logs the 400 status itself
    finally:
        w.context.close()


def test_trace_action_errors_in_chinese(browser, server):
    w = login(browser, server, "admin", locale="zh-CN")
    try:
        w.page.goto(f"{server.url}/ui/traces/{trace_id(10)}")
        w.page.fill("#new-suite", "../escape")
        w.page.click("#add-to-suite-submit")
        error = w.page.locator("#trace-action-error")
        expect(error).to_contain_text("escape")
        assert_chinese(error.inner_text(), "'../escape'")
        assert w.errors == []
    finally:
        w.context.close()

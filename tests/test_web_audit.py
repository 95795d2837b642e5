"""Regressions found by auditing the dashboard in Chromium as a new user (English and Chinese): pages at a 390-px
phone width, HTML / script / Markdown / Chinese / emoji / very long text in answers, feedback and review reasons
shown as text, a Chinese annotator name, a session that expires while labelling, the new-queue form's errors in
Chinese and the login page in the language the visitor asked for.

Uses the session's live server and one Chromium per module (tests/web_support.py). The audit's own data goes to a
tenant of its own ("audit"), 40 days before the shared data set, so no other module's counts change."""

from __future__ import annotations

import httpx
import pytest
from web_support import T0, Watched, demo_trace, login, trace_id

pytest.importorskip("playwright")
from playwright.sync_api import expect

AUDIT_TRACE = "a0d17" + "0" * 27
SCRIPT = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
ANSWER = (f"**Refunds** take 5 days. 退款需要 5 个工作日 🎉👨‍👩‍👧‍👦\n\n```python\nprint('<b>hi</b>')\n```\n{SCRIPT}\n"
          + "very long answer " * 3000)
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def audit(web_server):
    """Tenant "audit": a key, one trace with hostile and long text, its feedback, and a one-item review queue."""
    from flywheel import feedback
    from flywheel.feedback import queues
    from flywheel.store.schema import spans, traces

    state = web_server.live.app.state.flywheel
    if "audit" not in web_server.keys:
        web_server.keys["audit"] = state.keys.create("audit-viewer", tenant="audit")[0]
        row, sp = demo_trace(0, "audit", question=f"退款 {SCRIPT} 😀?", answer=ANSWER, session="audit-sess",
                             user="audit-user", tid=AUDIT_TRACE)
        shift = -40 * 86400
        row["started_at"] += shift
        row["ended_at"] += shift
        for s in sp:
            s["span_id"] = "ad" + s["span_id"][2:]
            s["parent_id"] = s["parent_id"] and "ad" + s["parent_id"][2:]
            s["start_ns"] += shift * 10**9
            s["end_ns"] += shift * 10**9
        with state.store.engine.begin() as conn:
            conn.execute(traces.insert(), [row])
            conn.execute(spans.insert(), sp)
        feedback.record(state.store, AUDIT_TRACE, "thumbs", "down", tenant="audit", comment=f"错了 {SCRIPT}",
                        actor="tester", created_at=T0 - 86400)
        queues.create_queue(state.store, "audit-q", kind="binary", overlap=2, trace_ids=[AUDIT_TRACE],
                            tenant="audit")
    return web_server


def no_script_ran(w: Watched) -> None:
    assert w.page.evaluate("window.__xss") is None
    assert w.page.locator("main script, main img").count() == 0


def test_pages_fit_a_phone_screen(browser, web_server):
    """At 390 px the page never scrolls sideways: the top bar wraps, sidebars stack, wide tables scroll inside
    their own box (before: the nav alone was 740 px wide and the trace list's sidebar squeezed the rows)."""
    w = login(browser, web_server, "acme")
    try:
        w.page.set_viewport_size(PHONE)
        for path in ("/ui/traces", f"/ui/traces/{trace_id(3)}", "/ui/sessions", "/ui/sessions/sess-0", "/ui/users",
                     "/ui/review", "/ui/review/new", "/ui/metrics", "/ui/monitors", "/ui/evals", "/ui/prompts",
                     "/ui/traces?lang=zh", "/ui/review?lang=zh"):
            assert w.page.goto(web_server.url + path).status == 200, path
            w.page.wait_for_load_state("networkidle")
            width = w.page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{path} is {width} px wide"
        w.page.goto(f"{web_server.url}/ui/traces")
        expect(w.page.locator("header nav a").last).to_be_attached()
        expect(w.page.locator("#trace-rows")).to_be_visible()
        w.shot("phone-traces")
        assert w.errors == []
    finally:
        w.context.close()


def test_html_in_answers_feedback_and_reasons_is_shown_as_text(browser, audit):
    w = login(browser, audit, "audit")
    dialogs: list[str] = []
    w.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        w.page.goto(f"{audit.url}/ui/traces?search=%E9%80%80%E6%AC%BE")  # 退款
        expect(w.page.locator("tr.row")).to_have_count(1)
        expect(w.page.locator("tr.row")).to_contain_text("<script>window.__xss = 1</script>")
        no_script_ran(w)
        w.page.goto(f"{audit.url}/ui/traces/{AUDIT_TRACE}")
        expect(w.page.locator("#feedback")).to_contain_text(f"错了 {SCRIPT}")
        for row in w.page.locator("tr.span").all():
            row.click()
            expect(w.page.locator("#span-body")).not_to_be_empty()
        body = w.page.locator("#span-body")  # the model call's: the answer, Markdown as written (not rendered)
        expect(body).to_contain_text("退款需要 5 个工作日 🎉")
        expect(body).to_contain_text("```python")
        expect(body).to_contain_text(SCRIPT)
        no_script_ran(w)
        w.page.set_viewport_size(PHONE)
        assert w.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # 50 KB of answer wraps
        w.page.goto(f"{audit.url}/ui/sessions/audit-sess")
        expect(w.page.locator("main")).to_contain_text(SCRIPT)
        no_script_ran(w)
        assert dialogs == [] and w.errors == []
    finally:
        w.context.close()


def test_a_chinese_annotator_name_is_remembered(browser, audit):
    """丽丽 as ?annotator= answered 500 (a cookie header is Latin-1); the name is now percent-encoded in the cookie."""
    w = login(browser, audit, "audit")
    bob = login(browser, audit, "audit")
    try:
        response = w.page.goto(f"{audit.url}/ui/review/audit-q?annotator=%E4%B8%BD%E4%B8%BD")
        assert response.status == 200
        expect(w.page.locator("#annotator-name")).to_have_text("丽丽")
        w.page.goto(f"{audit.url}/ui/review/audit-q?lang=zh")  # the name from the cookie; the kind in Chinese
        expect(w.page.locator("#annotator-name")).to_have_text("丽丽")
        expect(w.page.locator("h1")).to_contain_text("（二元，每条的标注人数 2）")  # Chinese punctuation
        w.page.goto(f"{audit.url}/ui/review")
        expect(w.page.locator('#queue-rows tr[data-queue="audit-q"] td[data-kind="binary"]')).to_have_text("二元")
        w.page.goto(f"{audit.url}/ui/review/audit-q?lang=en")
        expect(w.page.locator("h1")).to_contain_text("(binary, Annotators per item 2)")
        expect(w.page.locator("#item-output")).to_contain_text(SCRIPT)
        w.page.fill("#reason", f"原因 {SCRIPT}")
        w.page.keyboard.press("Escape")
        w.page.keyboard.press("p")
        expect(w.page.locator("#done")).to_be_visible()
        bob.page.goto(f"{audit.url}/ui/review/audit-q?annotator=bob")
        bob.page.keyboard.press("f")
        expect(bob.page.locator("#done")).to_be_visible()
        w.page.goto(f"{audit.url}/ui/review/audit-q/agreement")
        expect(w.page.locator("#disagreements")).to_contain_text(f"丽丽: 原因 {SCRIPT}")
        no_script_ran(w)
        assert w.errors == [] and bob.errors == []
    finally:
        w.context.close()
        bob.context.close()


def test_a_session_that_expires_while_labelling_goes_to_login_and_back(browser, web_server):
    """A key pressed after the session ended did nothing (HTMX does not swap a 401): now the page goes to the
    login form, and logging in again returns to the queue."""
    from flywheel.feedback import queues

    store = web_server.live.app.state.flywheel.store
    queues.create_queue(store, "audit-expiry", kind="binary", overlap=1, trace_ids=[trace_id(13)], tenant="acme")
    w = login(browser, web_server, "acme")
    try:
        w.page.goto(f"{web_server.url}/ui/review/audit-expiry?annotator=erin")
        expect(w.page.locator("#current-item")).to_be_visible()
        w.context.clear_cookies(name="fw_session")
        w.page.keyboard.press("p")
        w.page.wait_for_url("**/ui/login?next=*")
        w.page.fill('input[name="key"]', web_server.keys["acme"])
        w.page.click("#login-submit")
        w.page.wait_for_url("**/ui/review/audit-expiry?annotator=erin")
        expect(w.page.locator("#current-item")).to_be_visible()  # the press went nowhere: the item is unlabelled
        assert queues.labels(store, "audit-expiry") == []
        w.errors.clear()  # Chromium logs the 401 itself
        w.page.keyboard.press("p")
        expect(w.page.locator("#done")).to_be_visible()
        assert w.errors == []
    finally:
        w.context.close()


def test_new_queue_form_errors_are_in_chinese_and_mark_the_name(browser, web_server):
    w = login(browser, web_server, "acme", locale="zh-CN")
    try:
        w.page.goto(f"{web_server.url}/ui/review/new")
        w.page.fill('input[name="name"]', "审核-队列")
        w.page.fill('input[name="n"]', "0")
        with w.page.expect_response("**/ui/review/new") as answer:
            w.page.click("#create-queue")
        assert answer.value.status == 400
        expect(w.page.locator('[data-invalid="name"]')).to_contain_text("只能使用英文字母、数字和 _.:-")
        expect(w.page.locator('[data-invalid="n"]')).to_contain_text("须为 1 到 10000 之间的整数")
        assert w.page.locator('[data-invalid="form"]').count() == 0
    finally:
        w.context.close()


def test_the_login_page_keeps_the_language_asked_for(browser, web_server):
    context = browser.new_context(locale="en-US")
    try:
        page = context.new_page()
        page.goto(f"{web_server.url}/ui/review?lang=zh")
        page.wait_for_url("**/ui/login?*")
        expect(page.locator("h1")).to_have_text("登录")
        page.fill('input[name="key"]', web_server.keys["acme"])
        page.click("#login-submit")
        page.wait_for_url("**/ui/review?lang=zh")
        expect(page.locator("h1")).to_have_text("审核队列")
        anonymous = httpx.get(f"{web_server.url}/ui/review.json?lang=zh")
        assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "login_required"
    finally:
        context.close()


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory):
    """A new project's `flywheel serve`: no traces, no keys (the open local mode)."""
    from server_support import LiveServer, write_project

    from flywheel import web
    from flywheel.server import create_app

    app = create_app(write_project(tmp_path_factory.mktemp("empty"), "http://127.0.0.1:9/v1"))
    web.mount(app, app.state.flywheel)
    live = LiveServer(app).start()
    yield live
    live.stop()


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_a_new_project_shows_empty_states_and_says_how_to_get_traces(browser, empty_server, locale):
    """Before: /ui/users showed a bare table header, and creating a queue answered the CLI's sampling message
    (`try --strategy random …`) in English whatever the page's language."""
    w = Watched(browser.new_context(locale=locale))
    zh = locale == "zh-CN"
    try:
        for path, empty in (("/ui/traces", "还没有追踪" if zh else "No traces yet"),
                            ("/ui/sessions", "没有会话" if zh else "No sessions"),
                            ("/ui/users", "没有用户" if zh else "No users"),
                            ("/ui/review", "还没有审核队列" if zh else "No review queues yet")):
            assert w.page.goto(empty_server.url + path).status == 200
            expect(w.page.locator("main")).to_contain_text(empty)
        w.page.goto(empty_server.url + "/ui/review/new")
        with w.page.expect_response("**/ui/review/new") as answer:
            w.page.click("#create-queue")
        assert answer.value.status == 400
        expect(w.page.locator('[data-invalid="form"]')).to_contain_text(
            "还没有可审核的追踪" if zh else "There are no traces to review yet")
        w.errors = [e for e in w.errors if "400" not in e]  # Chromium logs the 400 status itself
        assert w.errors == []
    finally:
        w.context.close()

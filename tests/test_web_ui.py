"""The dashboard in real Chromium (Playwright, sync API) against a live `flywheel serve` app with a demo-like
store (tests/web_support.py): pages load without console errors, filters change the URL and the rows, keyset
paging, the trace page's final prompt and lazily loaded span bodies, tenant isolation, Chinese UI text."""

from __future__ import annotations

import re

import pytest
from web_support import BIG_TRACE, GLOBEX_TRACE, login, trace_id

pytest.importorskip("playwright")
from playwright.sync_api import expect


@pytest.fixture(scope="module")
def acme(browser, web_server):
    w = login(browser, web_server, "acme")
    yield w
    w.context.close()


def test_every_page_loads_without_console_errors(acme, web_server):
    page = acme.page
    for path, shot in [("/ui/traces", "traces"), (f"/ui/traces/{trace_id(3)}", "trace"), ("/ui/sessions", "sessions"),
                       ("/ui/sessions/sess-1", "session"), ("/ui/users", "users"), (f"/ui/traces/{BIG_TRACE}", "big")]:
        acme.errors.clear()
        response = page.goto(web_server.url + path)
        assert response.status == 200, path
        page.wait_for_load_state("networkidle")
        acme.shot(shot)
        assert acme.errors == [], f"{path}: {acme.errors}"
    page.goto(web_server.url + "/ui/traces")
    expect(page.locator('#facets [data-facet="status"]')).to_contain_text("error")  # loaded after the page


def test_filters_change_the_url_and_the_rows(acme, web_server):
    page = acme.page
    page.goto(web_server.url + "/ui/traces")
    all_rows = page.locator("#trace-rows tbody tr").count()
    page.select_option('select[name="feedback"]', "negative")
    page.click("#apply")
    page.wait_for_url(re.compile(r"feedback=negative"))
    rows = page.locator("#trace-rows tbody tr")
    expect(rows).to_have_count(10)
    assert all_rows == 50
    page.fill('input[name="search"]', "PARCEL 108")
    page.click("#apply")
    page.wait_for_url(re.compile(r"search=PARCEL\+108"))
    expect(rows).to_have_count(1)  # case-insensitive text search, ANDed with the feedback filter
    expect(rows.first).to_have_attribute("data-trace", trace_id(108))
    acme.shot("traces-filtered")
    # facets follow the filters, and a facet value is a link that adds its filter
    expect(page.locator('#facets [data-facet="model"]')).to_be_visible()
    assert "globex" not in page.content()


def test_keyset_paging_and_keyboard(acme, web_server):
    page = acme.page
    page.goto(web_server.url + "/ui/traces?limit=40")
    first = page.locator("#trace-rows tbody tr").first.get_attribute("data-trace")
    seen = set()
    pages = 0
    while True:
        pages += 1
        seen.update(page.locator("#trace-rows tbody tr").evaluate_all("rs => rs.map(r => r.dataset.trace)"))
        nxt = page.locator("#next-page")
        if nxt.count() == 0:
            break
        nxt.click()
        page.wait_for_load_state("domcontentloaded")
        assert "cursor=" in page.url
    assert pages == 4 and len(seen) == 121  # 120 acme traces + the big one, each exactly once
    page.goto(web_server.url + "/ui/traces?limit=40")
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    expect(page.locator("tr.row.selected")).to_have_attribute("data-trace", first)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/ui/traces/{first}")


def test_trace_page_shows_the_final_prompt_and_loads_span_bodies_lazily(acme, web_server):
    page = acme.page
    page.goto(f"{web_server.url}/ui/traces/{trace_id(12)}")
    expect(page.locator("#final-prompt")).to_contain_text("[system]")
    expect(page.locator("#final-prompt")).to_contain_text("Context: refunds take 5 days.")
    expect(page.locator("#sources")).to_contain_text("docs/refunds.md")
    expect(page.locator("#feedback")).to_contain_text("wrong refund period")
    expect(page.locator("#guards")).to_contain_text("injection")
    assert page.locator("[data-span-body]").count() == 0  # no body before a click
    page.click('tr[data-span="0000000c00000003"]')
    expect(page.locator('[data-span-body="0000000c00000003"]')).to_contain_text("docs/shipping.md")
    acme.shot("trace-span-body")
    # the big trace: 200 rows first, the rest as they scroll into view
    page.goto(f"{web_server.url}/ui/traces/{BIG_TRACE}")
    spans = page.locator("#span-rows tr.span")
    expect(spans).to_have_count(200)
    page.locator("#more-spans").scroll_into_view_if_needed()
    expect(spans).to_have_count(400)


def test_a_tenant_key_cannot_open_another_tenants_trace(browser, web_server):
    w = login(browser, web_server, "globex")
    try:
        response = w.page.goto(f"{web_server.url}/ui/traces/{trace_id(3)}")
        assert response.status == 404
        expect(w.page.locator("#error-message")).to_contain_text(trace_id(3))
        w.shot("tenant-404")
        response = w.page.goto(f"{web_server.url}/ui/traces/{GLOBEX_TRACE}")
        assert response.status == 200
        w.page.goto(f"{web_server.url}/ui/traces")
        expect(w.page.locator("#trace-rows tbody tr")).to_have_count(5)
        body = w.page.request.get(f"{web_server.url}/ui/spans/0000000300000004/body")
        assert body.status == 404
    finally:
        w.context.close()


def test_login_is_required_and_a_bad_key_is_refused(browser, web_server):
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{web_server.url}/ui/traces?model=gpt")
        assert "/ui/login" in page.url
        page.fill('input[name="key"]', "fw-000000000000-not-a-real-key-at-all")
        page.click("#login-submit")
        expect(page.locator("#login-failed")).to_be_visible()
        cookie = {c["name"]: c for c in context.cookies()}
        assert "fw_session" not in cookie
    finally:
        context.close()


def test_chinese_ui_text(browser, web_server):
    w = login(browser, web_server, "admin")
    try:
        w.page.goto(f"{web_server.url}/ui/traces?lang=zh")
        expect(w.page.locator("h1")).to_have_text("追踪")
        expect(w.page.locator("#apply")).to_have_text("应用筛选")
        w.page.goto(f"{web_server.url}/ui/sessions")  # remembered in a cookie
        expect(w.page.locator("h1")).to_have_text("会话")
        w.shot("sessions-zh")
        assert w.errors == []
    finally:
        w.context.close()


def test_saved_views_round_trip(acme, web_server):
    page = acme.page
    page.goto(web_server.url + "/ui/traces?guard=block")
    page.fill('#save-view input[name="name"]', "blocked")
    page.click("#save-view button")
    page.wait_for_url(re.compile(r"guard=block"))
    link = page.locator(".views a", has_text="blocked")
    expect(link).to_have_attribute("href", "/ui/traces?guard=block")
    page.goto(web_server.url + "/ui/traces")
    page.locator(".views a", has_text="blocked").click()
    expect(page.locator("#trace-rows tbody tr")).to_have_count(8)


def test_a_malformed_filter_is_marked_invalid(acme, web_server):
    page = acme.page
    response = page.goto(web_server.url + "/ui/traces?latency_min=fast&since=someday&cursor=%%%")
    assert response.status == 400
    expect(page.locator('[data-invalid="latency_min"]')).to_be_visible()
    expect(page.locator('[data-invalid="since"]')).to_be_visible()
    expect(page.locator("#trace-rows tbody tr")).to_have_count(50)  # the other filters still apply


def test_a_real_request_shows_its_exact_prompt(acme, web_server):
    """A chat completion through the live server (fake upstream) becomes a trace whose page shows the messages
    exactly as the gateway sent them."""
    import httpx

    web_server.llm.add(r"warranty", "Two years.")
    key = web_server.keys["acme"]
    response = httpx.post(f"{web_server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                          json={"model": "gpt", "messages": [{"role": "system", "content": "Be brief. 简短回答。"},
                                                             {"role": "user", "content": "How long is the warranty?"}]})
    assert response.status_code == 200, response.text
    tid = response.headers["x-flywheel-trace-id"]
    web_server.wait_for_trace(tid, key)
    acme.errors.clear()
    acme.page.goto(f"{web_server.url}/ui/traces/{tid}")
    prompt = acme.page.locator("#final-prompt")
    expect(prompt).to_contain_text("[system]\nBe brief. 简短回答。\n\n[user]\nHow long is the warranty?")
    acme.shot("real-trace")
    assert acme.errors == []

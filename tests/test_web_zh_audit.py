"""A new user's pass over the dashboard in Chinese (and English), in Chromium: an eval run's failed checks say why
on the page in the page's language (not only in an English tooltip), an agreement page says why a statistic is
undefined in Chinese, a trace's guard actions and thumbs read in Chinese, times say they are UTC, and the traces
list fits a laptop screen. Shares the session's server and the module's Chromium (tests/web_support.py); what it
adds to the store is removed afterwards."""

from __future__ import annotations

import pytest
from web_support import demo_trace, login, trace_id

pytest.importorskip("playwright")
from playwright.sync_api import expect

RUN = "a6" * 16
TENANT = "h6-audit"


@pytest.fixture(scope="module")
def seeded(web_server):
    """An eval run whose cases failed checks with the checks' own reasons, and a queue of two traces with one
    label (so Fleiss' κ is undefined)."""
    from sqlalchemy import delete

    from flywheel.checks import CheckContext, build
    from flywheel.evals.records import CaseRun, RunStore
    from flywheel.feedback import queues
    from flywheel.store.schema import spans, traces
    from flywheel.store.schema_review import review_claims, review_items, review_labels, review_queues

    store = web_server.live.state.store
    runs = RunStore(store)
    runs.create(RUN, suite="h6-audit", suite_hash="h", fingerprint="h6", target="app:support", model="gpt",
                threshold=0.8, cases_total=1, repeat=1)
    output = "one two three four five six seven"
    checks = [build("contains", "refund").run(output, CheckContext()),
              build("max_words", 5).run(output, CheckContext()),
              build("not-contains", "two").run(output, CheckContext()),
              build("contains", "seven").run(output, CheckContext())]
    runs.save(RUN, CaseRun(case_id="h6-case", repeat_index=0, passed=False, score=0.25, output=output, input="q",
                           checks=checks))
    runs.finish(RUN, 0.0, {})
    rows, all_spans = [], []
    for k in range(2):
        row, sp = demo_trace(900 + k, TENANT, question="退款要多久？" * 20, answer="5 天。", tid=f"{0xa6000 + k:032x}")
        # what the proxy names a request, with an app and an embedder's model name: long unbreakable words
        row.update(name="server /v1/chat/completions", app="docs_qa", model="all-MiniLM-L6-v2", latency_ms=37200.0,
                   input_tokens=1015, output_tokens=168, cost_usd=0.000241)
        sp[0]["name"] = row["name"]
        rows.append(row)
        all_spans += sp
    with store.engine.begin() as conn:
        conn.execute(traces.insert(), rows)
        conn.execute(spans.insert(), all_spans)
    queue = queues.create_queue(store, "h6-audit-queue", kind="binary", overlap=2,
                                trace_ids=[r["trace_id"] for r in rows], tenant=TENANT)
    item = queues.next_item(store, queue, "ana")
    assert item is not None
    queues.label(store, item.id, "ana", "pass")
    yield queue.name
    with store.begin() as conn:
        for table in (review_labels, review_claims, review_items):
            conn.execute(delete(table).where(table.c.queue_id == queue.id))
        conn.execute(delete(review_queues).where(review_queues.c.id == queue.id))
        conn.execute(delete(runs.results).where(runs.results.c.run_id == RUN))
        conn.execute(delete(runs.runs).where(runs.runs.c.id == RUN))


def test_failed_check_reasons_are_on_the_page_in_the_pages_language(browser, web_server, seeded):
    zh = login(browser, web_server, "admin", locale="zh-CN")
    try:
        zh.page.goto(f"{web_server.url}/ui/evals/{RUN}")
        reasons = zh.page.locator('tr[data-case="h6-case"] ul.reasons li')
        expect(reasons).to_have_count(3)  # the three failed checks; the passed one has no line
        expect(reasons.nth(0)).to_have_text("contains：未找到 'refund'")
        expect(reasons.nth(1)).to_have_text("max_words：7 个词（超出 ..5）")
        expect(reasons.nth(2)).to_have_text("not-contains：取反：找到 'two'")
        passed = zh.page.locator('tr[data-case="h6-case"] span.status.ok')
        expect(passed).to_have_attribute("title", "找到 'seven'")  # tooltips too
        expect(zh.page.locator("main")).to_contain_text("UTC")

        zh.page.goto(f"{web_server.url}/ui/review/{seeded}/agreement")
        expect(zh.page.locator("#agreement-summary")).to_contain_text("1 个条目")
        expect(zh.page.locator("#fleiss")).to_contain_text("有 2 个及以上标签的条目少于 2 个")

        zh.page.goto(f"{web_server.url}/ui/traces/{trace_id(0)}")  # guard action `block`, a thumbs down
        expect(zh.page.locator("#guards")).to_contain_text("拦截")
        expect(zh.page.locator("#feedback")).to_contain_text("踩")
        assert zh.errors == []
    finally:
        zh.context.close()

    en = login(browser, web_server, "admin")
    try:
        en.page.goto(f"{web_server.url}/ui/evals/{RUN}")
        expect(en.page.locator('tr[data-case="h6-case"] ul.reasons li').nth(1)).to_have_text(
            "max_words: 7 words (outside ..5)")
        en.page.goto(f"{web_server.url}/ui/traces/{trace_id(0)}")
        expect(en.page.locator("#guards")).to_contain_text("block")
    finally:
        en.context.close()


def test_the_traces_list_fits_a_laptop_screen_in_chinese(browser, web_server, seeded):
    zh = login(browser, web_server, "admin", locale="zh-CN")
    try:
        zh.page.set_viewport_size({"width": 1280, "height": 800})
        zh.page.goto(f"{web_server.url}/ui/traces?tenant={TENANT}")
        expect(zh.page.locator("#trace-rows tbody tr")).to_have_count(2)
        assert zh.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        # a status word stays on one line (Chinese may break between any two characters: 正 / 常)
        state = zh.page.locator("#trace-rows td.state").first
        expect(state).to_have_text("正常")
        lines = state.evaluate("td => { const r = document.createRange(); r.selectNodeContents(td); "
                               "return r.getClientRects().length; }")
        assert lines == 1
        expect(zh.page.locator("#save-view input[name=name]")).to_have_attribute("aria-label", "视图名称")
        assert zh.errors == []
    finally:
        zh.context.close()

"""Regressions found by auditing the dashboard in Chromium as a new reviewer would use it, in English and Chinese, over
a demo project with a few hundred en/zh traces, tool calls, guard actions, feedback, queues, evals and 10,000 bulk
traces: a long answer pushed the verdict buttons below the window and the reason field was 19 Tabs away; the empty
pages said "no traces match these filters" with no filter set and did not say what to do next; a run's "Compare"
link opened the compare form with an error; the users page cut at 200 without saying so; adding a trace of an app
missing from flywheel.yaml to a new suite answered the CLI's `--target` hint, half in English on the Chinese page.

Two servers of this module's own (so no other module's counts change): the shared data set of tests/web_support.py
plus this module's rows, and a new project with nothing in it. One Chromium per module (web_support.browser)."""

from __future__ import annotations

import pytest
from web_support import T0, Watched, demo_trace, login, start_server, trace_id

pytest.importorskip("playwright")
from playwright.sync_api import expect

LONG_TRACE = "5e" + "0" * 29 + "1"
RETIRED_TRACE = "5e" + "0" * 29 + "2"
LONG_ANSWER = "退款需要 5 个工作日。" * 600 + "\n```python\n" + "print('a line of code without a break' * 40)\n" * 30 + "```"
FIRST_RUN, SECOND_RUN = "5e1" * 10 + "aa", "5e2" * 10 + "bb"
LAPTOP, PHONE = {"width": 1280, "height": 800}, {"width": 390, "height": 844}
LONG_NAME = "q" + "x" * 199  # the longest queue name there may be, with no space to wrap at


def _runs(store) -> None:
    """Two finished runs of one suite, an hour apart."""
    from flywheel.evals.records import CaseRun, RunStore

    runs = RunStore(store)
    for n, run_id in enumerate((FIRST_RUN, SECOND_RUN)):
        runs.create(run_id, suite="s6-suite", suite_hash="h", fingerprint=run_id[:8], target="app:support",
                    model="gpt", threshold=0.8, cases_total=2, repeat=1)
        for i in range(2):
            runs.save(run_id, CaseRun(case_id=f"case-{i}", repeat_index=0, passed=i <= n, score=float(i <= n),
                                      output="Refunds take 5 days.", checks=[], input="How long do refunds take?"))
        runs.finish(run_id, 0.5 + n / 2, {})
        with store.begin() as conn:
            conn.execute(runs.runs.update().where(runs.runs.c.id == run_id).values(started_at=T0 + n * 3600))


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """The shared data set, plus: a one-item queue whose answer is 10 KB of Chinese and code, a trace of an app that
    flywheel.yaml does not have, a queue with a 200-letter name, 201 end users of tenant "many" (and its key), two runs of one suite."""
    from flywheel.feedback import queues
    from flywheel.store.schema import spans, traces

    server = start_server(tmp_path_factory.mktemp("reviewer"))
    state = server.live.state
    rows, all_spans = [], []
    for tid, app, answer in ((LONG_TRACE, "support", LONG_ANSWER), (RETIRED_TRACE, "retired-bot", "ok")):
        row, sp = demo_trace(900 + len(rows), "acme", question="退款要多久？", answer=answer, tid=tid)
        row["app"] = sp[0]["app"] = app
        rows.append(row)
        all_spans += sp
    for i in range(201):
        row, _ = demo_trace(1000 + i, "many", question="hi", answer="hello", user=f"u-{i:03d}", tid=f"{0x5e000 + i:032x}")
        row["span_count"] = 0
        rows.append(row)
    with state.store.engine.begin() as conn:
        conn.execute(traces.insert(), rows)
        conn.execute(spans.insert(), all_spans)
    queues.create_queue(state.store, "s6-long", kind="binary", overlap=1, trace_ids=[LONG_TRACE], tenant="acme")
    queues.create_queue(state.store, LONG_NAME, kind="binary", overlap=1, trace_ids=[trace_id(7)], tenant="acme")
    server.keys["many"] = state.keys.create("many-viewer", tenant="many")[0]
    _runs(state.store)
    yield server
    server.live.stop()


@pytest.fixture(scope="module")
def empty(tmp_path_factory):
    """A new project's `flywheel serve`: no traces, no queues, no runs, no keys (the open local mode)."""
    from server_support import LiveServer, write_project

    from flywheel import web
    from flywheel.server import create_app

    app = create_app(write_project(tmp_path_factory.mktemp("reviewer-empty"), "http://127.0.0.1:9/v1"))
    web.mount(app, app.state.flywheel)
    live = LiveServer(app).start()
    yield live
    live.stop()


def _verdicts_on_screen(w: Watched, height: int) -> None:
    box = w.page.locator("#verdict-pass").bounding_box()
    assert box is not None and box["y"] + box["height"] <= height, f"the Pass button is at y={box}"
    answer = w.page.locator("#item-output")
    assert answer.evaluate("e => e.scrollHeight > e.clientHeight")  # the answer scrolls in its own box


def test_a_long_answer_keeps_the_verdicts_on_screen_and_r_goes_to_the_reason(browser, own):
    """Before: the 10 KB answer pushed Pass / Fail 3,000 px down at 1280 px (further on a phone), and a keyboard
    user reached the reason field with 19 Tabs."""
    w = login(browser, own, "acme")
    try:
        w.page.set_viewport_size(LAPTOP)
        assert w.page.goto(f"{own.url}/ui/review/s6-long?annotator=kim").status == 200
        _verdicts_on_screen(w, LAPTOP["height"])
        w.page.set_viewport_size(PHONE)
        _verdicts_on_screen(w, PHONE["height"])
        assert w.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        w.page.set_viewport_size(LAPTOP)
        expect(w.page.locator("form#label-form p.muted").last).to_contain_text("R write a reason")
        w.page.keyboard.press("r")
        expect(w.page.locator("#reason")).to_be_focused()
        w.page.keyboard.type("太长了 r p")  # typed keys are text, not shortcuts
        w.page.keyboard.press("Escape")
        w.page.keyboard.press("f")
        expect(w.page.locator("#done")).to_be_visible()
        labels = own.live.state.store.table("review_labels")
        with own.live.state.store.engine.connect() as conn:
            got = conn.execute(labels.select().where(labels.c.annotator == "kim")).mappings().all()
        assert [(r["verdict"], r["reason"]) for r in got] == [("fail", "太长了 r p")]
        w.page.goto(f"{own.url}/ui/review/s6-long?lang=zh")
        expect(w.page.locator("form#label-form p.muted").last).to_contain_text("R 填写理由")
        assert w.errors == []
    finally:
        w.context.close()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_empty_pages_say_what_to_do_next(browser, empty, lang):
    """Before: a new project's trace list said "No traces match these filters." with no filter set, and the review
    and eval lists said only "No … yet." (the eval list also "rows 0–0 of 0")."""
    zh = lang == "zh"
    expected = [("/ui/traces", "还没有追踪" if zh else "No traces yet", "flywheel serve"),
                ("/ui/traces?search=nothing", "没有符合筛选条件的追踪" if zh else "No traces match these filters", ""),
                ("/ui/review", "还没有审核队列" if zh else "No review queues yet", "flywheel review sample"),
                ("/ui/evals", "还没有评测运行" if zh else "No eval runs yet", "flywheel eval"),
                ("/ui/evals?suite=nothing", "没有符合筛选条件的评测运行" if zh else "No eval runs match these filters", "")]
    w = Watched(browser.new_context(locale="zh-CN" if zh else "en-US"))
    try:
        for path, text, next_step in expected:
            response = w.page.goto(f"{empty.url}{path}{'&' if '?' in path else '?'}lang={lang}")
            assert response is not None and response.status == 200, path
            expect(w.page.locator("#no-rows")).to_contain_text(text)
            expect(w.page.locator("#no-rows")).to_contain_text(next_step)
        w.page.goto(f"{empty.url}/ui/traces?search=nothing&lang={lang}")
        expect(w.page.locator("#no-rows")).not_to_contain_text("flywheel serve")
        w.page.goto(f"{empty.url}/ui/evals?lang={lang}")
        expect(w.page.locator("#pager")).not_to_contain_text("0–0")
        assert w.errors == []
    finally:
        w.context.close()


def test_a_runs_compare_link_opens_a_comparison(browser, own):
    """Before: "Compare" linked to /ui/evals/compare?cand=RUN, a 400 form saying the base "needs a run id"."""
    w = login(browser, own, "acme")
    try:
        w.page.goto(f"{own.url}/ui/evals/{SECOND_RUN[:8]}")
        with w.page.expect_response(lambda r: "/ui/evals/compare" in r.url) as answer:
            w.page.click("#compare-link")
        assert answer.value.status == 200
        assert f"base={FIRST_RUN}" in w.page.url and f"cand={SECOND_RUN}" in w.page.url
        expect(w.page.locator("#paired-test")).to_be_visible()
        w.page.goto(f"{own.url}/ui/evals/{FIRST_RUN[:8]}")  # the suite's first run: nothing before it
        with w.page.expect_response(lambda r: "/ui/evals/compare" in r.url) as answer:
            w.page.click("#compare-link")
        assert answer.value.status == 200
        expect(w.page.locator("#compare-form")).to_be_visible()
        expect(w.page.locator("[data-invalid]")).to_have_count(0)
        assert w.errors == []
    finally:
        w.context.close()


def test_the_users_page_says_when_it_lists_only_the_most_recent(browser, own):
    many = login(browser, own, "many")
    acme = login(browser, own, "acme")
    try:
        many.page.goto(f"{own.url}/ui/users")
        expect(many.page.locator("#user-rows tbody tr")).to_have_count(200)
        expect(many.page.locator("#users-capped")).to_contain_text("The 200 most recently active users")
        many.page.goto(f"{own.url}/ui/users?lang=zh")
        expect(many.page.locator("#users-capped")).to_contain_text("仅列出最近活跃的 200 位用户")
        acme.page.goto(f"{own.url}/ui/users")
        expect(acme.page.locator("#user-rows tbody tr")).to_have_count(4)
        expect(acme.page.locator("#users-capped")).to_have_count(0)
    finally:
        many.context.close()
        acme.context.close()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_trace_of_an_unknown_app_tells_how_to_make_its_suite(browser, own, lang):
    """Before: "… (pass --target app:NAME (an app in flywheel.yaml) or model:ALIAS)" — a CLI flag this form does not
    have; on the Chinese page the message stayed English and the hint read "an 应用 in flywheel.yaml"."""
    w = login(browser, own, "admin")
    try:
        w.page.goto(f"{own.url}/ui/traces/{RETIRED_TRACE}?lang={lang}")
        w.page.fill("#new-suite", "s6-new.yaml")
        w.page.click("#add-to-suite-submit")
        error = w.page.locator("#trace-action-error")
        expect(error).to_contain_text(f"flywheel promote --traces {RETIRED_TRACE[:12]} --to evals/s6-new.yaml "
                                      "--target app:NAME")
        if lang == "zh":
            expect(error).to_contain_text("无法判断新评测套件要运行哪个应用（追踪来自 retired-bot）")
            expect(error).to_contain_text("请选一个已有的评测套件")
            expect(error).not_to_contain_text("cannot tell")
        else:
            expect(error).to_contain_text("cannot tell which app the new suite should run (traces of retired-bot)")
            expect(error).to_contain_text("choose an existing suite")
        expect(error).not_to_contain_text("pass --target")
        assert not (own.live.state.project.root / "evals" / "s6-new.yaml").exists()
        assert w.errors == []
    finally:
        w.context.close()


def test_a_view_name_of_only_spaces_is_refused_before_posting(browser, own):
    """Before: "   " passed `required`, the server dropped it, and the page came back with no view and no word."""
    from flywheel.store.schema_web import web_views

    w = login(browser, own, "acme")
    try:
        w.page.goto(f"{own.url}/ui/traces?status=error&lang=zh")
        name = w.page.locator('#save-view input[name="name"]')
        name.fill("   ")
        w.page.locator("#save-view button").click()
        assert name.evaluate("e => e.validity.patternMismatch")
        assert name.get_attribute("title") == "为此视图起个名字（不能只有空格），最多 100 个字符"
        with own.live.state.store.engine.connect() as conn:
            assert conn.execute(web_views.select().where(web_views.c.tenant == "acme")).first() is None
        name.fill("错误")
        with w.page.expect_navigation():
            w.page.locator("#save-view button").click()
        expect(w.page.locator("section.views")).to_contain_text("错误")
    finally:
        w.context.close()


def test_a_200_letter_queue_name_does_not_widen_the_pages(browser, own):
    """Before: the queue list was 2,329 px wide at 1280 px, and the trace page's queue menu widened the page."""
    w = login(browser, own, "acme")
    try:
        for size in (LAPTOP, PHONE):
            w.page.set_viewport_size(size)
            for path in ("/ui/review", f"/ui/review/{LONG_NAME}?annotator=kim", f"/ui/review/{LONG_NAME}/agreement",
                         f"/ui/traces/{trace_id(8)}", "/ui/review?lang=zh"):
                assert w.page.goto(own.url + path).status == 200, path
                w.page.wait_for_load_state("networkidle")
                width = w.page.evaluate("document.documentElement.scrollWidth")
                assert width <= size["width"], f"{path} is {width} px wide at {size['width']} px"
        expect(w.page.locator(f'#queue-rows tr[data-queue="{LONG_NAME}"]')).to_be_visible()
        assert w.errors == []
    finally:
        w.context.close()

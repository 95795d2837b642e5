"""Regressions found by auditing the dashboard in Chromium as an English-speaking engineer and a Chinese-speaking
reviewer: hints that named CLI options a browser has no use for (`--reference`, `--since`, `--name`), or CLI
commands with their arguments elided (`flywheel judge calibrate … --queue NAME`, `flywheel compare RUN_A RUN_B`),
a drift section whose errors pointed to a Reference field it did not have, a new-queue form that refused the
trace ids the traces list shows (their first 8 characters), pages any site could frame and the browser kept after
"Log out", and ASCII ": " after 无效 on Chinese pages.

One server of this module's own (a new project in the open local mode, so the drift section shows): two traces, a
labelled queue of one of them, two runs of one suite, no stored prompts; the last test logs in to the shared
server of tests/web_support.py. One Chromium per module (web_support.browser)."""

from __future__ import annotations

import re

import httpx
import pytest
from web_support import T0, Watched, demo_trace

from flywheel.errors import UserError
from flywheel.web import message_i18n

pytest.importorskip("playwright")
from playwright.sync_api import expect

TRACE, UNQUEUED = "5120" + "0" * 28, "5123" + "0" * 28
QUEUE = "s12-refunds"
BASE_RUN, CAND_RUN = "5121" * 8, "5122" * 8
_FLAG = re.compile(r"(?<![\w-])--[a-z]")


def _outside_commands(text: str) -> str:
    """`text` less its commands in backticks (a CLI command written out in full may carry its options)."""
    return re.sub(r"`[^`]*`", "", text)


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    from server_support import LiveServer, write_project

    from flywheel import web
    from flywheel.evals.records import CaseRun, RunStore
    from flywheel.feedback import queues
    from flywheel.server import create_app
    from flywheel.store.schema import spans, traces

    app = create_app(write_project(tmp_path_factory.mktemp("s12"), "http://127.0.0.1:9/v1"))
    web.mount(app, app.state.flywheel)
    store = app.state.flywheel.store
    for i, tid in enumerate((TRACE, UNQUEUED)):
        row, sp = demo_trace(i, "default", question="退款要多久？", answer="5 个工作日。", tid=tid)
        with store.engine.begin() as conn:
            conn.execute(traces.insert(), [row])
            conn.execute(spans.insert(), sp)
    queue = queues.create_queue(store, QUEUE, kind="binary", overlap=2, trace_ids=[TRACE])
    item = queues.next_item(store, queue.id, "ana")
    assert item is not None
    queues.label(store, item.id, "ana", "pass")
    runs = RunStore(store)
    for n, run_id in enumerate((BASE_RUN, CAND_RUN)):
        runs.create(
            run_id,
            suite="s12-suite",
            suite_hash="h",
            fingerprint=run_id[:8],
            target="app:support",
            model="gpt",
            threshold=0.8,
            cases_total=1,
            repeat=1,
        )
        runs.save(
            run_id,
            CaseRun(
                case_id="case-0",
                repeat_index=0,
                passed=True,
                score=1.0,
                output="5 days",
                checks=[],
                input="How long do refunds take?",
            ),
        )
        runs.finish(run_id, 1.0, {})
        with store.begin() as conn:
            conn.execute(runs.runs.update().where(runs.runs.c.id == run_id).values(started_at=T0 + n * 3600))
    live = LiveServer(app).start()
    yield live
    live.stop()


# ------------------------------------------------------------------------------------------------ unit tests
def _core_errors() -> list[UserError]:
    """The errors the drift section and the new-queue form get from the core, raised by the core itself."""
    from flywheel.feedback import queues
    from flywheel.monitor.drift import parse_reference, parse_window
    from flywheel.monitor.windows import check_period

    raised: list[UserError] = []
    for call in (
        lambda: parse_reference("foo", T0),
        lambda: parse_reference("window:2026-10-06..2026-10-01", T0),
        lambda: parse_reference("window:xx", T0),
        lambda: parse_window("zz"),
        lambda: check_period(T0, T0),
    ):
        with pytest.raises(UserError) as caught:
            call()
        raised.append(caught.value)
    raised.append(
        UserError(
            "a queue named 'q' already exists", hint="choose another --name, or omit it for a dated one"
        )
    )
    raised.append(
        UserError(
            "no pairs of traces answering the same input with different models or prompts in the "
            "whole store: nothing to review",
            hint=queues._empty_queue_hint("pairwise", "mixed", None, None, None),
        )
    )
    return raised


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_core_errors_on_a_page_name_form_fields_not_cli_options(lang):
    for exc in _core_errors():
        assert _FLAG.search(exc.message + " " + (exc.hint or "")), exc  # the CLI keeps its wording
        shown = message_i18n.localize_error(lang, exc)
        assert not _FLAG.search(_outside_commands(shown)), shown
        assert "…" not in shown, shown  # a command on a page is written out, not elided
        if lang == "zh":
            assert not re.search(
                r"[A-Za-z]+ [A-Za-z]+ [A-Za-z]+", _outside_commands(re.sub(r"'[^']*'", "", shown))
            ), shown
    period = message_i18n.localize_error(lang, _core_errors()[4])
    assert period == (
        "Since is not before Until (give a Since earlier than Until)"
        if lang == "en"
        else "起始时间 不早于 截止时间（起始时间须早于截止时间）"
    )


def test_a_users_own_text_and_a_written_out_command_keep_their_dashes():
    assert message_i18n.localize("en", "no trace with id '--since'") == "no trace with id '--since'"
    exc = UserError("cannot read --reference '--until'", hint="or run `flywheel drift --since 7d`")
    assert (
        message_i18n.localize_error("en", exc)
        == "cannot read Reference '--until' (or run `flywheel drift --since 7d`)"
    )


# ------------------------------------------------------------------------------------------------ in Chromium
@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_the_drift_section_has_the_fields_its_messages_name(browser, own, locale):
    """Before: the drift section had no form: a bad `?reference=` answered "cannot read --reference 'foo'" (its
    format hint dropped), the empty-reference warning said to choose another "in the Reference field", and a
    Chinese page wrote "无效: " with an ASCII colon."""
    zh = locale == "zh-CN"
    w = Watched(browser.new_context(locale=locale, viewport={"width": 390, "height": 844}))
    try:
        w.page.goto(own.url + "/ui/monitors")
        form = w.page.locator("#drift-form")
        form.locator('input[name="reference"]').fill("foo")
        with w.page.expect_response(lambda r: "/ui/monitors?" in r.url):
            form.locator("#drift-apply").click()
        assert "reference=foo" in w.page.url
        bad = form.locator('[data-invalid="reference"]')
        expect(bad).to_contain_text("参照 'foo'" if zh else "Reference 'foo'")
        expect(bad).to_contain_text("window:30d")  # the format, from the core's hint
        expect(bad).to_contain_text("无效：" if zh else "invalid: ")  # Chinese punctuation on a Chinese page
        assert not _FLAG.search(w.page.locator("main").inner_text())
        form.locator('input[name="since"]').fill("1h")
        form.locator('input[name="until"]').fill("2h")
        form.locator('input[name="reference"]').fill("window:30d")
        with w.page.expect_response(lambda r: "/ui/monitors?" in r.url):
            form.locator("#drift-apply").click()
        expect(form.locator('[data-invalid="since"]')).to_contain_text(
            "起始时间须早于截止时间" if zh else "give a Since earlier than Until"
        )
        expect(form.locator('[data-invalid="reference"]')).to_have_count(0)
        assert w.page.evaluate("document.documentElement.scrollWidth") <= 390
        twin = httpx.get(
            f"{own.url}/ui/monitors/drift.json?reference=foo", headers={"accept-language": locale}
        )
        assert twin.json()["errors"] == {
            "reference": "cannot read --reference 'foo'"
        }  # a twin keeps the core's text
        assert not _FLAG.search(w.page.locator("main").inner_text())
    finally:
        w.context.close()


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_hints_for_what_only_the_cli_does_write_the_command_out(browser, own, locale):
    """Before: `flywheel judge calibrate … --queue NAME`, `flywheel compare RUN_A RUN_B` and a bare
    `flywheel prompts register` where the Playground saves a version in two clicks."""
    w = Watched(browser.new_context(locale=locale))
    try:
        w.page.goto(f"{own.url}/ui/review/{QUEUE}/agreement")
        judge = w.page.locator("#judge-line").inner_text()
        assert f"--queue {QUEUE}`" in judge and "…" not in judge and "NAME" not in judge
        w.page.goto(f"{own.url}/ui/evals/compare?base={BASE_RUN}&cand={CAND_RUN}")
        expect(w.page.locator("#judge-summary")).to_contain_text(f"`flywheel compare {BASE_RUN} {CAND_RUN}`")
        w.page.goto(f"{own.url}/ui/prompts")
        expect(w.page.locator("#no-prompts")).to_contain_text("试验场" if locale == "zh-CN" else "Playground")
        w.page.click('header a[href="/ui/playground"]')
        expect(w.page.locator("#run")).to_be_visible()  # where the hint sends the reader: run, then save
        assert w.errors == []
    finally:
        w.context.close()


def test_the_new_queue_form_takes_the_trace_ids_the_traces_list_shows(browser, own):
    """Before: the list shows 8 characters of each id, and the form answered "unknown trace id(s): 51230000"."""
    w = Watched(browser.new_context(locale="zh-CN"))
    try:
        w.page.goto(f"{own.url}/ui/traces")
        shown = w.page.locator(f'tr.row a[href="/ui/traces/{UNQUEUED}"]').inner_text()
        assert len(shown) < len(UNQUEUED) and UNQUEUED.startswith(shown)
        w.page.goto(f"{own.url}/ui/review/new")
        w.page.fill('textarea[name="trace_ids"]', shown)
        w.page.fill('input[name="name"]', "s12-from-list")
        w.page.click("#create-queue")
        w.page.wait_for_url("**/ui/review/s12-from-list")
        w.page.goto(f"{own.url}/ui/review/s12-from-list?annotator=ana")
        expect(w.page.locator("#progress")).to_contain_text("0 / 1")
        assert (
            w.page.goto(f"{own.url}/ui/review/new?trace={TRACE[:8]}").status == 200
        )  # the trace page's button
        expect(w.page.locator('textarea[name="trace_ids"]')).to_have_value(TRACE)
        assert w.errors == []
    finally:
        w.context.close()


def test_no_other_site_frames_a_page_and_only_the_dashboards_scripts_run(browser, own):
    """Before: no Content-Security-Policy: any site could frame the labelling page (click-jacking a reviewer),
    and nothing but escaping stood between a trace's text and a script."""
    w = Watched(browser.new_context())
    try:
        with w.page.expect_response(f"{own.url}/ui/review/{QUEUE}?annotator=ana") as answer:
            w.page.set_content(
                f'<iframe id="framed" src="{own.url}/ui/review/{QUEUE}?annotator=ana"></iframe>'
            )
        policy = answer.value.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in policy and "script-src 'self';" in policy
        framed = w.page.frames[1]
        framed.wait_for_load_state()
        assert not framed.url.startswith(own.url)  # Chromium shows its error page instead
        # the dashboard's own scripts still run under the policy: a key press moves the selection
        w.errors.clear()
        w.page.goto(f"{own.url}/ui/traces")
        w.page.keyboard.press("j")
        expect(w.page.locator("tr.row.selected")).to_have_count(1)
        assert w.errors == []
    finally:
        w.context.close()


def test_back_after_logging_out_asks_for_a_login_again(browser, web_server):
    """Before: Back after "Log out" showed the trace page from the browser's cache (tenant, users, prompt)."""
    from web_support import login, trace_id

    w = login(browser, web_server, "acme")
    try:
        w.page.goto(f"{web_server.url}/ui/traces/{trace_id(3)}")
        expect(w.page.locator("main")).to_contain_text(f"{trace_id(3)} · ")
        w.page.locator('header form[action="/ui/logout"] button').click()
        w.page.wait_for_url("**/ui/login**")
        w.page.go_back()
        w.page.wait_for_url("**/ui/login?next=*")
        expect(w.page.locator("main")).not_to_contain_text(f"{trace_id(3)} · ")
    finally:
        w.context.close()

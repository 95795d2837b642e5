"""The Chinese dashboard shows no English UI text: Chromium with a zh-CN locale visits every page, the empty states
and the error paths (unknown ids and addresses, bad filters, a failed eval run, fired alerts, drift, a failing
provider in the playground), and each page's visible text (and its tooltips) must hold none of the English
phrases the dashboard's own tables and the core's message templates render. Texts the core stores in English
(alert messages, drift texts, eval errors, provider errors) are translated when shown (flywheel.web.stored_i18n):
unit tests build them with the core's own builders. Shares the session's server and the module's Chromium
(tests/web_support.py); what it adds to the store is removed afterwards."""

from __future__ import annotations

import html
import json
import re

import pytest
from web_support import T0, demo_trace, login, trace_id

from flywheel.errors import AttemptFailure, GatewayError, UserError
from flywheel.monitor import drift
from flywheel.monitor.alerts import Alert, drift_alerts
from flywheel.web import i18n, message_i18n, metrics_i18n, review_i18n, stored_i18n

pytest.importorskip("playwright")
from playwright.sync_api import expect

RUN = "e7" * 16  # a failed eval run, removed afterwards
ZH_DRIFT_T = T0 + 40 * 86400  # a quiet day of tenant zh-drift (no other test counts it)
RULES = ("zh-busy", "zh-relative", "zh-slow")
QUEUE, PROMPT = "zh-queue", "zh-prompt"
_CODE = re.compile(r"`[^`]*`|\{[^}]*\}|--[\w-]+|https?://\S+")


def english_phrases() -> list[str]:
    """The English phrases (two words or more) of every text the dashboard renders from its own tables and the
    core's message templates, less what the Chinese text keeps too (names such as McNemar, Krippendorff)."""
    tables = [(i18n.EN, i18n.ZH), (metrics_i18n.EN, metrics_i18n.ZH), (review_i18n.EN, review_i18n.ZH),
              (message_i18n.EN, message_i18n.ZH), (stored_i18n.EN, stored_i18n.ZH)]
    phrases: set[str] = set()
    for en, zh in tables:
        for key, text in en.items():
            for part in re.split(r"[^A-Za-z' ]+", _CODE.sub("|", text)):
                part = part.strip(" '")
                if len(part.split()) >= 2 and part not in zh.get(key, ""):
                    phrases.add(part)
    for text in [*message_i18n.PHRASES, *[w for words in stored_i18n._WORDS.values() for w in words]]:
        for part in re.split(r"[^A-Za-z' ]+", _CODE.sub("|", text)):
            if len(part.strip().split()) >= 2:
                phrases.add(part.strip())
    return sorted(phrases)


PHRASES = english_phrases()
_PHRASE = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in sorted(PHRASES, key=len, reverse=True)) + r")\b")


def english_left(text: str) -> list[str]:
    return sorted(set(_PHRASE.findall(text)))


# ------------------------------------------------------------------------------------------------ unit tests


def test_the_phrase_list_holds_the_known_english():
    for phrase in ("No traces match these filters", "all models failed for alias", "embeddings drifted",
                   "check the endpoint is up and the API key is set", "all traffic", "x baseline",
                   "the reference is empty", "timed out after", "no page"):
        assert phrase in PHRASES, phrase
    assert english_left("没有符合筛选条件的追踪。") == []
    assert english_left("busy: volume = 60, above 10 [all traffic]") == ["all traffic"]


def test_every_stored_text_key_has_both_languages():
    assert set(stored_i18n.EN) == set(stored_i18n.ZH) == {key for _, key, _ in stored_i18n.PATTERNS}
    assert set(review_i18n.EN) == set(review_i18n.ZH)
    assert stored_i18n.alert_text("zh", "something nobody mapped happened") == "something nobody mapped happened"
    assert stored_i18n.error_text("en", "timed out after 30 s") == "timed out after 30 s"


def _chinese(text: str, *kept: str) -> str:
    assert re.search(r"[\u4e00-\u9fff]", text), text
    assert english_left(text) == [], text
    for part in kept:
        assert part in text, text
    return text


def test_monitor_alert_messages_in_chinese():
    absolute = Alert(rule="busy", metric="volume", value=60, bound="above 10", window_start=0, window_end=3600,
                     group={"app": "support"})
    assert _chinese(stored_i18n.alert_text("zh", absolute.message), "busy", "volume = 60", "app=support") == \
        "busy：volume = 60，高于 10 [app=support]"
    relative = Alert(rule="rel", metric="error_rate", value=0.2, bound="above 1.5x baseline", window_start=0,
                     window_end=3600, group={}, baseline=0.05)
    assert _chinese(stored_i18n.alert_text("zh", relative.message)) == \
        "rel：error_rate = 0.2（基线 0.05），高于基线的 1.5 倍 [全部流量]"
    assert stored_i18n.alert_text("en", relative.message) == relative.message
    assert stored_i18n.bound_text("zh", "above 10 / below 0.5x") == "高于 10 / 低于基线的 0.5 倍"


def test_drift_texts_in_chinese():
    report = {"reference": {"threshold": 0.01}, "app": "support", "since": 0.0, "until": 1.0, "alerts": [
        {"kind": "input_drift", "p_value": 0.001, "start": 0.0, "end": 1.0,
         "message": drift.embedding_drift_message("output", 0.001, 0.93)},
        {"kind": "psi:length", "p_value": 0.002, "start": 0.0, "end": 1.0,
         "message": drift.field_shift_message("length", 0.31, {"q1": (0.2, 0.5), "q2": (0.3, 0.3)})}]}
    shown = [stored_i18n.alert_text("zh", a["message"]) for a in report["alerts"]]
    assert shown == ["输出嵌入发生漂移（MMD p=0.001，AUC 0.93）", "length 的分布发生变化（PSI 0.31；q1 20%→50%）"]
    for alert in drift_alerts(report):  # the same texts as notified alerts (rule "drift", a p bound)
        _chinese(stored_i18n.alert_text("zh", alert.message), "p 低于 0.01", "app=support")
    for warning in (drift.reference_warning(0, "window"), drift.reference_warning(0, "eval", "refunds"),
                    drift.reference_warning(2, "eval"), drift.reference_warning(3, "window")):
        assert warning is not None
        _chinese(stored_i18n.alert_text("zh", warning))
    assert drift.reference_warning(drift.MIN_TRACES, "window") is None


def test_stored_eval_and_provider_errors_in_chinese():
    one = GatewayError("gpt", [AttemptFailure("gpt", "fake-model", "request timed out", 500)])
    text = _chinese(stored_i18n.error_text("zh", one.render()), "'gpt'", "gpt (fake-model) HTTP 500", "`fallbacks:`")
    assert "请求超时" in text and "提示：" in text
    two = GatewayError("gpt", [AttemptFailure("gpt", "m", "upstream said no"), AttemptFailure("other", "m", "no")])
    assert "upstream said no" in _chinese(stored_i18n.error_text("zh", two.render()))
    assert stored_i18n.error_text("zh", "timed out after 30 s") == "30 秒后超时"
    assert stored_i18n.error_text("zh", "interrupted") == "已中断"
    located = UserError("no trace with id 'abc'", where="evals/refunds.yaml:3", hint="list traces with `flywheel traces`")
    assert stored_i18n.error_text("zh", located.render()) == \
        "evals/refunds.yaml:3: 没有 ID 为 'abc' 的追踪\n  提示：用 `flywheel traces` 列出追踪"
    assert stored_i18n.error_text("zh", "ValueError: boom") == "ValueError: boom"  # nobody mapped it: as it is
    _chinese(stored_i18n.error_text("zh", "judge call failed: " + one.message), "'gpt'")
    _chinese(stored_i18n.error_text("zh", "alert rule `errs` watches unknown metric 'eror_rate'"), "`errs`")


def test_labels_of_fixed_values():
    zh = review_i18n.Text("zh")
    assert zh.label("strategy", "negative-feedback") == "负面反馈" and zh.label("strategy", "custom") == "custom"
    assert review_i18n.Text("en").label("strategy", "random") == "random"
    assert zh.label("outcome", "tie") == "平局" and zh.status("ok") == "正常"


# ------------------------------------------------------------------------------------------------ in Chromium


def _drift_traces(store) -> tuple[str, list[str]]:
    """An hour of refund questions, then 40 minutes about physics: the query of a drift report that fires, and
    the trace ids."""
    from flywheel.store.schema import spans, traces

    rows, all_spans = [], []
    topics = [("How long do refunds take for my order?", "Refunds take 5 days."),
              ("Can I return shoes after a month?", "Returns are accepted for 30 days.")]
    shifted = [("Explain quantum entanglement between photons", "Entangled photons share a state."),
               ("What is the speed of a neutrino in vacuum", "Close to the speed of light.")]
    for k in range(80):
        q, a = (shifted if k >= 40 else topics)[k % 2]
        row, sp = demo_trace(int((ZH_DRIFT_T - T0) / 60) + k, "zh-drift", question=f"{q} ({k})", answer=a)
        rows.append(row)
        all_spans += sp
    with store.engine.begin() as conn:
        conn.execute(traces.insert(), rows)
        conn.execute(spans.insert(), all_spans)
    mid = ZH_DRIFT_T + 40 * 60
    return (f"window=20m&since={mid:.0f}&until={mid + 2400:.0f}&reference=window:{ZH_DRIFT_T:.0f}..{mid:.0f}",
            [r["trace_id"] for r in rows])


@pytest.fixture(scope="module")
def seeded(web_server):
    """Alert rules and sent alerts, a failed eval run with failed cases, drift data (tenant zh-drift) with a
    labelled review queue over it, a prompt with two versions; removed afterwards (but the traces)."""
    from sqlalchemy import delete

    from flywheel.config import AlertRule
    from flywheel.evals.records import CaseRun, RunStore
    from flywheel.feedback import queues
    from flywheel.prompts.prompt import Prompt
    from flywheel.prompts.versions import PromptVersions
    from flywheel.store.schema_monitor import monitor_alerts
    from flywheel.store.schema_prompts import prompt_labels, prompt_versions
    from flywheel.store.schema_review import review_claims, review_items, review_labels, review_queues
    from flywheel.types import CheckResult

    state = web_server.live.state
    store = state.store
    saved = state.project.config.monitor.alerts, state.clock
    state.project.config.monitor.alerts = [
        AlertRule(name="zh-busy", metric="volume", window="1h", above=10),
        AlertRule(name="zh-relative", metric="error_rate", window="1h", above=1.5, relative_to="window:6h"),
        AlertRule(name="zh-slow", metric="latency_p95_ms", window="1h", below=1e7)]
    state.clock = lambda: T0 + 3600 * 1.5  # inside acme's second hour: zh-busy and zh-slow fire
    sent = [Alert(rule="zh-relative", metric="error_rate", value=0.2, bound="above 1.5x baseline", window_start=T0,
                  window_end=T0 + 3600, group={}, baseline=0.05),
            *drift_alerts({"reference": {"threshold": 0.01}, "app": "support", "since": T0, "until": T0 + 3600,
                           "alerts": [{"kind": "input_drift", "p_value": 0.001, "start": T0, "end": T0 + 3600,
                                       "message": drift.embedding_drift_message("input", 0.001, 0.93)}]})]
    with store.begin() as conn:
        conn.execute(monitor_alerts.insert(), [
            {"rule": "zh-busy" if a.rule == "drift" else a.rule, "window_start": T0 + i, "sent_at": T0 + 3600 + i,
             "group_key": json.dumps(a.group, sort_keys=True), "message": a.message} for i, a in enumerate(sent)])
    runs = RunStore(store)
    runs.create(RUN, suite="refunds-zh", suite_hash="h", fingerprint="zh", target="app:support", model="gpt",
                threshold=0.8, cases_total=3, repeat=1)
    failure = GatewayError("gpt", [AttemptFailure("gpt", "fake-model", "request timed out", 500)])
    for i, error in enumerate(["timed out after 30 s", failure.message, None]):
        runs.save(RUN, CaseRun(case_id=f"zh-{i}", repeat_index=0, passed=False, score=0.0, output="", input="q",
                               reference="r", error=error,
                               checks=[CheckResult(name="contains", passed=False, score=0.0)]))
    runs.fail(RUN, failure)
    query, ids = _drift_traces(store)
    queue = queues.create_queue(store, QUEUE, kind="binary", overlap=2, trace_ids=ids[:3], tenant="zh-drift")
    for who, verdict in (("ana", "pass"), ("bo", "fail")):
        item = queues.next_item(store, queue, who)
        assert item is not None
        queues.label(store, item.id, who, verdict, reason="答案不对")
    versions = PromptVersions(store)
    for system in ("You are ACME support.", "You are ACME support. Be brief."):
        versions.record(Prompt(name=PROMPT, system=system, template="Question: {{question}}"))
    yield query
    state.project.config.monitor.alerts, state.clock = saved
    with store.begin() as conn:
        for table in (review_labels, review_claims, review_items):
            conn.execute(delete(table).where(table.c.queue_id == queue.id))
        conn.execute(delete(review_queues).where(review_queues.c.id == queue.id))
        for table in (prompt_labels, prompt_versions):
            conn.execute(delete(table).where(table.c.name == PROMPT))
        conn.execute(delete(monitor_alerts).where(monitor_alerts.c.rule.in_(RULES)))
        conn.execute(delete(runs.results).where(runs.results.c.run_id == RUN))
        conn.execute(delete(runs.runs).where(runs.runs.c.id == RUN))


@pytest.fixture(scope="module")
def zh(browser, web_server):
    w = login(browser, web_server, "admin", locale="zh-CN")
    yield w
    w.context.close()


def _visible(page) -> str:
    """The page's text as shown, with its tooltips and the labels of its options."""
    extra = page.evaluate("Array.from(document.querySelectorAll('[title],[placeholder],[label]')).map(e => "
                          "[e.title, e.getAttribute('placeholder'), e.getAttribute('label')].join(' ')).join('\\n')")
    return page.inner_text("body") + "\n" + extra


PAGES = ["/ui/traces", f"/ui/traces/{trace_id(7)}", "/ui/traces?search=zzzz-nothing", "/ui/sessions",
         "/ui/sessions/sess-1", "/ui/users", "/ui/review", "/ui/review/new", f"/ui/review/new?trace={trace_id(3)}",
         "/ui/evals", f"/ui/evals/{RUN}", "/ui/evals/compare", "/ui/metrics", "/ui/metrics?group_by=model",
         "/ui/prompts", f"/ui/prompts/{PROMPT}", "/ui/playground", f"/ui/playground?trace={trace_id(4)}",
         f"/ui/review/{QUEUE}", f"/ui/review/{QUEUE}?annotator=cy", f"/ui/review/{QUEUE}/agreement"]
ERROR_PAGES = [  # empty states and error paths
    "/ui/traces?since=yesterday-ish&status=bogus&latency_min=-1&limit=0", "/ui/sessions?since=soon",
    "/ui/evals?limit=abc&status=bogus", "/ui/metrics?window=3x&group_by=colour",
    "/ui/metrics?since=2026-01-02&until=2026-01-01", f"/ui/traces/{'f' * 32}", "/ui/sessions/no-such-session",
    "/ui/review/no-such-queue", "/ui/review/no-such-queue/agreement", "/ui/evals/no-such-run",
    "/ui/prompts/no-such-prompt", f"/ui/evals/compare?base={RUN}", "/ui/no-such-page", "/ui/traces/x/y/z"]


def test_every_page_in_chinese_has_no_english_ui_text(zh, web_server, seeded):
    bad: dict[str, list[str]] = {}
    for path in PAGES + ERROR_PAGES:
        response = zh.page.goto(web_server.url + path)
        assert response is not None and (response.status == 200) == (path in PAGES), path
        zh.page.wait_for_load_state("networkidle")
        left = english_left(_visible(zh.page))
        if left:
            bad[path] = left
    assert bad == {}
    zh.page.goto(web_server.url + "/ui/no-such-page")
    expect(zh.page.locator("#error-message")).to_have_text("没有页面 /ui/no-such-page")


def test_monitors_alerts_and_drift_in_chinese(zh, web_server, seeded):
    page = zh.page
    page.goto(f"{web_server.url}/ui/monitors?fresh=1&{seeded}")
    expect(page.locator("#drift-windows tbody tr")).to_have_count(2, timeout=60_000)  # drift loads after the page
    expect(page.locator('#drift-windows tr[data-drifted="yes"]').first).to_be_visible()
    assert english_left(_visible(page)) == []
    log = page.locator("#alert-log").inner_text()
    assert "高于基线的 1.5 倍 [全部流量]" in log and "输入嵌入发生漂移" in log
    expect(page.locator('#rules tr[data-rule="zh-busy"] div.firing').first).to_contain_text("高于 10")
    expect(page.locator('#rules tr[data-rule="zh-relative"]')).to_contain_text("高于基线的 1.5 倍")
    expect(page.locator("#drift-alerts")).to_contain_text("嵌入发生漂移")
    zh.shot("zh-monitors")
    empty = page.request.get(f"{web_server.url}/ui/monitors/drift?window=1h&since={T0 + 90 * 86400:.0f}"
                             f"&until={T0 + 90 * 86400 + 7200:.0f}&reference=window:1d",
                             headers={"Accept-Language": "zh-CN"})
    assert "参照为空" in empty.text() and english_left(empty.text()) == []
    unknown = page.request.get(f"{web_server.url}/ui/monitors/drift?reference=eval:no-such-suite",
                               headers={"Accept-Language": "zh-CN"})
    assert "没有评测套件 'no-such-suite'" in html.unescape(unknown.text()) and english_left(unknown.text()) == []
    twin = page.request.get(f"{web_server.url}/ui/monitors.json").json()  # the JSON keeps the English text
    assert any("above 1.5x baseline [all traffic]" in a["message"] for a in twin["alert_log"])


def test_failed_eval_run_in_chinese(zh, web_server, seeded):
    page = zh.page
    page.goto(f"{web_server.url}/ui/evals/{RUN}")
    error = page.locator("#run-error")
    expect(error).to_contain_text("别名 'gpt' 的所有模型都失败了")
    expect(error).to_contain_text("提示：请确认端点可用")
    expect(page.locator('tr[data-case="zh-0"]')).to_contain_text("30 秒后超时")
    assert english_left(_visible(page)) == []


def test_playground_provider_error_in_chinese(zh, web_server):
    page = zh.page
    web_server.llm.fail("server_error", times=1)
    try:
        page.goto(web_server.url + "/ui/playground")
        page.fill("#input", "How long do refunds take?")
        page.select_option("#v0_model", "gpt")
        page.select_option("#v1_model", "")
        page.click("#run")
        error = page.locator("#results .error")
        expect(error).to_contain_text("失败：别名 'gpt' 的所有模型都失败了")
        assert english_left(_visible(page)) == []
        zh.shot("zh-playground-error")
    finally:
        web_server.llm.clear_faults()


def test_login_and_an_expired_session_in_chinese(browser, web_server):
    """No session (never logged in, or it expired): the login page, then a wrong key, all in Chinese."""
    from web_support import Watched

    w = Watched(browser.new_context(locale="zh-CN"))
    try:
        w.page.goto(f"{web_server.url}/ui/monitors")
        w.page.wait_for_url("**/ui/login**")
        assert english_left(_visible(w.page)) == []
        w.page.fill('input[name="key"]', "fw-not-a-key")
        w.page.click("#login-submit")
        expect(w.page.locator("main")).to_contain_text("该密钥无效")
        assert english_left(_visible(w.page)) == []
    finally:
        w.context.close()

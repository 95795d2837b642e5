"""/ui/metrics and /ui/monitors in real Chromium (Playwright) against the shared live server of
tests/web_support.py: pages load without console errors, a chart point opens exactly the traces it counted,
group-by changes the URL and the charts, a tenant key sees only its tenant, malformed params are marked invalid
(never a 500), the compute budget is reported, alert rules / the alert log / drift with example trace links."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from web_support import T0, demo_trace, login

from flywheel import web

web.add_page("flywheel.web.metrics_pages", ("metrics", "/ui/metrics"))  # before the session's server mounts /ui
web.add_page("flywheel.web.monitor_pages", ("monitors", "/ui/monitors"))

pytest.importorskip("playwright")
from playwright.sync_api import expect

RANGE = f"since={T0:.0f}&until={T0 + 7200:.0f}"  # the first two hours: acme's 120 traces
DRIFT_T = T0 + 20 * 86400  # a quiet day for the drift data (tenant drift-t: no other test counts it)


@pytest.fixture(scope="module")
def acme(browser, web_server):
    w = login(browser, web_server, "acme")
    yield w
    w.context.close()


@pytest.fixture(scope="module")
def admin(browser, web_server):
    w = login(browser, web_server, "admin")
    yield w
    w.context.close()


def get(server, path: str, who: str = "admin") -> httpx.Response:
    return httpx.get(server.url + path, headers={"Authorization": f"Bearer {server.keys[who]}"}, timeout=60)


def test_pages_load_without_console_errors(acme, admin, web_server):
    for w, path, shot in [(acme, f"/ui/metrics?window=15m&{RANGE}", "metrics"), (acme, "/ui/metrics", "metrics-now"),
                          (acme, "/ui/monitors", "monitors-tenant"), (admin, "/ui/monitors", "monitors")]:
        w.errors.clear()
        response = w.page.goto(web_server.url + path)
        assert response.status == 200, path
        w.page.wait_for_load_state("networkidle")
        w.shot(shot)
        assert w.errors == [], f"{path}: {w.errors}"
    expect(acme.page.locator("#drift")).to_contain_text("admin")  # drift spans tenants: not for a tenant key


def test_a_chart_point_opens_the_traces_it_counted(acme, web_server):
    page = acme.page
    page.goto(f"{web_server.url}/ui/metrics?window=1h&group_by=model&{RANGE}")
    bars = page.locator('figure[data-metric="volume"] svg a')
    assert bars.count() >= 4  # 2 models × at least 2 windows
    target = bars.nth(1)
    volume = int(float(target.locator(".point").get_attribute("data-y")))
    series = target.locator(".point").get_attribute("data-series")
    target.click()
    page.wait_for_url(re.compile(r"/ui/traces\?"))
    assert f"model={series}" in page.url and "since=" in page.url and "until=" in page.url
    expect(page.locator("#trace-rows tbody tr")).to_have_count(volume)
    acme.shot("metrics-point-traces")
    # a point of the negative-feedback chart opens only the traces with negative feedback
    page.goto(f"{web_server.url}/ui/metrics?window=1h&{RANGE}")
    point = page.locator('figure[data-metric="negative_feedback_rate"] svg a').first
    href = point.get_attribute("href")
    assert "feedback=negative" in href
    rate = float(point.locator(".point").get_attribute("data-y"))
    total = get(web_server, href.replace("/ui/traces?", "/ui/traces.json?").replace("&feedback=negative", ""), "acme")
    negative = get(web_server, href.replace("/ui/traces?", "/ui/traces.json?"), "acme")
    assert len(negative.json()["rows"]) == round(rate * len(total.json()["rows"])) > 0


def test_group_by_changes_the_url_and_the_charts(acme, web_server):
    page = acme.page
    page.goto(f"{web_server.url}/ui/metrics?window=1h&{RANGE}")
    volume = page.locator('figure[data-metric="volume"] svg .point')
    assert {volume.nth(i).get_attribute("data-series") for i in range(volume.count())} == {""}
    page.select_option("#group_by", "model")
    page.wait_for_url(re.compile(r"group_by=model"))
    assert {volume.nth(i).get_attribute("data-series") for i in range(volume.count())} == {"gpt", "other"}
    expect(page.locator('figure[data-metric="volume"] .legend')).to_contain_text("other")
    page.select_option("#group_by", "prompt_version")
    page.wait_for_url(re.compile(r"group_by=prompt_version"))
    assert {volume.nth(i).get_attribute("data-series") for i in range(volume.count())} == {"v1", "v2"}
    page.select_option("#window", "15m")
    page.wait_for_url(re.compile(r"window=15m"))
    assert volume.count() == 2 * 9  # 2 prompt versions × the 15-minute windows the two hours touch
    acme.shot("metrics-grouped")


def test_twins_and_tenant_scope(web_server):
    acme = get(web_server, f"/ui/metrics.json?window=1d&group_by=tenant&{RANGE}", "acme").json()
    assert [r["group_tenant"] for r in acme["rows"]] == ["acme"]
    assert sum(r["volume"] for r in acme["rows"]) == 120
    everyone = get(web_server, f"/ui/metrics.json?window=1d&group_by=tenant&since={T0:.0f}&until={T0 + 86400:.0f}")
    assert {r["group_tenant"] for r in everyone.json()["rows"]} >= {"acme", "globex"}
    globex = get(web_server, f"/ui/metrics.json?window=1d&since={T0:.0f}&until={T0 + 86400:.0f}&tenant=acme", "globex")
    assert sum(r["volume"] for r in globex.json()["rows"]) == 5  # its own tenant whatever the URL asks
    csv = get(web_server, f"/ui/metrics.csv?window=1h&group_by=model&{RANGE}", "acme")
    assert csv.status_code == 200 and csv.content.decode("utf-8-sig").startswith("start,end,group_model,volume")
    assert len(csv.text.splitlines()) == 1 + 2 * 3  # 2 models × the 3 hours the range touches
    zh = get(web_server, f"/ui/metrics?lang=zh&{RANGE}", "acme")  # no browser: the language cookie stays out
    assert zh.status_code == 200 and "负面反馈率" in zh.text and "点击数据点" in zh.text
    assert "告警规则" in get(web_server, "/ui/monitors?lang=zh", "acme").text


def test_malformed_params_are_marked_invalid_never_500(acme, web_server):
    page = acme.page
    response = page.goto(f"{web_server.url}/ui/metrics?window=2y&group_by=colour&since=yesterday&app={'x' * 300}")
    assert response.status == 400
    for name in ("window", "group_by", "since", "app"):
        expect(page.locator(f'[data-invalid="{name}"]')).to_be_visible()
    acme.shot("metrics-invalid")
    for path, param in (("/ui/metrics.json?since=9&until=1", "since"),
                        ("/ui/metrics.json?window=1h&since=0&until=1e10", "since"),
                        ("/ui/metrics.json?until=nope", "until"), ("/ui/monitors/drift.json?reference=bogus", "reference"),
                        ("/ui/monitors/drift.json?window=-3&since=x", "window")):
        r = get(web_server, path)
        assert r.status_code == 400 and param in r.json()["errors"], (path, r.status_code, r.text[:300])
    assert get(web_server, "/ui/metrics.csv?until=nope").status_code == 400
    fragment = get(web_server, "/ui/monitors/drift?window=-3&since=x")
    assert fragment.status_code == 200 and 'data-invalid="since"' in fragment.text


def test_the_compute_budget_is_reported(web_server):
    from flywheel.monitor.windows import parse_duration
    from flywheel.web.metrics_pages import measure

    store = web_server.live.state.store
    p = {"width": parse_duration("15m"), "since": T0, "until": T0 + 7200.0, "group_by": "", "where": {}}
    full, covered = measure(store, p)
    assert covered is None and not any(w.details.get("summary_only") for w in full)
    assert sum(w.metrics["volume"] for w in full) == 120  # acme's traces (globex's come hours later)
    # no time at all: every window still has its SQL totals (the same ones), nothing else
    bare, covered = measure(store, p, budget_s=-1.0)
    assert covered == p["until"] and all(w.details.get("summary_only") for w in bare)
    assert [(w.start, w.metrics["volume"], w.metrics["cost_usd"]) for w in bare] == \
        [(w.start, w.metrics["volume"], w.metrics["cost_usd"]) for w in full]
    assert all(w.metrics["latency_p95_ms"] is None for w in bare)
    # a trace cap: the newest windows in full, the older ones summarised, the boundary reported
    part, covered = measure(store, p, max_traces=40, chunk_traces=1)
    done = [w for w in part if not w.details.get("summary_only")]
    assert covered is not None and 0 < len(done) < len(part)
    assert all(w.start >= covered - 900 for w in done) and all(w.start < covered for w in part if w not in done)
    json_twin = get(web_server, f"/ui/metrics.json?window=15m&{RANGE}").json()
    assert json_twin["partial"] is False and json_twin["computed_since"] is None


def test_rules_state_and_the_alert_log(acme, admin, web_server):
    from flywheel.config import AlertRule
    from flywheel.store.schema_monitor import monitor_alerts

    state = web_server.live.state
    saved_rules, saved_clock = state.project.config.monitor.alerts, state.clock
    state.project.config.monitor.alerts = [
        AlertRule(name="busy", metric="volume", window="1h", above=10),
        AlertRule(name="slow", metric="latency_p95_ms", window="1h", above=1e6),
        AlertRule(name="globex-errors", metric="error_rate", window="1h", above=0.5, where={"tenant": "globex"})]
    with state.store.engine.begin() as conn:
        conn.execute(monitor_alerts.insert(), [
            {"rule": "busy", "window_start": T0, "group_key": json.dumps({"tenant": "acme"}), "sent_at": T0 + 3600,
             "message": "busy: volume = 60, above 10 [tenant=acme]"},
            {"rule": "busy", "window_start": T0, "group_key": json.dumps({"tenant": "globex"}),
             "sent_at": T0 + 3601, "message": "busy: volume = 99, above 10 [tenant=globex]"}])
    state.clock = lambda: T0 + 3600 * 1.5  # "now" is inside the data's second hour
    try:
        page = acme.page
        page.goto(web_server.url + "/ui/monitors")
        expect(page.locator('#rules tr[data-rule="busy"] [data-state]')).to_have_attribute("data-state", "firing")
        expect(page.locator('#rules tr[data-rule="slow"] [data-state]')).to_have_attribute("data-state", "ok")
        expect(page.locator('#rules tr[data-rule="globex-errors"]')).to_have_count(0)  # another tenant's rule
        expect(page.locator("#alert-log tbody tr")).to_have_count(1)
        assert "globex" not in page.locator("#alert-log").inner_text()
        acme.shot("monitors-rules")
        everything = get(web_server, "/ui/monitors.json").json()
        assert len(everything["rows"]) == 3 and len(everything["alert_log"]) >= 2
    finally:
        state.project.config.monitor.alerts, state.clock = saved_rules, saved_clock


def seed_drift(store) -> list[str]:
    """A day of support questions, then an hour about something else: the second hour drifts."""
    from flywheel.store.schema import spans, traces

    rows, all_spans, ids = [], [], []
    topics = [("How long do refunds take for my order?", "Refunds take 5 days."),
              ("Can I return shoes after a month?", "Returns are accepted for 30 days.")]
    shifted = [("Explain quantum entanglement between photons", "Entangled photons share a state."),
               ("What is the speed of a neutrino in vacuum", "Close to the speed of light.")]
    for k in range(80):
        later = k >= 40
        q, a = (shifted if later else topics)[k % 2]
        i = int((DRIFT_T - T0) / 60) + k
        row, sp = demo_trace(i, "drift-t", question=f"{q} ({k})", answer=a)
        ids.append(row["trace_id"])
        rows.append(row)
        all_spans += sp
    with store.engine.begin() as conn:
        conn.execute(traces.insert(), rows)
        conn.execute(spans.insert(), all_spans)
    return ids


def test_drift_shows_windows_and_new_topics_with_example_traces(admin, web_server):
    ids = seed_drift(web_server.live.state.store)
    mid = DRIFT_T + 40 * 60
    query = (f"window=20m&since={mid:.0f}&until={mid + 2400:.0f}&reference=window:{DRIFT_T:.0f}..{mid:.0f}"
             "&app=support")
    page = admin.page
    admin.errors.clear()
    page.goto(f"{web_server.url}/ui/monitors?{query}")
    rows = page.locator("#drift-windows tbody tr")
    expect(rows).to_have_count(2, timeout=60_000)  # computed after the page, by HTMX
    assert admin.errors == []
    report = get(web_server, f"/ui/monitors/drift.json?{query}").json()
    assert [w["n"] for w in report["rows"]] == [20, 20]
    assert all(w["input_drift"]["drifted"] for w in report["rows"])
    assert page.locator('#drift-windows tr[data-drifted="yes"]').count() == 2
    examples = page.locator("#drift-windows .cluster[data-kind=new_clusters] a.example")
    assert examples.count() > 0
    admin.shot("monitors-drift")
    href = examples.first.get_attribute("href")
    assert href.rsplit("/", 1)[1] in ids[40:]  # an example of a new topic is one of the shifted traces
    examples.first.click()
    page.wait_for_url(re.compile(r"/ui/traces/[0-9a-f]{32}$"))
    expect(page.locator("main")).to_contain_text(re.compile("quantum|neutrino"))


def test_sql_totals_match_the_full_metrics_on_both_engines(store_url):
    """The SQL summary a window falls back to has the same buckets and totals as monitor.windows.compute
    (SQLite truncates, PostgreSQL floors: both must agree)."""
    from web_support import seed

    from flywheel.monitor.windows import compute, parse_duration
    from flywheel.store import Store
    from flywheel.web.metrics_pages import measure

    store = Store.open(store_url)
    try:
        seed(store)
        p = {"width": parse_duration("15m"), "since": T0 - 3600, "until": T0 + 4 * 3600.0, "group_by": "model",
             "where": {"tenant": "acme"}}
        bare, covered = measure(store, p, budget_s=-1.0)
        full = compute(store, window="15m", since=p["since"], until=p["until"], group_by=("model",),
                       where={"tenant": "acme"})
        assert covered == p["until"]

        def key(w):
            return (w.start, w.group["model"], w.metrics["volume"], w.metrics["error_rate"], w.metrics["cost_usd"],
                    w.metrics["tokens"])

        assert sorted(map(key, bare)) == sorted(map(key, full)) and len(full) > 8
        merged, covered = measure(store, p)
        assert covered is None and sorted(map(key, merged)) == sorted(map(key, full))
    finally:
        store.close()

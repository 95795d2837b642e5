"""The review pages in real Chromium against the live dashboard server of tests/web_support.py: the queue list and
new-queue form, two annotators labelling with the keyboard in two browser contexts (overlap K=2 holds: a third
annotator gets nothing), undo, blind pairwise order, the agreement page, 404s, invalid forms, CSRF and tenants."""

from __future__ import annotations

import importlib
import re

import httpx
import pytest
from web_support import GLOBEX_TRACE, Watched, login, trace_id

from flywheel import web

pytest.importorskip("playwright")
# web_support's fixtures (one server, one Chromium) as a plugin: shared by every module of the session that uses
# them this way, where importing them would make one instance per module (and Playwright allows one at a time)
from playwright.sync_api import expect

web.add_page("flywheel.web.review_pages", ("review", "/ui/review"))
BINARY = [trace_id(i) for i in (1, 2, 4)]
PAIR = (trace_id(5), trace_id(8))


@pytest.fixture(scope="module")
def server(web_server):
    """The session's server with the review pages (mounted already when this module was imported first)."""
    from flywheel.feedback import queues

    app = web_server.live.app
    if "/ui/review" not in {getattr(r, "path", None) for r in app.routes}:
        app.include_router(importlib.import_module("flywheel.web.review_pages").router)
    store = app.state.flywheel.store
    queues.create_queue(store, "web-binary", kind="binary", overlap=2, trace_ids=BINARY, tenant="acme")
    queues.create_queue(store, "web-pairs", kind="pairwise", overlap=1, pairs=[PAIR], tenant="acme")
    return web_server


def annotate(browser, server, who: str, queue: str) -> Watched:
    w = login(browser, server, "acme")
    w.page.goto(f"{server.url}/ui/review/{queue}?annotator={who}")
    expect(w.page.locator("#annotator-name")).to_have_text(who)
    return w


def label_with(w: Watched, key: str, mine: int) -> None:
    w.page.keyboard.press(key)
    expect(w.page.locator("#mine")).to_have_text(str(mine))


def test_queue_list_and_json_twin(browser, server):
    w = login(browser, server, "acme")
    try:
        response = w.page.goto(server.url + "/ui/review")
        assert response.status == 200
        w.page.wait_for_load_state("networkidle")
        expect(w.page.locator('#queue-rows tr[data-queue="web-binary"]')).to_contain_text("0 / 3")
        w.shot("review-queues")
        assert w.errors == []
        twin = httpx.get(server.url + "/ui/review.json", headers={"Authorization": f"Bearer {server.keys['acme']}"})
        names = {r["name"] for r in twin.json()["rows"]}
        assert {"web-binary", "web-pairs"} <= names
        csv = httpx.get(server.url + "/ui/review.csv", headers={"Authorization": f"Bearer {server.keys['acme']}"})
        assert csv.status_code == 200 and "web-binary" in csv.text
    finally:
        w.context.close()


def test_two_annotators_label_with_the_keyboard_and_overlap_holds(browser, server):
    from flywheel.feedback import queues

    store = server.live.app.state.flywheel.store
    ana = annotate(browser, server, "ana", "web-binary")
    bob = annotate(browser, server, "bob", "web-binary")
    try:
        first = ana.page.locator("#current-item").get_attribute("data-item")
        expect(ana.page.locator("#final-prompt")).to_contain_text("You are ACME support.", use_inner_text=False)
        ana.page.fill("#reason", "period is right; p and f typed here are text")
        ana.page.keyboard.press("Escape")
        label_with(ana, "p", 1)
        label_with(ana, "f", 2)
        ana.shot("review-labelling")
        label_with(ana, "p", 3)
        expect(ana.page.locator("#done")).to_be_visible()

        label_with(bob, "f", 1)  # a mistake on the first item …
        bob.page.keyboard.press("u")  # … undone: the same item comes back
        expect(bob.page.locator("#mine")).to_have_text("0")
        expect(bob.page.locator("#current-item")).to_have_attribute("data-item", first)
        label_with(bob, "p", 1)
        label_with(bob, "f", 2)
        label_with(bob, "f", 3)
        expect(bob.page.locator("#done")).to_be_visible()
        assert ana.errors == [] and bob.errors == []

        got = {(lb.annotator, lb.item_id): lb for lb in queues.labels(store, "web-binary")}
        assert len(got) == 6
        assert got[("ana", first)].reason == "period is right; p and f typed here are text"
        assert got[("ana", first)].verdict == "pass" and got[("bob", first)].verdict == "pass"

        carol = annotate(browser, server, "carol", "web-binary")  # K = 2: nothing is left for a third person
        try:
            expect(carol.page.locator("#done")).to_be_visible()
            assert carol.page.locator("#current-item").count() == 0
        finally:
            carol.context.close()

        ana.page.goto(f"{server.url}/ui/review/web-binary/agreement")
        expect(ana.page.locator('#pairs tr[data-pair="ana|bob"]')).to_contain_text("3")
        rows = ana.page.locator("#disagreements tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first.locator("a")).to_have_attribute("href", re.compile(r"/ui/traces/[0-9a-f]{32}"))
        expect(ana.page.locator("#fleiss")).to_contain_text(".")
        ana.shot("review-agreement")
        assert ana.errors == []
        progress = httpx.get(server.url + "/ui/review.json",
                             headers={"Authorization": f"Bearer {server.keys['acme']}"}).json()["rows"]
        row = next(r for r in progress if r["name"] == "web-binary")
        assert row["complete"] == 3 and row["annotators"] == {"ana": 3, "bob": 3}
    finally:
        ana.context.close()
        bob.context.close()


def test_agreement_page_follows_new_labels_and_shows_the_judge(browser, server):
    """The agreement page reads the labels when it is opened: a disagreement resolved (undo + relabel) is gone;
    a judge calibrated on the queue shows its κ."""
    from flywheel.evals.calibration_store import judge_key, save_calibration
    from flywheel.feedback import queues

    store = server.live.app.state.flywheel.store
    w = login(browser, server, "acme")
    try:
        w.page.goto(f"{server.url}/ui/review/web-binary/agreement")
        expect(w.page.locator("#disagreements tbody tr")).to_have_count(1)
        item = w.page.locator("#disagreements tbody tr").first.get_attribute("data-item")
        queues.undo(store, item, "bob")
        queues.label(store, item, "bob", "pass")
        crit = "The answer gives the refund period from the policy."
        save_calibration(store, judge_key=judge_key(crit), examples=[], check_name="evals/qa.yaml#refunds",
                         base_criterion=crit, criterion=crit, prompt=crit, judge_model="judge-m",
                         queue_id=queues.get_queue(store, "web-binary").id, seed=0, n=10, n_heldout=4,
                         kappa_before=0.5, kappa_after=0.7, adopted=True, metrics={})
        w.page.reload()
        expect(w.page.locator("#no-disagreements")).to_be_visible()
        expect(w.page.locator("#judge-line")).to_contain_text("κ = 0.700 on 4 held-out items (adopted)")
        assert w.errors == []
        twin = httpx.get(f"{server.url}/ui/review/web-binary/agreement.json",
                         headers={"Authorization": f"Bearer {server.keys['acme']}"}).json()
        assert twin["rows"] == [] and twin["report"]["n_labels"] == 6 and twin["judge"]["kappa"] == 0.7
    finally:
        w.context.close()


def test_pairwise_is_blind_and_maps_back(browser, server):
    from flywheel.feedback import queues

    store = server.live.app.state.flywheel.store
    w = annotate(browser, server, "dana", "web-pairs")
    try:
        item = queues.next_item(store, "web-pairs", "dana")  # the same claim, in dana's order
        assert item is not None
        page_text = w.page.locator("#item").inner_text()
        assert "gpt" not in page_text and "other" not in page_text  # no model names
        assert item.trace_id not in w.page.content()  # nor which trace is which
        expect(w.page.locator("#side-a")).to_be_visible()
        w.shot("review-pairwise")
        label_with(w, "a", 1)
        expect(w.page.locator("#done")).to_be_visible()
        (lb,) = queues.labels(store, "web-pairs")
        assert lb.shown == "a" and lb.verdict == ("b" if item.swapped else "a")
        assert w.errors == []
    finally:
        w.context.close()


def test_new_queue_from_a_trace_and_invalid_form(browser, server):
    w = login(browser, server, "acme")
    try:
        w.page.goto(f"{server.url}/ui/review/new?trace={trace_id(9)}")
        w.page.fill('input[name="n"]', "abc")
        w.page.click("#create-queue")
        expect(w.page.locator('[data-invalid="n"]')).to_be_visible()  # the page, with the field marked
        w.errors.clear()  # Chromium logs the 400 status itself
        w.page.fill('input[name="n"]', "5")
        w.page.fill('input[name="name"]', "from-trace")
        w.page.click("#create-queue")
        w.page.wait_for_url("**/ui/review/from-trace")
        expect(w.page.locator("#annotator-form")).to_be_visible()
        w.page.fill('input[name="annotator"]', "erin")
        w.page.click("#start")
        expect(w.page.locator("#current-item")).to_be_visible()
        w.page.keyboard.press("s")  # skipped: nothing else is left for erin in this session
        expect(w.page.locator("#done")).to_be_visible()
        w.page.goto(f"{server.url}/ui/review/from-trace")  # the name is remembered in a cookie
        expect(w.page.locator("#annotator-name")).to_have_text("erin")
        expect(w.page.locator("#current-item")).to_be_visible()  # the skipped item comes back on a new visit
        assert w.errors == []
        gone = w.page.goto(f"{server.url}/ui/review/new?trace={GLOBEX_TRACE}")
        assert gone.status == 404
    finally:
        w.context.close()


def test_unknown_queue_404_csrf_and_tenants(browser, server):
    acme = {"Authorization": f"Bearer {server.keys['acme']}"}
    globex = {"Authorization": f"Bearer {server.keys['globex']}"}
    missing = httpx.get(f"{server.url}/ui/review/no-such-queue", headers=acme)
    assert missing.status_code == 404 and "no review queue" in missing.text
    assert httpx.get(f"{server.url}/ui/review/no-such-queue/agreement.json", headers=acme).status_code == 404
    assert httpx.get(f"{server.url}/ui/review/web-binary", headers=globex).status_code == 404
    assert httpx.get(f"{server.url}/ui/review/web-binary/agreement", headers=globex).status_code == 404
    assert "web-binary" not in httpx.get(f"{server.url}/ui/review.json", headers=globex).text
    bad = httpx.get(f"{server.url}/ui/review/web-binary?annotator=%01", headers=acme)
    assert bad.status_code == 400 and 'data-invalid="annotator"' in bad.text
    refused = httpx.post(f"{server.url}/ui/review/web-binary/label", headers=acme,
                         data={"annotator": "x", "item_id": "y", "verdict": "pass"})
    assert refused.status_code == 403  # no CSRF token
    w = login(browser, server, "globex")
    try:
        response = w.page.goto(f"{server.url}/ui/review/web-binary?annotator=mallory")
        assert response.status == 404
        w.shot("review-tenant-404")
        w.page.goto(f"{server.url}/ui/review")
        assert w.page.locator('tr[data-queue="web-binary"]').count() == 0
    finally:
        w.context.close()


def test_a_tenant_key_is_told_about_queues_built_for_every_tenant(server):
    """`flywheel review sample` without --tenant makes a queue no tenant key lists; the list page says why."""
    from sqlalchemy import delete

    from flywheel.feedback import queues

    store = server.live.app.state.flywheel.store
    shared = queues.create_queue(store, "every-tenant", kind="binary", overlap=1, trace_ids=[trace_id(3)])
    try:
        acme = httpx.get(f"{server.url}/ui/review", headers={"Authorization": f"Bearer {server.keys['acme']}"})
        assert acme.status_code == 200 and 'data-queue="every-tenant"' not in acme.text
        assert 'id="shared-queues"' in acme.text and "flywheel review sample --tenant acme" in acme.text
        zh = httpx.get(f"{server.url}/ui/review?lang=zh", headers={"Authorization": f"Bearer {server.keys['acme']}"})
        assert "未指定租户" in zh.text
        admin = httpx.get(f"{server.url}/ui/review", headers={"Authorization": f"Bearer {server.keys['admin']}"})
        assert 'data-queue="every-tenant"' in admin.text and 'id="shared-queues"' not in admin.text
    finally:
        with store.begin() as conn:
            conn.execute(delete(store.table("review_items")).where(store.table("review_items").c.queue_id == shared.id))
            conn.execute(delete(store.table("review_queues")).where(store.table("review_queues").c.id == shared.id))


def test_trace_page_adds_the_trace_to_a_queue_and_to_an_eval_suite(browser, server):
    """The trace page's actions: pick one of the tenant's queues (a trace queued anywhere is skipped and said so),
    append the trace as a case to a new or existing suite under evals/ (never outside), CSRF and tenants."""
    from flywheel.evals.suite import load_suite
    from flywheel.feedback import queues

    state = server.live.app.state.flywheel
    inbox = queues.create_queue(state.store, "web-inbox", kind="binary", overlap=1, trace_ids=[trace_id(20)],
                                tenant="acme")
    queues.create_queue(state.store, "web-inbox", kind="binary", overlap=1, trace_ids=[GLOBEX_TRACE],
                        tenant="globex")  # same name, other tenant: not offered to acme
    first, second = trace_id(10), trace_id(12)  # two different questions: no near-duplicates
    w = login(browser, server, "acme")
    try:
        w.page.goto(f"{server.url}/ui/traces/{first}")
        choice = w.page.locator("#queue-choice option")
        expect(choice.filter(has_text="web-inbox")).to_have_count(1)
        w.page.locator("#queue-choice").select_option(label="web-inbox")
        w.page.click("#add-to-queue-submit")
        expect(w.page.locator("#trace-action-message")).to_have_text("Added to web-inbox.")
        assert [i.trace_id for i in queues.items(state.store, inbox)] == [trace_id(20), first]
        w.page.locator("#queue-choice").select_option(label="web-inbox")
        w.page.click("#add-to-queue-submit")
        expect(w.page.locator("#trace-action-message")).to_contain_text("Already in a review queue")
        expect(w.page.locator("#new-queue-link")).to_have_attribute("href", f"/ui/review/new?trace={first}")
        expect(w.page.locator("#add-to-suite")).to_have_count(0)  # suites are shared: a tenant key can't write them
        assert w.errors == []
    finally:
        w.context.close()
    w = login(browser, server, "admin")
    try:
        w.page.goto(f"{server.url}/ui/traces/{first}")
        w.page.fill("#new-suite", "regressions")
        w.page.click("#add-to-suite-submit")
        expect(w.page.locator("#trace-action-message")).to_contain_text("written to evals/regressions.yaml")
        w.shot("trace-actions")
        w.page.goto(f"{server.url}/ui/traces/{second}")
        w.page.locator("#suite-choice").select_option("regressions.yaml")
        w.page.click("#add-to-suite-submit")
        expect(w.page.locator("#trace-action-message")).to_contain_text("written to evals/regressions.yaml")
        suite = load_suite(state.project.root / "evals" / "regressions.yaml", state.project)
        assert [c.metadata["source_trace_id"] for c in suite.cases] == [first, second]
        w.page.click("#add-to-suite-submit")  # the same trace again: nothing written
        expect(w.page.locator("#trace-action-message")).to_contain_text("nothing written")
        w.page.fill("#new-suite", "../escape")
        w.page.click("#add-to-suite-submit")
        expect(w.page.locator("#trace-action-error")).to_contain_text("invalid suite file name")
        assert not (state.project.root / "escape.yaml").exists()
        assert w.errors == []
    finally:
        w.context.close()
    acme = {"Authorization": f"Bearer {server.keys['acme']}"}
    no_csrf = httpx.post(f"{server.url}/ui/traces/{second}/review", data={"queue": inbox.id}, headers=acme)
    assert no_csrf.status_code == 403
    hidden = httpx.get(f"{server.url}/ui/traces/{GLOBEX_TRACE}/actions", headers=acme)
    assert hidden.status_code == 404
    assert len(queues.items(state.store, inbox)) == 2


def test_trace_actions_in_chinese(server):
    """The trace actions' labels come from the dashboard's text tables: in Chinese on a Chinese page."""
    from flywheel.web import i18n

    first = trace_id(10)
    admin = httpx.get(f"{server.url}/ui/traces/{first}/actions?lang=zh",
                      headers={"Authorization": f"Bearer {server.keys['admin']}"})
    assert admin.status_code == 200
    for key in ("action_add_to_queue", "action_add_to_suite", "action_new_queue", "action_new_suite"):
        assert i18n.ZH[key] in admin.text and i18n.EN[key] not in admin.text
    english = httpx.get(f"{server.url}/ui/traces/{first}/actions?lang=en",
                        headers={"Authorization": f"Bearer {server.keys['admin']}"})
    assert "Add to eval suite" in english.text and "加入评测套件" not in english.text
    tenant = httpx.get(f"{server.url}/ui/traces/{first}/actions", headers={
        "Authorization": f"Bearer {server.keys['acme']}", "Accept-Language": "zh-CN,zh;q=0.9"})
    assert "加入审核队列" in tenant.text and "加入评测套件" not in tenant.text  # a tenant key writes no suites

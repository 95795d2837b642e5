"""The evals pages in real Chromium against the live dashboard server of tests/web_support.py: the runs list and its
twins, a run's case table with URL filters and server-side paging, the compare page (word-level diffs, regressions
only, McNemar's exact test, the stored pairwise-judge comparison side by side), 404s and invalid filters."""

from __future__ import annotations

import importlib
import re

import httpx
import pytest
from web_support import login

from flywheel import web

pytest.importorskip("playwright")
# web_support's fixtures (one server, one Chromium) as a plugin: shared by every module of the session that uses
# them this way, where importing them would make one instance per module (and Playwright allows one at a time)
from playwright.sync_api import expect

web.add_page("flywheel.web.eval_pages", ("evals", "/ui/evals"))
BASE, CAND = "a1" * 16, "b2" * 16
N_CASES = 60
REGRESSED = {3, 17, 44}  # passed in the base run, fail in the candidate
FIXED = {5}
FLAKY = 9  # the candidate passes it in one of its two repeats


def _runs(store) -> None:
    from flywheel.evals.comparisons import save_comparison
    from flywheel.evals.records import CaseRun, RunStore
    from flywheel.types import CheckResult

    runs = RunStore(store)
    for run_id in (BASE, CAND):
        runs.create(run_id, suite="refunds", suite_hash="h", fingerprint=run_id[:8], target="app:support",
                    model="small" if run_id == BASE else "large", threshold=0.8, cases_total=N_CASES, repeat=2)
        passed_total = 0
        for i in range(N_CASES):
            for rep in range(2):
                if run_id == BASE:
                    ok = i not in FIXED
                else:
                    ok = i not in REGRESSED and (i != FLAKY or rep == 0)
                output = ("Refunds take 7 business days." if run_id == CAND and i in REGRESSED
                          else "Refunds take 5 days.")
                checks = [CheckResult(name="contains", passed=ok, score=float(ok), reason="5 days"),
                          CheckResult(name="length", passed=True, score=1.0)]
                runs.save(run_id, CaseRun(case_id=f"case-{i:02d}", repeat_index=rep, passed=ok, score=float(ok),
                                          output=output, checks=checks, input=f"How long do refunds take? ({i})",
                                          reference="Refunds take 5 days."))
                passed_total += ok
        runs.finish(run_id, passed_total / (2 * N_CASES),
                    {"cost_usd": 0.0123, "pass_rate_ci95": [0.7, 0.95]})
    with store.begin() as conn:
        for run_id, started in ((BASE, 1_780_000_000.0), (CAND, 1_780_003_600.0)):
            conn.execute(runs.runs.update().where(runs.runs.c.id == run_id).values(started_at=started))
    report = {"a": BASE[:8], "b": CAND[:8], "judge": "pairwise:helpful", "judge_model": "judge-m", "sign_test_p": 0.5,
              "pairs": [{"case_id": f"case-{i:02d}", "question": "How long do refunds take?",
                         "answer_a": "Refunds take 5 days.", "answer_b": f"Refunds take 7 business days ({i}).",
                         "reference": "Refunds take 5 days.", "outcome": "win", "verdicts": ["A", "A"],
                         "reasons": ["A matches the policy.", "A matches."], "consistent": True}
                        for i in sorted(REGRESSED)]
              + [{"case_id": "secret", "question": "globex secret", "answer_a": "x", "answer_b": "y",
                  "outcome": "tie", "tenant": "globex"}]}
    save_comparison(store, report, kind="pairwise", run_a=BASE, run_b=CAND)


@pytest.fixture(scope="module")
def server(web_server):
    app = web_server.live.app
    if "/ui/evals" not in {getattr(r, "path", None) for r in app.routes}:
        app.include_router(importlib.import_module("flywheel.web.eval_pages").router)
    _runs(app.state.flywheel.store)
    return web_server


@pytest.fixture(scope="module")
def acme(browser, server):
    w = login(browser, server, "acme")
    yield w
    w.context.close()


def test_runs_list_and_twins(acme, server):
    page = acme.page
    acme.errors.clear()
    assert page.goto(server.url + "/ui/evals").status == 200
    rows = page.locator("#run-rows tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-run", CAND)  # newest first
    expect(page.locator(f'tr[data-run="{BASE}"]')).to_contain_text("70.0%–95.0%")
    acme.shot("evals-runs")
    assert acme.errors == []
    page.goto(server.url + "/ui/evals?lang=zh")
    expect(page.locator("h1")).to_have_text("评测运行")
    page.goto(server.url + "/ui/evals?lang=en")
    headers = {"Authorization": f"Bearer {server.keys['acme']}"}
    twin = httpx.get(server.url + "/ui/evals.json?model=small", headers=headers).json()
    assert [r["id"] for r in twin["rows"]] == [BASE] and twin["total"] == 1
    csv = httpx.get(server.url + "/ui/evals.csv", headers=headers)
    assert csv.status_code == 200 and csv.content.decode("utf-8-sig").startswith("id,suite,target,model")
    bad = httpx.get(server.url + "/ui/evals?status=bogus&limit=0", headers=headers)
    assert bad.status_code == 400 and 'data-invalid="status"' in bad.text and 'data-invalid="page"' in bad.text


def test_run_cases_filters_and_paging(acme, server):
    page = acme.page
    acme.errors.clear()
    page.goto(f"{server.url}/ui/evals/{CAND[:8]}?limit=25")
    rows = page.locator("#case-rows tbody tr")
    expect(rows).to_have_count(25)
    page.click("#next-page")
    page.wait_for_url(re.compile(r"offset=25"))
    expect(rows).to_have_count(25)
    page.goto(f"{server.url}/ui/evals/{CAND[:8]}")
    page.select_option('select[name="show"]', "failed")
    page.click("#apply")
    page.wait_for_url(re.compile(r"show=failed"))
    expect(rows).to_have_count(len(REGRESSED) + 1)  # the regressions and the flaky case
    page.select_option('select[name="show"]', "flaky")
    page.click("#apply")
    page.wait_for_url(re.compile(r"show=flaky"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-case", f"case-{FLAKY:02d}")
    page.goto(f"{server.url}/ui/evals/{BASE[:8]}?check=contains")
    expect(rows).to_have_count(len(FIXED))
    acme.shot("evals-run")
    assert acme.errors == []
    invalid = page.goto(f"{server.url}/ui/evals/{CAND[:8]}?show=sideways&check=nope")
    assert invalid.status == 400
    expect(page.locator('[data-invalid="show"]')).to_be_visible()
    expect(page.locator('[data-invalid="check"]')).to_be_visible()
    expect(rows).to_have_count(50)  # the first page of every case, never a 500


def test_compare_diff_regressions_and_paired_test(acme, server):
    page = acme.page
    acme.errors.clear()
    page.goto(f"{server.url}/ui/evals/compare?base={BASE[:8]}&cand={CAND[:8]}")
    expect(page.locator("#regression-count")).to_have_text(str(len(REGRESSED) + 1))  # the flaky case counts
    expect(page.locator("#fix-count")).to_have_text(str(len(FIXED)))
    expect(page.locator("#p-value")).to_have_text("0.375")  # exact two-sided sign test of 1 vs 4
    row = page.locator(f'#compare-rows tr[data-case="case-{min(REGRESSED):02d}"]')
    expect(row.locator(".output-diff ins")).to_contain_text("7")
    expect(row.locator(".output-diff del")).to_contain_text("5")
    expect(row.locator(".reference-diff ins")).to_contain_text("business")
    page.check("#regressions-only")
    page.wait_for_url(re.compile(r"only=regressions"))
    rows = page.locator("#compare-rows tbody tr")
    expect(rows).to_have_count(len(REGRESSED) + 1)
    assert set(rows.evaluate_all("rs => rs.map(r => r.dataset.change)")) == {"regression"}
    judged = page.locator("#judged-pairs tbody tr")
    expect(judged).to_have_count(len(REGRESSED))  # the other tenant's pair is left out
    expect(judged.first).to_contain_text("Refunds take 7 business days")
    expect(judged.first).to_contain_text("Refunds take 5 days.")
    assert "globex secret" not in page.content()
    acme.shot("evals-compare")
    assert acme.errors == []
    # swapped runs: the judged answers follow (A is always the base run)
    page.goto(f"{server.url}/ui/evals/compare?base={CAND[:8]}&cand={BASE[:8]}")
    expect(page.locator("#judged-pairs tbody tr").first.locator("td").nth(2)).to_contain_text("business")
    twin = httpx.get(f"{server.url}/ui/evals/compare.json?base={BASE}&cand={CAND}&only=regressions&limit=2",
                     headers={"Authorization": f"Bearer {server.keys['acme']}"}).json()
    assert len(twin["rows"]) == 2 and twin["total"] == len(REGRESSED) + 1 and twin["test"]["n"] == N_CASES


def test_bad_ids_and_filters(acme, server):
    headers = {"Authorization": f"Bearer {server.keys['acme']}"}
    missing = httpx.get(f"{server.url}/ui/evals/ffffffff", headers=headers)
    assert missing.status_code == 404 and "no eval run" in missing.text
    assert httpx.get(f"{server.url}/ui/evals/ffffffff.json", headers=headers).status_code == 404
    assert httpx.get(f"{server.url}/ui/evals/compare?base=ffffffff&cand={CAND}", headers=headers).status_code == 404
    half = httpx.get(f"{server.url}/ui/evals/compare?base={BASE}", headers=headers)
    assert half.status_code == 400 and 'data-invalid="cand"' in half.text
    weird = httpx.get(f"{server.url}/ui/evals/compare?base={BASE}&cand={CAND}&only=x&offset=-1", headers=headers)
    assert weird.status_code == 400 and 'data-invalid="only"' in weird.text and 'data-invalid="page"' in weird.text
    page = acme.page
    assert page.goto(f"{server.url}/ui/evals/compare").status == 200  # the pick-two-runs form
    expect(page.locator("#compare-form select[name=base] option")).to_have_count(3)
    assert page.goto(f"{server.url}/ui/evals/nope-run").status == 404
    expect(page.locator("#error-message")).to_contain_text("no eval run 'nope-run'")


def test_review_and_evals_text_in_both_languages():
    from flywheel.web import review_i18n

    assert set(review_i18n.EN) == set(review_i18n.ZH)
    assert review_i18n.Text("zh")("runs") == "评测运行" and review_i18n.Text("zh")("traces") == "追踪"  # shared table

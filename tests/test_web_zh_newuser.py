"""A Chinese-speaking user's dashboard (audit D).

The trace page's "加入评测套件" with a Chinese suite file name: before, the suite list offered evals/回归.yaml (which
`flywheel promote --to evals/回归.yaml` writes and `flywheel eval` runs), and choosing it — or typing 回归 as a new
file — answered "无效的评测套件文件名". The "导出: CSV" links: before, a CSV without a byte-order mark, which Excel
on a Chinese Windows opens as GBK, garbling every Chinese question."""

from __future__ import annotations

import csv
import io

import httpx
import pytest
from web_support import ADMIN_KEY, login, trace_id

from flywheel.evals.suite import load_suite

pytest.importorskip("playwright")
from playwright.sync_api import expect


def test_a_chinese_suite_name_is_written_and_then_offered_and_taken(browser, web_server):
    first, second = trace_id(36), trace_id(39)  # "Where is my parcel 36?" and "… 39?": not near-duplicates
    state = web_server.live.state
    path = state.project.root / "evals" / "回归" / "每日.yaml"
    w = login(browser, web_server, "admin", locale="zh-CN")
    try:
        w.page.goto(f"{web_server.url}/ui/traces/{first}?lang=zh")
        w.page.fill("#new-suite", "回归/每日")
        w.page.click("#add-to-suite-submit")
        expect(w.page.locator("#trace-action-message")).to_contain_text("evals/回归/每日.yaml")
        w.page.goto(f"{web_server.url}/ui/traces/{second}?lang=zh")
        w.page.locator("#suite-choice").select_option("回归/每日.yaml")
        w.page.click("#add-to-suite-submit")
        expect(w.page.locator("#trace-action-message")).to_contain_text("evals/回归/每日.yaml")
        suite = load_suite(path, state.project)
        assert [c.metadata["source_trace_id"] for c in suite.cases] == [first, second]
        w.page.fill("#new-suite", "../回归")  # still only inside evals/
        w.page.click("#add-to-suite-submit")
        expect(w.page.locator("#trace-action-error")).to_contain_text("无效的评测套件文件名")
        assert not (state.project.root / "回归.yaml").exists()
        assert w.errors == []
    finally:
        w.context.close()
        path.unlink(missing_ok=True)
        if path.parent.is_dir():
            path.parent.rmdir()


@pytest.mark.parametrize(("path", "first"), [("/ui/traces.csv?search=parcel", "trace_id"),
                                             ("/ui/sessions.csv", "session_id"), ("/ui/review.csv", "id")])
def test_csv_exports_start_with_a_byte_order_mark_for_excel(web_server, path, first):
    r = httpx.get(web_server.url + path, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv; charset=utf-8")
    assert r.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][0] == first  # read as utf-8-sig, the mark is not part of the first column's name


def test_a_multi_turn_cases_check_reasons_are_translated_with_their_turn():
    """Before: a promoted conversation's reasons ("turn 3: the judge gave no PASS/FAIL verdict") stayed English on
    the Chinese run page, while the same reasons of a one-question case were translated."""
    from flywheel.web.reason_i18n import reason_text

    single = reason_text("zh", "found [], missing ['3', '5']")
    assert single != "found [], missing ['3', '5']"  # the one-question form has a translation …
    assert reason_text("zh", "turn 3: found [], missing ['3', '5']") == f"第 3 轮：{single}"  # … and so has a turn's
    assert reason_text("zh", "turn 12: the judge gave no PASS/FAIL verdict") == "第 12 轮：评审模型没有给出 PASS/FAIL 判定"
    assert reason_text("en", "turn 3: negated: equal") == "turn 3: negated: equal"

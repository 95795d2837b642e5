"""Status values in the Chinese dashboard (`?lang=zh`): traces (ok, error, incomplete) and eval runs (finished,
failed, running, interrupted) are shown translated; links, filter values, CSS classes and the JSON twins keep the
English values. Its own server (web_support.start_server) so the eval runs added here touch no other module."""

from __future__ import annotations

import re

import httpx
import pytest
from web_support import ADMIN_KEY, start_server, trace_id

from flywheel.web import i18n

RUNS = {"f1" * 16: "finished", "f2" * 16: "failed", "f3" * 16: "interrupted"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from flywheel.evals.records import RunStore

    web = start_server(tmp_path_factory.mktemp("status"))
    runs = RunStore(web.live.state.store)
    for run_id, status in RUNS.items():
        runs.create(run_id, suite="refunds", suite_hash="h", fingerprint=run_id[:8], target="app:support",
                    model="small", threshold=0.8, cases_total=1, repeat=1)
        if status == "finished":
            runs.finish(run_id, 1.0, {})
        else:
            with web.live.state.store.begin() as conn:
                conn.execute(runs.runs.update().where(runs.runs.c.id == run_id).values(status=status))
    yield web
    web.live.stop()


def _get(server, path: str) -> httpx.Response:
    resp = httpx.get(server.url + path, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp


def _cells(html: str, css: str) -> list[str]:
    return re.findall(rf'<td class="{css}[^"]*">([^<]*)</td>', html)


def test_every_status_value_has_both_languages():
    en, zh = i18n.Translator("en"), i18n.Translator("zh")
    for value in ("ok", "error", "incomplete", "finished", "failed", "running", "interrupted"):
        assert en.status(value) == value
        assert zh.status(value) != value and not zh.status(value).isascii()
    assert zh.status("something-new") == "something-new" and zh.status(None) == ""


def test_trace_list_facets_and_page_show_chinese_status_values(server):
    html = _get(server, "/ui/traces?lang=zh").text
    statuses = re.findall(r'<td class="num">[^<]*</td><td[^>]*>([^<]*)</td><td class="preview">', html)
    assert statuses and set(statuses) <= {"正常", "出错"} and "出错" in statuses
    assert '<option value="ok">正常</option>' in html and '<option value="incomplete">未完成</option>' in html
    facets = _get(server, "/ui/traces/facets?lang=zh").text
    assert re.search(r'status=ok[^"]*">正常</a>', facets) and re.search(r'status=error[^"]*">出错</a>', facets)
    page = _get(server, f"/ui/traces/{trace_id(7)}?lang=zh").text  # trace 7 is an error in the seed
    assert '<span class="status error">出错</span>' in page
    english = _get(server, "/ui/traces?lang=en").text
    assert '<option value="ok">ok</option>' in english and "正常" not in english
    twin = _get(server, "/ui/traces.json?status=error").json()  # the JSON keeps the stored values
    assert twin["rows"] and {r["status"] for r in twin["rows"]} == {"error"}


def test_eval_runs_and_run_page_show_chinese_status_values(server):
    html = _get(server, "/ui/evals?lang=zh").text
    assert sorted(_cells(html, "status")) == sorted(["已完成", "失败", "已中断"])
    assert '<option value="running" label="运行中">' in html  # the filter still takes the English value
    run = _get(server, f"/ui/evals/{'f1' * 16}?lang=zh").text
    assert '<span class="status ok">已完成</span>' in run
    twin = _get(server, "/ui/evals.json").json()
    assert sorted(r["status"] for r in twin["rows"]) == sorted(RUNS.values())

"""Follow-ups of the dashboard's reviewer audit: the Chinese Apply button no longer reads like the App filter, web
pages name the form field to use instead of the CLI flag in a hint, a session page says when it shows only its
latest turns and links to all of them, and /ui/review reads every queue's progress in queries whose number does
not grow with the queues (`queues.progress_many`, checked on SQLite and PostgreSQL)."""

from __future__ import annotations

import httpx
import pytest
from review_support import add_traces
from sqlalchemy import event
from web_support import ADMIN_KEY, start_server, trace_id

from flywheel.errors import UserError
from flywheel.feedback import queues
from flywheel.store import Store
from flywheel.web import message_i18n, sessions, stored_i18n

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = start_server(tmp_path_factory.mktemp("followups"))
    yield live
    live.live.stop()


@pytest.fixture
def any_store(store_url):
    s = Store.open(store_url)
    yield s
    s.close()


# ------------------------------------------------------------------------------------------- 1. the Apply button
def test_the_chinese_apply_button_is_not_the_app_filters_word(server):
    page = httpx.get(f"{server.url}/ui/traces?lang=zh", headers=ADMIN).text
    assert 'id="apply">应用筛选<' in page and 'id="apply">应用<' not in page


# ------------------------------------------------------------------------------------------- 2. web wording of hints
def test_an_empty_sample_hint_names_the_form_fields_not_cli_flags():
    exc = UserError("no unqueued traces for strategy 'mixed' in app 'x': nothing to review",
                    hint=queues._empty_queue_hint("binary", "mixed", "x", None, None))
    assert "--app" in exc.hint and "--strategy" in exc.hint  # the CLI keeps its wording
    en, zh = message_i18n.localize_error("en", exc), message_i18n.localize_error("zh", exc)
    assert "--" not in en and "clear the App field" in en and "Strategy “random”" in en
    assert "--" not in zh and "“应用”" in zh and "“随机”" in zh


def test_an_unknown_trace_hint_points_to_the_traces_page():
    for hint in ("list traces with `flywheel traces`", "list traces with `flywheel traces` (of the queue's tenant)"):
        exc = UserError("unknown trace id(s): abc", hint=hint)
        en, zh = message_i18n.localize_error("en", exc), message_i18n.localize_error("zh", exc)
        assert "flywheel traces" not in en and "Traces page (/ui/traces)" in en
        assert "flywheel traces" not in zh and "“追踪”页" in zh


def test_the_drift_pages_empty_reference_names_its_reference_field():
    from flywheel.monitor.drift import reference_warning

    for warning in (reference_warning(0, "window"), reference_warning(0, "eval", "eval:refunds")):
        assert warning is not None and warning.endswith("choose another --reference")  # the CLI's wording
        en, zh = stored_i18n.alert_text("en", warning), stored_i18n.alert_text("zh", warning)
        assert "--reference" not in en and en.endswith("choose another in the Reference field")
        assert "--reference" not in zh and "“参照”" in zh
    small = reference_warning(3, "window")
    assert stored_i18n.alert_text("en", small) == small  # a text without a CLI option stays as the core words it


# ------------------------------------------------------------------------------------------- 3. a long session
def test_a_session_page_says_when_it_shows_only_the_latest_turns(server, monkeypatch):
    whole = httpx.get(f"{server.url}/ui/sessions/sess-1", headers=ADMIN).text
    assert 'id="turns-capped"' not in whole  # 40 turns: all shown, nothing to say
    monkeypatch.setattr(sessions, "TURNS_SHOWN", 5)
    page = httpx.get(f"{server.url}/ui/sessions/sess-1", headers=ADMIN).text
    assert 'id="turns-capped"' in page and "latest 5 turns" in page
    assert 'href="/ui/traces?session_id=sess-1"' in page
    assert page.count('class="turn ') == 5
    twin = httpx.get(f"{server.url}/ui/sessions/sess-1.json", headers=ADMIN).json()
    assert twin["capped"] is True and twin["all_turns"] == "/ui/traces?session_id=sess-1"
    # the latest five, oldest first: sess-1 holds traces 1, 4, …, 118
    assert [r["trace_id"] for r in twin["rows"]] == [trace_id(i) for i in (106, 109, 112, 115, 118)]
    zh = httpx.get(f"{server.url}/ui/sessions/sess-1?lang=zh", headers=ADMIN).text
    assert "仅显示最近的 5 轮" in zh


# ------------------------------------------------------------------------------------------- 4. queue progress
def _count_queries(store):
    seen: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


def test_the_review_list_reads_progress_in_a_fixed_number_of_queries(server):
    store = server.live.app.state.flywheel.store
    seen = _count_queries(store)

    def queries_for_list() -> tuple[int, list[dict]]:
        seen.clear()
        rows = httpx.get(f"{server.url}/ui/review.json", headers=ADMIN).json()["rows"]
        return len([s for s in seen if "review_labels" in s or "review_items" in s]), rows

    for i in range(2):
        queues.create_queue(store, f"few-{i}", trace_ids=[trace_id(i)], overlap=1)
    few, rows = queries_for_list()
    assert len(rows) == 2
    for i in range(2, 6):
        queues.create_queue(store, f"many-{i}", trace_ids=[trace_id(i)], overlap=1)
    queues.label(store, queues.items(store, "many-5")[0].id, "ana", "fail")
    many, rows = queries_for_list()
    assert len(rows) == 6 and few == many <= 1
    done = {r["name"]: (r["labels"], r["complete"], r["annotators"]) for r in rows}
    assert done["many-5"] == (1, 1, {"ana": 1}) and done["few-0"] == (0, 0, {})


def test_progress_many_agrees_with_progress_on_both_engines(any_store):
    ids = add_traces(any_store, [{"input": f"question {i}"} for i in range(7)])
    a = queues.create_queue(any_store, "a", trace_ids=ids[:3], overlap=2)
    b = queues.create_queue(any_store, "b", trace_ids=ids[3:6], overlap=1)
    empty_labels = queues.create_queue(any_store, "c", trace_ids=ids[6:], overlap=2)
    items_a, items_b = queues.items(any_store, a), queues.items(any_store, b)
    for who in ("ana", "bo"):
        queues.label(any_store, items_a[0].id, who, "pass")
    queues.label(any_store, items_a[1].id, "ana", "fail")
    queues.label(any_store, items_b[0].id, "bo", "pass")
    queues.label(any_store, items_b[2].id, "ana", "pass")
    many = queues.progress_many(any_store, [a, b, empty_labels])
    assert many[a.id] == {"queue": "a", "items": 3, "overlap": 2, "labels": 3, "complete": 1,
                          "annotators": {"ana": 2, "bo": 1}}
    assert many[b.id] == {"queue": "b", "items": 3, "overlap": 1, "labels": 2, "complete": 2,
                          "annotators": {"ana": 1, "bo": 1}}
    assert many[empty_labels.id] == {"queue": "c", "items": 1, "overlap": 2, "labels": 0, "complete": 0,
                                     "annotators": {}}
    assert all(queues.progress(any_store, q) == many[q.id] for q in (a, b, empty_labels))
    assert queues.progress_many(any_store, []) == {}

"""flywheel.tracing.search: every filter of TraceQuery (SQLite and PostgreSQL), keyset pages, invalid params,
facet counts within a time budget, sessions and users; `flywheel traces` filters and `traces show` feedback."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from web_support import BIG_TRACE, T0, demo_trace, seed, trace_id

from flywheel.errors import UserError
from flywheel.store import Store
from flywheel.tracing.search import (
    TraceQuery,
    decode_cursor,
    facet_counts,
    parse_time,
    search_sessions,
    search_traces,
    session_turns,
    top_users,
)


def ids(store, limit=1000, **filters):
    return [r["trace_id"] for r in search_traces(store, TraceQuery(**filters), limit=limit).rows]


def test_every_filter(store_url):
    store = Store.open(store_url)
    try:
        seed(store)
        acme = {"tenant": "acme"}
        assert len(ids(store, **acme)) == 121
        assert len(ids(store, tenant="globex")) == 5
        assert len(ids(store, feedback="negative")) == 10
        assert len(ids(store, feedback="positive")) == 10
        assert len(ids(store, feedback="any")) == 20
        assert len(ids(store, feedback="none", **acme)) == 101
        assert set(ids(store, guard="block")) == {trace_id(i) for i in range(0, 120, 15)}
        assert len(ids(store, cache="hit")) == 24
        assert len(ids(store, cache="miss")) == 101  # the big trace has no cache lookup: neither hit nor miss
        assert len(ids(store, model="other")) == 30
        assert len(ids(store, status="error")) == 12
        assert len(ids(store, prompt_version="v2", **acme)) == 60
        assert ids(store, search="parcel 108") == [trace_id(108)]
        assert ids(store, search="100%") == []  # LIKE wildcards in the text are literal
        assert len(ids(store, session_id="sess-1")) == 40
        assert len(ids(store, user_id="user-2", model="gpt")) == 30
        assert ids(store, latency_min=1018.5, latency_max=1020) == [trace_id(119)]
        assert ids(store, cost_min=0.001, cost_max=0.01, since=T0 + 119 * 60, until=T0 + 121 * 60) == [trace_id(119)]
        assert ids(store, app="agent") == [BIG_TRACE]
        assert ids(store, feedback="negative", search="PARCEL 36", guard="pass") == [trace_id(36)]
    finally:
        store.close()


def test_keyset_pages_cover_everything_once_and_do_not_shift(store):
    seed(store)
    q = TraceQuery(tenant="acme")
    seen, cursor, pages = [], None, 0
    while True:
        page = search_traces(store, q, cursor=cursor, limit=50)
        seen += [r["trace_id"] for r in page.rows]
        pages += 1
        if pages == 1:  # a trace written meanwhile, newer than everything: page 2 must not shift
            from flywheel.store.schema import spans, traces

            row, sp = demo_trace(900, "acme", question="late", answer="late")
            with store.engine.begin() as conn:
                conn.execute(traces.insert(), [row])
                conn.execute(spans.insert(), sp)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3 and len(seen) == len(set(seen)) == 121
    starts = [search_traces(store, TraceQuery(search=s), limit=1).rows for s in ("late",)]
    assert starts[0][0]["trace_id"] == trace_id(900)


def test_equal_start_times_are_ordered_by_trace_id(store):
    from flywheel.store.schema import traces

    rows = [demo_trace(i, "t", question="q", answer="a")[0] | {"started_at": T0} for i in range(7)]
    with store.engine.begin() as conn:
        conn.execute(traces.insert(), rows)
    first = search_traces(store, TraceQuery(), limit=3)
    rest = search_traces(store, TraceQuery(), cursor=first.next_cursor, limit=10)
    got = [r["trace_id"] for r in first.rows + rest.rows]
    assert got == sorted(got, reverse=True) and len(set(got)) == 7 and rest.next_cursor is None


def test_invalid_params_are_reported_per_field_and_left_out():
    q, errors = TraceQuery.from_params({"latency_min": "fast", "since": "someday", "model": "gpt",
                                        "feedback": "meh", "cursor": "x", "lang": "zh"})
    assert set(errors) == {"latency_min", "since", "feedback"}
    assert q.model == "gpt" and q.latency_min is None
    assert "age" in errors["since"]
    with pytest.raises(UserError, match="cursor"):
        decode_cursor("%%%")
    with pytest.raises(UserError, match="cursor"):
        decode_cursor("bm90IGEgY3Vyc29y")


def test_time_parsing():
    assert parse_time("2026-01-01") == 1767225600.0
    assert parse_time("2026-01-01T08:00:00+08:00") == 1767225600.0
    assert parse_time("1767225600") == 1767225600.0
    assert parse_time("24h", now=100_000.0) == 100_000.0 - 86400
    assert parse_time("") is None
    with pytest.raises(ValueError):
        parse_time("next tuesday")


def test_facets_count_and_stop_at_the_budget(store):
    seed(store)
    facets = facet_counts(store, TraceQuery(tenant="acme"), ["status", "model"], budget_ms=10_000)
    assert not facets.partial
    assert dict(facets.counts["status"]) == {"ok": 109, "error": 12}
    assert dict(facets.counts["model"]) == {"gpt": 90, "other": 30, None: 1}
    spent = facet_counts(store, TraceQuery(), ["status", "model"], budget_ms=0)
    assert spent.partial and spent.skipped == ["status", "model"] and spent.counts == {}
    with pytest.raises(UserError, match="no facet"):
        facet_counts(store, TraceQuery(), ["input_preview"])


def test_a_query_over_the_budget_is_interrupted(store):
    """A facet query still running at the deadline is interrupted (SQLite progress handler), not awaited."""
    import time

    from sqlalchemy import func, select, text

    from flywheel.tracing import search

    slow = select(func.count()).select_from(text(
        "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) SELECT x FROM c)"))
    with pytest.raises(search._OverBudget):
        search._run_until(store, slow, time.perf_counter() + 0.05)
    assert search._run_until(store, select(func.count()).select_from(text("traces")), time.perf_counter() + 60)


def test_sessions_and_users(store):
    seed(store)
    page = search_sessions(store, tenant="acme")
    assert [r["session_id"] for r in page.rows] == ["sess-2", "sess-1", "sess-0"]  # most recently active first
    assert [r["turns"] for r in page.rows] == [40, 40, 40]
    first = search_sessions(store, tenant="acme", limit=2)
    rest = search_sessions(store, tenant="acme", cursor=first.next_cursor, limit=2)
    assert [r["session_id"] for r in rest.rows] == ["sess-0"] and rest.next_cursor is None
    assert search_sessions(store, tenant="globex").rows == []
    turns = session_turns(store, "sess-1", tenant="acme")
    assert [t["trace_id"] for t in turns][:2] == [trace_id(1), trace_id(4)]  # oldest first
    users = top_users(store, tenant="acme")
    assert {u["user_id"]: u["traces"] for u in users} == {"user-0": 30, "user-1": 30, "user-2": 30, "user-3": 30}


# ------------------------------------------------------------------------------------------- CLI
@pytest.fixture
def seeded_project(tmp_path):
    from flywheel.config import Project

    (tmp_path / "flywheel.yaml").write_text("models: {}\n", encoding="utf-8")
    project = Project.load(tmp_path)
    store = Store.open(project.store_url)
    seed(store)
    store.close()
    return tmp_path


def _cli(path, *args):
    import flywheel.cli.traces  # noqa: F401  (registered by the integrator in cli/__init__.py)
    from flywheel.cli import main

    return CliRunner().invoke(main, ["--project", str(path), *args], env={"COLUMNS": "160"})


def test_cli_filters(seeded_project):
    out = _cli(seeded_project, "traces", "--feedback", "negative", "--search", "parcel 36", "--json")
    assert out.exit_code == 0, out.output
    assert [r["trace_id"] for r in json.loads(out.output)] == [trace_id(36)]
    out = _cli(seeded_project, "traces", "--model", "other", "--session", "sess-0", "--last", "500", "--json")
    assert {r["model"] for r in json.loads(out.output)} == {"other"} and len(json.loads(out.output)) == 10
    out = _cli(seeded_project, "traces", "--since", "2026-05-28T20:00:00", "--json", "--last", "500")
    assert all(r["started_at"] >= 1_779_998_400 for r in json.loads(out.output))
    bad = _cli(seeded_project, "traces", "--since", "someday")
    assert bad.exit_code == 2 and "--since" in bad.output and "Traceback" not in bad.output


def test_cli_show_prints_feedback(seeded_project):
    out = _cli(seeded_project, "traces", "show", trace_id(12))
    assert out.exit_code == 0, out.output
    assert "feedback (1):" in out.output and "thumbs down" in out.output and "wrong refund period" in out.output
    out = _cli(seeded_project, "traces", "show", trace_id(13))
    assert "feedback: none" in out.output
    data = json.loads(_cli(seeded_project, "traces", "show", trace_id(12), "--json").output)
    assert data["feedback"][0]["comment"] == "wrong refund period"


def test_outline_sessions_and_facets_on_both_engines(store_url):
    from flywheel.store.db import schema_diff
    from flywheel.tracing.query import span_body, span_details, trace_outline

    store = Store.open(store_url)
    try:
        assert schema_diff(store, ["web_views", "traces"]) == []
        seed(store)
        outline = trace_outline(store, BIG_TRACE)
        assert len(outline["span_rows"]) == 600 and all("inputs" not in r for r in outline["span_rows"])
        details = span_details(store, [r["span_id"] for r in outline["span_rows"]])
        assert len(details) == 600 and max(d["input_bytes"] for d in details.values()) > 2048  # sizes, no bodies
        detail = trace_outline(store, trace_id(12))
        llm = next(r for r in detail["span_rows"] if r["kind"] == "llm")
        assert detail["bodies"][llm["span_id"]]["inputs"]["messages"][0]["role"] == "system"
        guard = next(r for r in detail["span_rows"] if r["kind"] == "guard")
        assert guard["attributes"]["flywheel.guard.action"] == "pass"
        assert span_body(store, llm["span_id"])["trace_tenant"] == "acme"
        assert trace_outline(store, "f" * 32) is None
        first = search_sessions(store, tenant="acme", limit=2)
        rest = search_sessions(store, tenant="acme", cursor=first.next_cursor, limit=2)
        assert [r["session_id"] for r in first.rows + rest.rows] == ["sess-2", "sess-1", "sess-0"]
        facets = facet_counts(store, TraceQuery(tenant="acme"), ["status"], budget_ms=10_000)
        assert dict(facets.counts["status"]) == {"ok": 109, "error": 12}
    finally:
        store.close()

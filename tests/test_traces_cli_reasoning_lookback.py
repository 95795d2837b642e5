"""`flywheel traces` and the daily report, read as a user reads them:

1. `flywheel traces show` prints a reasoning model's answer as the answer and its thinking on a `reasoning:` line
   of its own (the rule the dashboard's span body uses), never the attempt span's `{"content", "reasoning"}` JSON.
2. An incomplete trace (its root never ended: still running, or killed) is listed however old — by `--app`, by a
   plain `flywheel traces` and by `--status incomplete` — from `open_traces`, without a query over every span;
   a store written before that table existed gets its incomplete traces marked when it is migrated.
3. The daily report's negative-feedback traces are the ones `negative_feedback_rate` counts and
   `flywheel traces --feedback negative` lists: a user's current thumbs down or score below 0.5.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from review_support import add_traces
from sqlalchemy import event, select, text

from flywheel.cli import main
from flywheel.config import Project
from flywheel.feedback import record
from flywheel.store import Store
from flywheel.store.schema import open_traces
from flywheel.store.schema import spans as spans_t
from flywheel.testing.fake_llm_wire import Reasoned
from flywheel.tracing import tracer
from flywheel.tracing.search import TraceQuery, search_traces
from flywheel.tracing.store_sink import attach_store, span_row
from flywheel.tracing.tracer import make_span

THOUGHT = "The user asks for the answer; it is forty-two."
PROJECT = 'models:\n  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}\n' \
          "cache: {{exact: false}}\n"


def _cli(root: Path, *args: str) -> str:
    out = CliRunner().invoke(main, ["--project", str(root), *args], env={"COLUMNS": "200", "OPENAI_API_KEY": "x"})
    assert out.exit_code == 0, out.output
    return out.output


# ------------------------------------------------------------------------------ 1. reasoning in `traces show`


def test_show_prints_a_reasoning_answer_and_its_thinking_apart(tmp_path, llm):
    llm.add(r"\bponder\b", Reasoned("Forty-two.", 9, thought=THOUGHT))
    llm.add(r"\bmull\b", Reasoned("", 9, thought="Thinking until the tokens ran out."))
    (tmp_path / "flywheel.yaml").write_text(PROJECT.format(base=llm.url), encoding="utf-8")
    _cli(tmp_path, "chat", "-m", "gpt", "ponder this")
    _cli(tmp_path, "chat", "-m", "gpt", "mull it over")
    rows = json.loads(_cli(tmp_path, "traces", "--json"))
    shown = {r["input_preview"]: _cli(tmp_path, "traces", "show", r["trace_id"]) for r in rows}

    answered = shown["ponder this"]
    assert "out: Forty-two." in answered
    assert f"reasoning: {THOUGHT}" in answered  # the attempt span's thinking, labelled, on its own line
    assert '"reasoning"' not in answered and '"content"' not in answered  # not the attempt span's JSON
    assert answered.count("reasoning:") == 1  # the call span keeps the answer alone

    only_thought = shown["mull it over"]
    assert "(no answer: the model only reasoned)" in only_thought
    assert "reasoning: Thinking until the tokens ran out." in only_thought


def test_the_cli_and_the_dashboard_read_reasoning_by_one_rule():
    from flywheel.tracing.store_sink import with_reasoning
    from flywheel.web.render import _env

    assert _env.filters["with_reasoning"] is with_reasoning
    assert with_reasoning({"content": "A.", "reasoning": "why"}) == ("A.", "why")


# ------------------------------------------------------------------------------ 2. incomplete traces of any age


def _span(trace_id: str, span_id: str, parent_id: str | None, name: str, start: float, **attrs: str):
    ns = int(start * 1e9)
    return make_span(span_id=span_id, trace_id=trace_id, parent_id=parent_id, name=name, kind="other",
                     start_ns=ns, end_ns=ns + 10**9, inputs={"topic": "tides"}, outputs="notes",
                     output_state="ok", error=None, attributes=dict(attrs))


def _ingest(store: Store, *records) -> None:
    """Spans stored by the span writer, as the OTLP receiver hands them over (their times as recorded)."""
    detach = attach_store(store)
    try:
        for r in records:
            tracer.ingest(r)
        tracer.flush()
    finally:
        detach()


KILLED = "ab" * 16
RUNNING = "cd" * 16


@pytest.fixture
def aged(store_url):
    """A run of `nightly-digest` killed 3 hours ago (a finished step stored, its root never), and a finished
    trace of another app a minute ago."""
    store = Store.open(store_url)
    now = time.time()
    _ingest(store,
            _span(KILLED, "01" * 8, "02" * 8, "step fetch", now - 3 * 3600, **{"flywheel.app": "nightly-digest"}),
            _span("ef" * 16, "03" * 8, None, "support", now - 60, **{"flywheel.app": "support"}))
    try:
        yield store
    finally:
        store.close()


def test_a_run_killed_hours_ago_is_listed(aged):
    by_app = search_traces(aged, TraceQuery(app="nightly-digest")).rows
    assert [(r["trace_id"], r["status"], r["app"]) for r in by_app] == [(KILLED, "incomplete", "nightly-digest")]
    everything = search_traces(aged, TraceQuery()).rows
    assert [r["trace_id"] for r in everything] == ["ef" * 16, KILLED]
    assert [r["trace_id"] for r in search_traces(aged, TraceQuery(status="incomplete")).rows] == [KILLED]
    assert search_traces(aged, TraceQuery(app="nightly-digest", since=time.time() - 3600)).rows == []
    assert search_traces(aged, TraceQuery(app="another-app")).rows == []


def test_listing_incomplete_traces_reads_no_span_but_theirs(store_url):
    """The spans read are those of the incomplete traces found (by trace id), never a range of every span (a
    run killed minutes ago, which the one-hour window found too, by scanning that hour's spans)."""
    seen: list[str] = []

    def log(conn, cursor, statement, params, context, many):
        seen.append(" ".join(statement.split()).lower())

    with Store.open(store_url) as store:
        _ingest(store, _span(KILLED, "01" * 8, "02" * 8, "step fetch", time.time() - 600,
                             **{"flywheel.app": "nightly-digest"}))
        event.listen(store.engine, "before_cursor_execute", log)
        try:
            assert len(search_traces(store, TraceQuery(app="nightly-digest")).rows) == 1
        finally:
            event.remove(store.engine, "before_cursor_execute", log)
    on_spans = [s for s in seen if "from spans" in s]
    assert on_spans and all("spans.trace_id in" in s for s in on_spans), on_spans


def test_a_running_trace_is_incomplete_until_its_root_ends(store_url):
    with Store.open(store_url) as store:
        start = time.time() - 5 * 3600
        _ingest(store, _span(RUNNING, "11" * 8, "12" * 8, "step one", start, **{"flywheel.app": "long-job"}))
        assert [r["status"] for r in search_traces(store, TraceQuery(app="long-job")).rows] == ["incomplete"]
        _ingest(store, _span(RUNNING, "12" * 8, None, "workflow long-job", start - 1, **{"flywheel.app": "long-job"}))
        assert [r["status"] for r in search_traces(store, TraceQuery(app="long-job")).rows] == ["ok"]
        with store.engine.connect() as conn:
            assert conn.execute(select(open_traces.c.trace_id)).all() == []


def test_the_cli_lists_a_run_killed_hours_ago_by_its_app(tmp_path):
    with Store.open(Project(tmp_path).store_url) as store:
        _ingest(store, _span(KILLED, "01" * 8, "02" * 8, "step fetch", time.time() - 3 * 3600,
                             **{"flywheel.app": "nightly-digest"}))
    found = json.loads(_cli(tmp_path, "traces", "--app", "nightly-digest", "--json"))
    assert [(r["trace_id"], r["status"]) for r in found] == [(KILLED, "incomplete")]


def test_migrating_an_older_store_marks_its_incomplete_traces(store_url):
    """A store written before `open_traces` existed: its incomplete traces are marked by the migration."""
    old = time.time() - 30 * 86400
    with Store.open(store_url) as store:
        ended = add_traces(store, [{"app": "support", "started_at": old}])  # a trace that ended (its row written)
        with store.begin() as conn:  # back to the schema before migrations 0015 and 0016, spans written then
            conn.execute(text("DROP TABLE open_traces"))
            conn.execute(text("ALTER TABLE traces DROP COLUMN search_text"))
            conn.execute(text("DELETE FROM alembic_version WHERE version_num = '0016_tracing_search_text'"))
            conn.execute(spans_t.insert(), [span_row(_span(KILLED, "01" * 8, "02" * 8, "step fetch", old,
                                                           **{"flywheel.app": "nightly-digest"}))])
    with Store.open(store_url) as store:
        with store.engine.connect() as conn:
            marked = conn.execute(select(open_traces.c.trace_id, open_traces.c.started_at)).all()
        assert [tid for tid, _ in marked] == [KILLED] and marked[0][1] == pytest.approx(old, abs=1e-3)
        rows = search_traces(store, TraceQuery(app="nightly-digest")).rows
        assert [(r["trace_id"], r["status"]) for r in rows] == [(KILLED, "incomplete")]
        assert ended[0] not in {r["trace_id"] for r in search_traces(store, TraceQuery(status="incomplete")).rows}


# ------------------------------------------------------------------------------ 3. the daily report's rule

DAY = dt.date(2026, 1, 15)
NOON = dt.datetime(2026, 1, 15, 12, tzinfo=dt.UTC).timestamp()
VOTES = {"user_low_score": ("score", 0.2, "user"), "user_thumbs_down": ("thumbs", "down", "user"),
         "user_high_score": ("score", 0.8, "user"), "judge_fail": ("score", 0.0, "judge"),
         "annotator_down": ("thumbs", "down", "annotator"), "changed_to_good": ("score", 0.1, "user")}


def test_the_daily_report_lists_the_negative_feedback_its_rate_counts(store_url):
    from flywheel.monitor.report import daily, render_text

    with Store.open(store_url) as store:
        ids = add_traces(store, [{"app": name, "input": f"q {name}", "started_at": NOON + i}
                                 for i, name in enumerate(VOTES)])
        names = dict(zip(ids, VOTES, strict=True))
        for tid, (name, value, source) in zip(ids, VOTES.values(), strict=True):
            record(store, tid, name, value, source=source, actor="u1", created_at=NOON + 50, scrub=str)
        record(store, ids[-1], "score", 0.9, source="user", actor="u1", created_at=NOON + 60, scrub=str)

        report = daily(store, day=DAY, drift=False)
        listed = {names[r["trace_id"]] for r in report["notable"]["negative_feedback"]}
        searched = {names[r["trace_id"]] for r in search_traces(store, TraceQuery(feedback="negative")).rows}
    assert listed == searched == {"user_low_score", "user_thumbs_down"}
    assert report["totals"]["negative_feedback_rate"] == pytest.approx(len(listed) / len(VOTES))
    assert "q user_low_score" in render_text(report)


def test_an_otlp_file_without_its_root_is_incomplete_until_the_root_is_imported(store, tmp_path):
    from test_traces_import_otlp import _has_root, _jsonl, _payload, _split

    from flywheel.tracing.importer import import_file

    early, late = _split(_payload("openllmetry_traceloop_sdk"))
    with_root, without = (early, late) if _has_root(early) else (late, early)
    import_file(store, _jsonl(tmp_path / "a.jsonl", [without]), "otlp")
    (row,) = search_traces(store, TraceQuery()).rows
    assert row["status"] == "incomplete"
    import_file(store, _jsonl(tmp_path / "b.jsonl", [with_root]), "otlp")
    assert [r["status"] for r in search_traces(store, TraceQuery()).rows] == ["ok"]
    assert search_traces(store, TraceQuery(status="incomplete")).rows == []
    with store.engine.connect() as conn:
        assert conn.execute(select(open_traces.c.trace_id)).all() == []

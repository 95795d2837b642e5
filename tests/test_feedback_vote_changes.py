"""A changed vote replaces the old one, in every reader of feedback (store/schema_feedback.py: `is_current`,
`superseded_ids`). A user who clicks thumbs down and then thumbs up leaves two rows in the append-only `feedback`
table; the trace must count as positive in negative-feedback sampling, the monitor's negative_feedback_rate, the
daily report, the route report, promotion from negative feedback and `flywheel traces --feedback` — on SQLite and
PostgreSQL alike. Votes of different actors (None is one anonymous actor) and on different spans stay separate."""

from __future__ import annotations

import datetime as dt
import json
import secrets

import pytest
from click.testing import CliRunner
from review_support import add_traces

from flywheel.feedback import record
from flywheel.store import Store
from flywheel.store.schema_feedback import superseded_ids

DAY_START = dt.datetime(2026, 1, 15, tzinfo=dt.UTC).timestamp()
T0 = DAY_START + 12 * 3600  # noon of the day every trace and vote lies in

# scenario -> votes (name, value, actor, span?) in the order given, one second apart
SCENARIOS: dict[str, list[tuple[str, object, str | None, bool]]] = {
    "down_then_up": [("thumbs", "down", "ann", False), ("thumbs", "up", "ann", False)],
    "up_then_down": [("thumbs", "up", "ann", False), ("thumbs", "down", "ann", False)],
    "two_actors": [("thumbs", "down", "ann", False), ("thumbs", "up", "bob", False)],
    "anonymous_changed": [("thumbs", "down", None, False), ("thumbs", "up", None, False)],
    "score_changed": [("score", 0.1, "ann", False), ("score", 0.9, "ann", False)],
    "span_and_trace": [("thumbs", "down", "ann", True), ("thumbs", "up", "ann", False)],  # two targets
    "same_second": [("thumbs", "down", "ann", False), ("thumbs", "up", "ann", False)],  # the later id wins
}
NEGATIVE = {"up_then_down", "two_actors", "span_and_trace"}
THUMBS_UP = {"down_then_up", "two_actors", "anonymous_changed", "span_and_trace", "same_second"}


def _world(store) -> dict[str, str]:
    """One trace per scenario (its app is the scenario's name), with a `route ask` span whose arm is the scenario
    too, and its votes. Returns {trace_id: scenario}."""
    names = list(SCENARIOS)
    ids = add_traces(store, [{"app": name, "input": f"question about {name}", "started_at": T0 + i}
                             for i, name in enumerate(names)])
    spans = store.table("spans")
    with store.begin() as conn:
        span_ids = {}
        for tid, name in zip(ids, names, strict=True):
            span_ids[tid] = secrets.token_hex(8)
            conn.execute(spans.insert().values(
                span_id=span_ids[tid], trace_id=tid, parent_id=None, name="route ask", kind="other",
                start_ns=int(T0 * 1e9), end_ns=int(T0 * 1e9) + 1000, latency_ms=1.0, output_state="ok",
                attributes={"flywheel.route.arm": name}, tenant="default", app=name))
    for tid, name in zip(ids, names, strict=True):
        for k, (vote, value, actor, on_span) in enumerate(SCENARIOS[name]):
            when = T0 + 100 + (0 if name == "same_second" else k)
            record(store, tid, vote, value, actor=actor, span_id=span_ids[tid] if on_span else None,
                   created_at=when, scrub=str)
    return dict(zip(ids, names, strict=True))


@pytest.fixture
def world(store_url):
    store = Store.open(store_url)
    try:
        yield store, _world(store)
    finally:
        store.close()


def test_negative_feedback_sampling_counts_the_last_vote(world):
    from flywheel.feedback.sampling import sample_traces

    store, names = world
    picked = sample_traces(store, n=50, strategy="negative-feedback", exclude_queued=False)
    assert {names[t] for t in picked} == NEGATIVE


def test_a_changed_user_vote_is_no_disagreement_for_uncertain_sampling(world):
    """`uncertain` picks traces whose signals disagree (one ≥ 0.5, one < 0.5): a vote and the vote that replaced
    it are one signal, not two."""
    from flywheel.feedback.sampling import sample_traces

    store, names = world
    picked = {names[t] for t in sample_traces(store, n=50, strategy="uncertain", exclude_queued=False)}
    assert "down_then_up" not in picked and "score_changed" not in picked
    assert "two_actors" in picked  # two people who disagree are still uncertain


def test_monitor_negative_feedback_rate_counts_the_last_vote(world):
    from flywheel.monitor.windows import compute

    store, _ = world
    windows = compute(store, window=86400.0, since=DAY_START, until=DAY_START + 86400, group_by=("app",))
    rates = {w.group["app"]: w.metrics["negative_feedback_rate"] for w in windows}
    assert rates == {name: 1.0 if name in NEGATIVE else 0.0 for name in SCENARIOS}


def test_daily_report_lists_only_traces_still_voted_down(world):
    from flywheel.monitor.report import daily

    store, names = world
    report = daily(store, day=dt.date(2026, 1, 15), drift=False)
    assert {names[r["trace_id"]] for r in report["notable"]["negative_feedback"]} == NEGATIVE
    assert report["totals"]["negative_feedback_rate"] == pytest.approx(len(NEGATIVE) / len(SCENARIOS), abs=1e-6)


def test_route_report_counts_the_last_vote(world):
    from flywheel.loop.routing import route_report

    store, _ = world
    arms = route_report(store)["routes"]["ask"]["arms"]
    assert {arm: m["negative"] for arm, m in arms.items()} == {n: int(n in NEGATIVE) for n in SCENARIOS}
    assert all(m["rated"] == 1 for m in arms.values())  # a changed vote still rated the answer


def test_promote_from_negative_feedback_takes_only_traces_still_voted_down(world):
    from flywheel.evals.promote_sources import from_feedback, from_traces

    store, names = world
    assert {names[s.trace_id] for s in from_feedback(store)} == NEGATIVE
    by_name = {v: k for k, v in names.items()}
    verdicts = {names[s.trace_id]: s.verdict for s in from_traces(store, [by_name["down_then_up"],
                                                                           by_name["up_then_down"]])}
    assert verdicts == {"down_then_up": "unreviewed", "up_then_down": "fail"}


def test_trace_search_feedback_filter_reads_the_last_vote(world):
    from flywheel.tracing.search import TraceQuery, search_traces

    store, names = world

    def found(kind: str) -> set[str]:
        return {names[r["trace_id"]] for r in search_traces(store, TraceQuery(feedback=kind), limit=500).rows}

    assert found("negative") == NEGATIVE
    assert found("positive") == THUMBS_UP | {"score_changed"}  # a score of 0.9 is a positive vote
    assert found("any") == set(SCENARIOS)


def test_negative_filter_is_the_negative_feedback_rate_rule(store_url):
    """The metrics chart's point links to `feedback=negative`: the list must hold exactly the traces the metric
    counted — a user's score below 0.5 is negative, a judge's or an annotator's verdict is not user feedback."""
    from flywheel.monitor.windows import compute
    from flywheel.tracing.search import TraceQuery, search_traces

    store = Store.open(store_url)
    try:
        votes = {"user_low_score": ("score", 0.2, "user"), "user_thumbs_down": ("thumbs", "down", "user"),
                 "judge_fail": ("score", 0.0, "judge"), "user_high_score": ("score", 0.8, "user"),
                 "annotator_down": ("thumbs", "down", "annotator")}
        ids = add_traces(store, [{"app": name, "input": f"q {name}", "started_at": T0 + i}
                                 for i, name in enumerate(votes)])
        for tid, (name, value, source) in zip(ids, votes.values(), strict=True):
            record(store, tid, name, value, source=source, created_at=T0 + 50, scrub=str)
        names = dict(zip(ids, votes, strict=True))
        listed = {names[r["trace_id"]] for r in search_traces(store, TraceQuery(feedback="negative"), limit=50).rows}
        assert listed == {"user_low_score", "user_thumbs_down"}
        (window,) = compute(store, window=86400.0, since=DAY_START, until=DAY_START + 86400, group_by=())
        assert window.metrics["negative_feedback_rate"] == pytest.approx(len(listed) / len(votes))
    finally:
        store.close()


def test_superseded_ids_is_the_sql_rule_in_python(world):
    """The pure-Python helper marks exactly the rows the SQL condition leaves out."""
    from sqlalchemy import select

    from flywheel.store.schema_feedback import is_current

    store, _ = world
    f = store.table("feedback")
    with store.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(f)).mappings()]
        current = set(conn.scalars(select(f.c.id).where(is_current(f))))
    gone = superseded_ids(rows)
    assert gone and gone == {r["id"] for r in rows} - current
    # one replaced row each in down_then_up, up_then_down, anonymous_changed, score_changed, same_second; none in
    # two_actors (two voters) and span_and_trace (two targets)
    assert len(gone) == 5


# ------------------------------------------------------------------------------------- showing the history
def _voted_project(tmp_path):
    """A project whose store has one trace voted down, then up, by the same user: (root, trace id)."""
    from flywheel.config import Project

    (tmp_path / "flywheel.yaml").write_text("models: {}\n", encoding="utf-8")
    with Store.open(Project.load(tmp_path).store_url) as store:
        [tid] = add_traces(store, [{"input": "how long is the refund period?", "started_at": T0}])
        record(store, tid, "thumbs", "down", comment="wrong period", actor="ann", created_at=T0 + 1, scrub=str)
        record(store, tid, "thumbs", "up", actor="ann", created_at=T0 + 2, scrub=str)
    return tmp_path, tid


def test_cli_trace_show_marks_the_replaced_vote(tmp_path):
    import flywheel.cli.traces  # noqa: F401  (registers `flywheel traces`)
    from flywheel.cli import main

    root, tid = _voted_project(tmp_path)
    out = CliRunner().invoke(main, ["--project", str(root), "traces", "show", tid], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    lines = [ln for ln in out.output.splitlines() if "thumbs" in ln]
    assert "feedback (2, 1 vote(s) changed later):" in out.output
    assert len(lines) == 2 and "thumbs down  [replaced by a later vote]" in lines[0] and "replaced" not in lines[1]
    data = json.loads(CliRunner().invoke(main, ["--project", str(root), "traces", "show", tid, "--json"]).output)
    assert [(e["value"], e["superseded"]) for e in data["feedback"]] == [(0, True), (1, False)]


def test_dashboard_trace_page_strikes_the_replaced_vote(tmp_path):
    from fastapi.testclient import TestClient
    from server_support import write_project

    from flywheel import web
    from flywheel.server import create_app

    app = create_app(write_project(tmp_path, "http://127.0.0.1:9/v1"), host="127.0.0.1")
    web.mount(app, app.state.flywheel)
    store = app.state.flywheel.store
    [tid] = add_traces(store, [{"input": "how long is the refund period?", "started_at": T0}])
    record(store, tid, "thumbs", "down", actor="ann", created_at=T0 + 1, scrub=str)
    record(store, tid, "thumbs", "up", actor="ann", created_at=T0 + 2, scrub=str)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        html = client.get(f"/ui/traces/{tid}").text
        rows = html.split('id="feedback"')[1].split("</table>")[0].split("<tr")[2:]
        assert len(rows) == 2
        assert 'class="muted superseded"' in rows[0] and "<del>down</del>" in rows[0]
        assert "replaced by a later vote" in rows[0] and "superseded" not in rows[1] and "<del>" not in rows[1]
        data = client.get(f"/ui/traces/{tid}.json").json()
        assert [f["superseded"] for f in data["feedback"]] == [True, False]

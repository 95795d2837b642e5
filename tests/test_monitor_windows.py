"""Monitors per window and group: every metric on known traffic, identical on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from monitor_support import DAY, T0, add_span, load, record, trace_ids, write_jsonl

import flywheel.cli.monitor  # registers `flywheel monitor` until the integrator wires it
import flywheel.cli.traces_import  # noqa: F401
from flywheel import feedback
from flywheel.cli import main
from flywheel.errors import UserError
from flywheel.monitor.windows import compute, parse_duration, parse_time
from flywheel.store import Store, schema_diff
from flywheel.tracing.importer import import_file

ANSWER = "Open Settings, then Security, then Reset."


def _traffic(store: Store, tmp_path) -> dict[str, str]:
    recs = [
        record(T0 + 100, latency_ms=100, cost=0.1, question="q1 How do I reset my password?"),
        record(T0 + 200, latency_ms=200, error="upstream 500", answer=""),
        record(T0 + 300, latency_ms=300, answer="I don't know."),
        record(T0 + 400, latency_ms=400, question="如何重置密码？"),
        record(T0 + DAY + 50, latency_ms=50, answer=""),  # day 2: an empty answer
        record(T0 + 500, app="faq", model="small", latency_ms=10),
    ]
    load(store, tmp_path, recs)
    json_lines = [{"timestamp": T0 + 600 + i, "app": "jsonapp",
                   "request": {"model": "gpt", "messages": [{"role": "user", "content": "colors as JSON"}],
                               "response_format": {"type": "json_object"}},
                   "response": {"created": T0 + 600 + i, "model": "gpt",
                                "choices": [{"message": {"role": "assistant", "content": text}}]}}
                  for i, text in enumerate(['{"colors": ["red"]}', '{"colors": ["red"'])]
    import_file(store, write_jsonl(tmp_path / "json.jsonl", json_lines), "openai-log")
    ids = {ts: tid for tid, ts, _ in trace_ids(store)}
    t1, t3, t4 = ids[T0 + 100], ids[T0 + 300], ids[T0 + 400]
    ns = int((T0 + 100) * 1e9)
    add_span(store, t1, "guard.pii", "guard", ns, {"flywheel.guard.check": "pii", "flywheel.guard.on_fail": "block",
                                                    "flywheel.guard.action": "block"})
    add_span(store, t1, "guard.block", "guard", ns, {"flywheel.guard.check": "pii", "flywheel.guard.action": "block"})
    add_span(store, t4, "guard.injection", "guard", ns, {"flywheel.guard.check": "injection",
                                                          "flywheel.guard.on_fail": "block",
                                                          "flywheel.guard.action": "pass"})
    add_span(store, t1, "cache.lookup", "cache", ns, {"flywheel.cache.hit": True})
    add_span(store, t3, "cache.lookup", "cache", ns, {"flywheel.cache.hit": False})
    feedback.record(store, t3, "thumbs", "down")
    feedback.record(store, t1, "thumbs", "up")
    feedback.record(store, t1, "grounding", {"passed": True, "score": 1.0, "cost_usd": 0.0}, source="check")
    feedback.record(store, t4, "judge", {"passed": False, "score": 0.0, "cost_usd": 0.01}, source="judge")
    return {"t1": t1, "t3": t3, "t4": t4}


EXPECTED_SUPPORT_DAY1 = {
    "volume": 4, "error_rate": 0.25, "latency_p50_ms": 250.0, "latency_p95_ms": 385.0, "cost_usd": 0.1,
    "cost_per_trace_usd": 0.025, "tokens": 0, "empty_output_rate": 0.0, "refusal_rate": round(1 / 3, 9),
    "output_chars_mean": round((len(ANSWER) * 2 + len("I don't know.")) / 3, 9), "json_requested": 0,
    "json_valid_rate": None, "language_mismatch_rate": round(1 / 3, 9), "guard_trigger_rate": 0.25,
    "pii_hits": 1, "cache_hit_rate": 0.5, "negative_feedback_rate": 0.25, "online_pass_rate": 0.5,
}


def test_every_metric_on_known_traffic_sqlite_and_postgres(store_url, tmp_path):
    store = Store.open(store_url)
    try:
        _traffic(store, tmp_path)
        stats = compute(store, window="1d", since=T0 - DAY, until=T0 + 3 * DAY)
        by = {(w.start, w.group["app"]): w for w in stats}
        assert sorted(by) == [(T0, "faq"), (T0, "jsonapp"), (T0, "support"), (T0 + DAY, "support")]
        assert by[(T0, "support")].metrics == EXPECTED_SUPPORT_DAY1
        assert by[(T0, "support")].details["guard_triggers"] == {"pii": 1}
        assert by[(T0, "support")].details["languages"] == {"en": 3}
        assert by[(T0, "jsonapp")].metrics["json_requested"] == 2
        assert by[(T0, "jsonapp")].metrics["json_valid_rate"] == 0.5
        day2 = by[(T0 + DAY, "support")].metrics
        assert (day2["volume"], day2["empty_output_rate"], day2["refusal_rate"]) == (1, 1.0, None)
        hourly = compute(store, window="1h", since=T0, until=T0 + DAY, group_by=())
        assert [(w.start, w.metrics["volume"]) for w in hourly] == [(T0, 7)]
        by_model = compute(store, window="1d", since=T0, until=T0 + DAY, group_by=("model",),
                           where={"app": "faq"})
        assert [(w.group, w.metrics["volume"]) for w in by_model] == [({"model": "small"}, 1)]
        assert schema_diff(store, ["monitor_online_runs", "monitor_cursors", "monitor_alerts"]) == []
    finally:
        store.close()


def test_empty_window_and_bad_fields(store):
    assert compute(store, window="1h", since=T0, until=T0 + 3600) == []
    with pytest.raises(UserError, match="cannot group or filter monitors by 'colour'"):
        compute(store, group_by=("colour",))
    with pytest.raises(UserError, match="cannot read window"):
        parse_duration("daily")
    assert parse_time("2026-09-22") == T0 and parse_time("1d", now=T0 + DAY) == T0
    with pytest.raises(UserError, match="--since"):
        parse_time("last tuesday")


def test_cli_report_json_and_empty_window(tmp_path):
    (tmp_path / "flywheel.yaml").write_text("models: {}\n", encoding="utf-8")
    runner = CliRunner()
    empty = runner.invoke(main, ["--project", str(tmp_path), "monitor", "--since", "2026-09-22",
                                 "--until", "2026-09-23"])
    assert empty.exit_code == 0, empty.output
    assert "no traces in this period" in empty.output
    write_jsonl(tmp_path / "a.jsonl", [record(T0 + 10, answer="I don't know."), record(T0 + 20)])
    imported = runner.invoke(main, ["--project", str(tmp_path), "traces", "import", str(tmp_path / "a.jsonl")])
    assert imported.exit_code == 0, imported.output
    out = runner.invoke(main, ["--project", str(tmp_path), "monitor", "--since", "2026-09-22", "--until",
                               "2026-09-23", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert [w["metrics"]["refusal_rate"] for w in data["windows"]] == [0.5]
    text = runner.invoke(main, ["--project", str(tmp_path), "monitor", "--since", "2026-09-22", "--until",
                                "2026-09-23", "--group-by", "app,model"])
    assert "app=support, model=gpt" in text.output and "refusal_rate" in text.output and "50.0 %" in text.output


def test_daily_report_text_json_and_html(tmp_path):
    import datetime as dt

    import flywheel.cli.report  # noqa: F401 - registers `flywheel report` until the integrator wires it

    (tmp_path / "flywheel.yaml").write_text(
        "monitor:\n  alerts:\n    - {name: errors, metric: error_rate, window: 1d, above: 0.2}\n", encoding="utf-8")
    store = Store.open(f"sqlite:///{tmp_path / '.flywheel' / 'flywheel.db'}")
    try:
        ids = _traffic(store, tmp_path)
    finally:
        store.close()
    day = dt.datetime.fromtimestamp(T0, dt.UTC).date().isoformat()
    runner = CliRunner()
    out = runner.invoke(main, ["--project", str(tmp_path), "report", "daily", "--date", day, "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["totals"]["volume"] == 7
    assert [a["rule"] for a in data["alerts"]] == ["errors"]  # support: 1 error in 4
    assert [r["trace_id"] for r in data["notable"]["negative_feedback"]] == [ids["t3"]]
    assert len(data["notable"]["errors"]) == 1 and data["notable"]["slowest"][0]["latency_ms"] == 400.0
    text = runner.invoke(main, ["--project", str(tmp_path), "report", "daily", "--date", day])
    assert "alerts: 1" in text.output and "negative feedback:" in text.output
    page = runner.invoke(main, ["--project", str(tmp_path), "report", "daily", "--date", day, "--html"])
    html_path = tmp_path / ".flywheel" / "reports" / f"daily-{day}.html"
    assert page.exit_code == 0 and html_path.exists() and "<h1>flywheel daily report" in html_path.read_text()
    empty = runner.invoke(main, ["--project", str(tmp_path), "report", "daily", "--date", "2020-01-01"])
    assert empty.exit_code == 0 and "no traces this day" in empty.output

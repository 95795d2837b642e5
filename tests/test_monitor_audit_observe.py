"""Defects found by using `flywheel monitor`, alerts, `drift`, `skew` and `report daily` as a new user would:
traffic drops and outages, questions of cache hits, alert scopes, reversed ranges, PII in the daily report."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from drift_support import write_project, write_suite
from monitor_support import DAY, T0, load, record

import flywheel.cli.drift  # registers `drift` and `skew`
import flywheel.cli.monitor  # registers `monitor`
import flywheel.cli.report  # noqa: F401 - registers `report`
from flywheel.cli import main
from flywheel.config import AlertRule
from flywheel.monitor.alerts import Alert, evaluate
from flywheel.monitor.windows import question_and_answer
from flywheel.store import Store

HOUR = 3600.0
PER_DAY = 24
DROP = AlertRule(name="traffic-drop", metric="volume", window="1d", below=0.3, relative_to="window:7d")


def _run(root: Path, *args: str):
    return CliRunner().invoke(main, ["--project", str(root), *args])


@pytest.fixture(scope="module")
def steady(tmp_path_factory):
    """Days 0-6: one support trace an hour; day 7: two traces in its first hour; day 8 on: nothing."""
    tmp = tmp_path_factory.mktemp("steady")
    store = Store.open(f"sqlite:///{tmp / 'flywheel.db'}")
    recs = [record(T0 + d * DAY + h * HOUR + 60) for d in range(7) for h in range(PER_DAY)]
    recs += [record(T0 + 7 * DAY + 60 * k) for k in (1, 2)]
    load(store, tmp, recs)
    yield store
    store.close()


def test_an_open_window_is_not_a_traffic_drop_yet(steady):
    alerts, _ = evaluate(steady, [DROP], until=T0 + 7 * DAY + 2 * HOUR, group_by=())
    assert alerts == []


def test_a_closed_window_with_little_traffic_is_a_drop(steady):
    alerts, _ = evaluate(steady, [DROP], until=T0 + 8 * DAY, group_by=())
    assert [(a.window_start, a.value, a.baseline) for a in alerts] == [(T0 + 7 * DAY, 2.0, float(PER_DAY))]


def test_a_window_without_any_trace_is_an_outage_and_alerts(steady):
    alerts, seen = evaluate(steady, [DROP], until=T0 + 9 * DAY, group_by=())
    # the baseline is the mean of the seven days before day 8, the quiet day 7 (2 traces) included
    assert [(a.window_start, a.value) for a in alerts] == [(T0 + 8 * DAY, 0.0)]
    assert alerts[0].baseline == pytest.approx((6 * PER_DAY + 2) / 7)
    assert [w.metrics["volume"] for w in seen["traffic-drop"]] == [0]


def test_above_is_judged_on_an_open_window_and_where_names_the_scope(steady):
    busy = AlertRule(name="busy", metric="volume", window="1d", above=1, where={"app": "support"})
    alerts, _ = evaluate(steady, [busy], until=T0 + 7 * DAY + 2 * HOUR, group_by=())
    # the closed day 6 and the open day 7 (2 traces so far: already above 1)
    assert [(a.window_start, a.value) for a in alerts] == [(T0 + 6 * DAY, 24.0), (T0 + 7 * DAY, 2.0)]
    # the rule watches app=support only: its alert must not say "all traffic"
    assert alerts[1].group == {"app": "support"}
    assert alerts[1].message.endswith("[app=support]")


def test_traces_without_an_app_read_as_a_dash_like_the_monitor_table():
    a = Alert(rule="errors", metric="error_rate", value=0.5, bound="above 0.05", window_start=0.0,
              window_end=1.0, group={"app": None})
    assert a.message.endswith("[app=-]")


def test_the_question_of_a_cache_hit_comes_from_the_app_span():
    # what `flywheel serve` records for a chat app's cache hit: a root without inputs, no model call
    spans = [
        {"parent_id": None, "kind": "other", "inputs": None, "outputs": "Il fait beau."},
        {"parent_id": "r", "kind": "cache", "inputs": None, "outputs": "exact"},
        {"parent_id": "r", "kind": "app", "inputs": {"message": "今天天气怎么样？"},
         "outputs": {"text": "Il fait beau.", "citations": []}},
    ]
    assert question_and_answer(spans) == ("今天天气怎么样？", "Il fait beau.")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = write_project(tmp_path_factory.mktemp("observe"))
    (root / ".flywheel").mkdir()
    with Store.open(f"sqlite:///{root / '.flywheel' / 'flywheel.db'}") as store:
        recs = [record(T0 + 60 * i, question=f"How do I reset the password of account {i}?") for i in range(30)]
        recs += [record(T0 + DAY + 60, question="我的手机号是13912345678，邮箱 li.lei@example.com，请帮我查询",
                        error="upstream rejected li.lei@example.com", answer="", latency_ms=900.0),
                 record(T0 + DAY + 120, question="How do I reset my password?", latency_ms=50.0),
                 record(T0 + DAY + 30, question="Ping?", app=None, error="timeout", answer="")]  # type: ignore[arg-type]
        load(store, root, recs)
    write_suite(root, "billing", ["How do I pay an invoice?"] * 5)
    return root


def test_daily_report_masks_pii_of_notable_traces(project):
    day = "2026-09-23"
    for args in ([], ["--json"]):
        res = _run(project, "report", "daily", "--date", day, *args)
        assert res.exit_code == 0, res.output
        assert "13912345678" not in res.output and "li.lei@example.com" not in res.output
        assert "<CN_MOBILE>" in res.output and "<EMAIL_ADDRESS>" in res.output
    out = project / "daily.html"
    assert _run(project, "report", "daily", "--date", day, "--html", "--out", str(out)).exit_code == 0
    page = out.read_text(encoding="utf-8")
    assert "li.lei@example.com" not in page and "13912345678" not in page and "我的手机号是" in page
    assert "<td>None</td>" not in page
    data = json.loads(_run(project, "report", "daily", "--date", day, "--json").output)
    assert data["notable"]["errors"][0]["error"] == "upstream rejected <EMAIL_ADDRESS>"


@pytest.mark.parametrize("command", [["monitor"], ["skew", "--suite", "billing"], ["drift"]])
def test_a_reversed_period_is_an_error_not_an_empty_report(project, command):
    res = _run(project, *command, "--since", "2026-09-25", "--until", "2026-09-22")
    assert res.exit_code == 2, res.output
    assert "--since is not before --until" in res.output
    assert "Traceback" not in res.output


def test_drift_says_why_a_window_with_traces_was_not_tested(project):
    res = _run(project, "drift", "--reference", "window:2026-09-22..2026-09-22", "--since", "2026-09-23",
               "--until", "2026-09-24")
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if "n=3" in x)
    assert line.endswith("(not tested: fewer than 5 traces)")


def test_monitor_run_once_says_why_a_judge_gave_no_verdict(tmp_path, llm):
    import time

    from flywheel.apps.runtime import Runtime
    from flywheel.config import Project

    (tmp_path / "flywheel.yaml").write_text(
        f'models:\n  gpt: {{provider: openai_compat, base_url: "{llm.base_url}", model: fake-model, max_retries: 0}}\n'
        "monitor:\n  online:\n"
        '    - {check: judge, criterion: "The answer is polite.", model: gpt, sample: 1.0, name: polite}\n',
        encoding="utf-8")
    llm.add(r"criterion", "I would rather not say.")  # an answer without a verdict
    with Runtime(Project.load(tmp_path), tracing=False) as rt:
        load(rt.store, tmp_path, [record(time.time() - 3600, answer="Hello!") for _ in range(2)])
    res = _run(tmp_path, "monitor", "run", "--once", "--since", "1d")
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.strip().startswith("polite:"))
    assert "pending 2" in line and "no verdict: malformed judge output" in line and line.endswith("(2)")
    data = json.loads(_run(tmp_path, "monitor", "run", "--once", "--json").stdout)
    assert data["errors"]["polite"]["claims"] == 2


def test_a_failing_webhook_is_named_without_the_token_in_its_path(caplog):
    import socket

    from flywheel.monitor.alerts import notify

    with socket.socket() as s:  # a port nobody listens on: the POST fails at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "T01ABCDEF/B02GHIJKL/abcdefghijklmnopqrstuvwx"
    alert = Alert(rule="errors", metric="error_rate", value=0.5, bound="above 0.05", window_start=0.0,
                  window_end=1.0, group={})
    problems = notify([alert], [f"http://127.0.0.1:{port}/services/{token}"])
    assert len(problems) == 1 and f"http://127.0.0.1:{port}/…" in problems[0]
    assert "abcdefghijklmnopqrstuvwx" not in problems[0] + caplog.text


def test_report_html_out_into_a_folder_or_an_unwritable_path(project, tmp_path):
    res = _run(project, "report", "daily", "--date", "2026-09-23", "--html", "--out", str(tmp_path))
    assert res.exit_code == 0, res.output
    assert (tmp_path / "daily-2026-09-23.html").is_file()
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    bad = _run(project, "report", "daily", "--date", "2026-09-23", "--html", "--out", str(blocker / "r.html"))
    assert bad.exit_code == 2 and "cannot write the report to" in bad.output and "Traceback" not in bad.output


def test_a_report_of_today_assumes_no_outage_in_hours_still_to_come(steady):
    from flywheel.monitor.report import daily

    hourly = AlertRule(name="quiet-hour", metric="volume", window="1h", below=0.5)
    now = T0 + 7 * DAY + 3 * HOUR  # day 7, 03:00: its two traces came in the first hour
    data = daily(steady, [hourly], day=dt.date(2026, 9, 29), now=now, drift=False)
    starts = sorted(a["window_start"] for a in data["alerts"])
    # 01:00 and 02:00 passed without a trace; 03:00 is under way, the hours after it have not happened
    assert starts == [T0 + 7 * DAY + HOUR, T0 + 7 * DAY + 2 * HOUR]


def test_monitor_notify_without_targets_is_an_error_not_a_silent_flag(tmp_path):
    (tmp_path / "flywheel.yaml").write_text(
        "monitor:\n  alerts:\n    - {name: errors, metric: error_rate, window: 1h, above: 0.05}\n  notify: []\n",
        encoding="utf-8")
    res = _run(tmp_path, "monitor", "--notify")
    assert res.exit_code == 2 and "no notify targets" in res.output

"""Alert rules: spikes injected at known windows alert in that window; stationary traffic stays quiet;
config mistakes are exit-2 errors naming the rule; notify reaches log, a real webhook and a command."""

from __future__ import annotations

import json
import logging
import random
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from click.testing import CliRunner
from monitor_support import T0, load, record

import flywheel.cli.monitor  # noqa: F401 - registers `flywheel monitor` until the integrator wires it
from flywheel.cli import main
from flywheel.config import AlertRule
from flywheel.errors import UserError
from flywheel.monitor.alerts import Alert, check_rules, evaluate, notify

HOUR = 3600.0
WINDOWS = 52
PER_WINDOW = 60
ERROR_SPIKE, REFUSAL_SPIKE = 20, 35
RULES = [
    AlertRule(name="errors", metric="error_rate", window="1h", above=3.0, relative_to="window:12h"),
    AlertRule(name="refusals", metric="refusal_rate", window="1h", above=3.0, relative_to="window:12h"),
    AlertRule(name="slow", metric="latency_p95_ms", window="1h", above=5000),
]


@pytest.fixture(scope="module")
def traffic(tmp_path_factory):
    from flywheel.store import Store

    tmp = tmp_path_factory.mktemp("traffic")
    store = Store.open(f"sqlite:///{tmp / 'flywheel.db'}")
    rng = random.Random(7)
    recs = []
    for w in range(WINDOWS):
        p_error = 0.4 if w == ERROR_SPIKE else 0.05
        p_refuse = 0.4 if w == REFUSAL_SPIKE else 0.05
        for i in range(PER_WINDOW):
            ts = T0 + w * HOUR + i * (HOUR / PER_WINDOW)
            if rng.random() < p_error:
                recs.append(record(ts, error="upstream 500", answer="", latency_ms=rng.uniform(50, 900)))
            elif rng.random() < p_refuse:
                recs.append(record(ts, answer=rng.choice(["I don't know.", "抱歉，我无法回答这个问题。"]),
                                   latency_ms=rng.uniform(50, 900)))
            else:
                recs.append(record(ts, question=f"question {i}", latency_ms=rng.uniform(50, 900)))
    load(store, tmp, recs)
    yield store
    store.close()


def test_spikes_alert_in_their_window_and_stationary_traffic_stays_quiet(traffic):
    alerts, seen = evaluate(traffic, RULES, since=T0, until=T0 + WINDOWS * HOUR)
    assert len(seen["errors"]) == WINDOWS
    fired = {(a.rule, int((a.window_start - T0) // HOUR)) for a in alerts}
    assert ("errors", ERROR_SPIKE) in fired
    assert ("refusals", REFUSAL_SPIKE) in fired
    false = fired - {("errors", ERROR_SPIKE), ("refusals", REFUSAL_SPIKE)}
    assert len(false) <= 1, sorted(false)  # 50 stationary windows × 3 rules
    spike = next(a for a in alerts if a.rule == "errors")
    assert spike.baseline is not None and spike.value > 3 * spike.baseline and "x baseline" in spike.bound


def test_absolute_rule_and_where_filter(traffic):
    rules = [AlertRule(name="any-error", metric="error_rate", window="1h", above=0.3),
             AlertRule(name="other-app", metric="error_rate", window="1h", above=0.0, where={"app": "nope"})]
    alerts, _ = evaluate(traffic, rules, since=T0, until=T0 + WINDOWS * HOUR)
    assert [(a.rule, a.window_start) for a in alerts] == [("any-error", T0 + ERROR_SPIKE * HOUR)]


def test_unknown_metric_names_rule_and_known_metrics():
    with pytest.raises(UserError) as err:
        check_rules([AlertRule(name="latency", metric="p99_latency", above=1)])
    assert "`latency`" in err.value.message and "p99_latency" in err.value.message
    assert "error_rate" in (err.value.hint or "")
    with pytest.raises(UserError, match="neither `above` nor `below`"):
        check_rules([AlertRule(metric="error_rate")])
    with pytest.raises(UserError, match="relative_to"):
        check_rules([AlertRule(metric="error_rate", above=2, relative_to="last week")])
    with pytest.raises(UserError, match="notify target"):
        check_rules([], ["email:me@example.com"])


def test_cli_bad_metric_exits_2_with_file_line(tmp_path):
    (tmp_path / "flywheel.yaml").write_text(
        "monitor:\n  alerts:\n    - {name: lat, metric: p99, above: 1}\n", encoding="utf-8")
    out = CliRunner().invoke(main, ["--project", str(tmp_path), "monitor"])
    assert out.exit_code == 2
    assert "flywheel.yaml:3" in out.output and "unknown metric 'p99'" in out.output


ALERT = Alert(rule="errors", metric="error_rate", value=0.4, bound="above 3x baseline", window_start=T0,
              window_end=T0 + HOUR, group={"app": "support"}, baseline=0.05)


def test_notify_webhook_command_and_log(tmp_path, caplog):
    got: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    out_file = tmp_path / "cmd.json"
    script = f"import sys; open({str(out_file)!r}, 'w').write(sys.stdin.read())"
    try:
        with caplog.at_level(logging.WARNING, logger="flywheel.monitor"):
            problems = notify([ALERT], ["log", f"http://127.0.0.1:{server.server_port}/hook",
                                        f"command:{sys.executable} -c \"{script}\""])
    finally:
        server.shutdown()
    assert problems == []
    assert got[0]["alerts"][0]["rule"] == "errors" and got[0]["alerts"][0]["group"] == {"app": "support"}
    assert json.loads(out_file.read_text())["alerts"][0]["value"] == 0.4
    assert any("errors: error_rate = 0.4" in r.getMessage() for r in caplog.records)


def test_failing_targets_are_reported_not_raised():
    problems = notify([ALERT], ["http://127.0.0.1:9/unreachable", f"command:{sys.executable} -c 'import sys; sys.exit(3)'"])
    assert len(problems) == 2 and "exit 3" in problems[1]
    assert notify([], ["http://127.0.0.1:9/unreachable"]) == []


def test_fire_sends_each_alert_once_across_workers(traffic, tmp_path):
    from flywheel.monitor.alerts import fire

    log_file = tmp_path / "sent.jsonl"
    script = f"import sys; open({str(log_file)!r}, 'a').write(sys.stdin.read() + chr(10))"
    target = f"command:{sys.executable} -c \"{script}\""
    now = T0 + (ERROR_SPIKE + 1) * HOUR  # the end of the spike window
    sent = fire(traffic, RULES, [target], now=now)
    assert [(a.rule, a.window_start) for a in sent] == [("errors", T0 + ERROR_SPIKE * HOUR)]
    assert fire(traffic, RULES, [target], now=now + 60) == []  # same window: already sent (by any worker)
    lines = log_file.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["alerts"][0]["rule"] == "errors"


@pytest.fixture
def webhook():
    """A local webhook: (its URL, the JSON bodies it received)."""
    got: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", got
    server.shutdown()


def test_drift_notify_sends_drift_alerts_to_the_monitor_targets(tmp_path, webhook):
    """`flywheel drift --notify`: the drift alerts go to monitor.notify (here a webhook and the log), in the
    monitor alerts' JSON; a bad target is an exit-2 error before any work."""
    from drift_support import DAY, START, traffic, write_project

    import flywheel.cli.drift  # noqa: F401 - registers `drift` until the CLI lists it
    from flywheel.bench.drift import write_traces
    from flywheel.store import Store

    url, got = webhook
    root = write_project(tmp_path)
    rnd = random.Random(6)
    mix = {"billing": 0.5, "deploy": 0.45, "天气": 0.05}
    records = traffic(mix, 300, START, 5 * DAY, rnd) + traffic({**mix, "garden": 0.7}, 60, START + 5 * DAY, DAY, rnd)
    (root / ".flywheel").mkdir()
    with Store.open(f"sqlite:///{root / '.flywheel' / 'flywheel.db'}") as store:
        write_traces(store, records)
    args = ["--project", str(root), "drift", "--reference", "window:2026-10-01..2026-10-05", "--since",
            "2026-10-06", "--until", "2026-10-07", "--notify", "--json"]
    yaml = root / "flywheel.yaml"
    base = yaml.read_text()
    yaml.write_text(base + "monitor:\n  notify: [\"ftp://nowhere\"]\n", encoding="utf-8")
    bad = CliRunner().invoke(main, args)
    assert bad.exit_code == 2 and "unknown notify target 'ftp://nowhere'" in bad.output and got == []
    yaml.write_text(base + f"monitor:\n  notify: [log, \"{url}\"]\n", encoding="utf-8")
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["alerts"] and len(got) == 1
    sent = got[0]["alerts"]
    assert [a["metric"] for a in sent] == [a["kind"] for a in report["alerts"]]
    assert all(a["rule"] == "drift" and set(a) >= {"value", "bound", "window_start", "group", "message"} for a in sent)
    assert any(a["metric"] == "input_drift" and "input embeddings drifted" in a["message"] for a in sent)
    assert f"notified {len(sent)} drift alert(s) to 2 of 2 target(s)" in res.stderr

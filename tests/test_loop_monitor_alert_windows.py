"""The alert worker (`monitor.alerts.fire`, what `flywheel serve` and `flywheel monitor run` call every 5 minutes)
judges the window that closed last on all of it — the same value `flywheel monitor` prints for that window — not
on the part of it that falls in the last `window` of wall time."""

from __future__ import annotations

import datetime as dt
import json

from flywheel.config import AlertRule
from flywheel.monitor.alerts import evaluate, fire
from flywheel.monitor.windows import compute
from flywheel.tracing.importer import import_file

DAY = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)


def _history(store, tmp_path) -> None:
    lines = []
    for i in range(24):  # one trace an hour; the one at 03:00 fails, the slow ones are in the morning
        lines.append({"timestamp": (DAY + dt.timedelta(hours=i)).isoformat(), "app": "support", "input": f"q{i}",
                      "output": None if i == 3 else f"a{i}", "latency_ms": 3000 if i < 6 else 300,
                      **({"error": "upstream 503"} if i == 3 else {})})
    path = tmp_path / "day.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    import_file(store, path)


def test_the_closed_window_is_judged_whole(store, tmp_path):
    _history(store, tmp_path)
    now = (DAY + dt.timedelta(days=1, hours=11, minutes=53)).timestamp()  # the next day, before noon
    rules = [AlertRule(name="errors", metric="error_rate", window="1d", above=0.02),
             AlertRule(name="slow", metric="latency_p95_ms", window="1d", above=2000)]
    (day,) = compute(store, window="1d", since=DAY.timestamp(), until=now)
    assert day.metrics["error_rate"] == round(1 / 24, 9) and day.metrics["latency_p95_ms"] == 3000
    alerts, seen = evaluate(store, rules, until=now)
    # from `now - 1d` (11:53 the day before) the error at 03:00 and the slow morning were cut off: no alert
    assert sorted((a.rule, a.value, a.window_start) for a in alerts) == [
        ("errors", round(1 / 24, 9), DAY.timestamp()), ("slow", 3000.0, DAY.timestamp())]
    assert [w.metrics["volume"] for w in seen["errors"]] == [24]
    sent = fire(store, rules, [], now=now)
    assert {a.rule for a in sent} == {"errors", "slow"}
    assert fire(store, rules, [], now=now + 300) == []  # each alert once


def test_a_bad_window_or_baseline_names_its_flywheel_yaml_line(tmp_path):
    from click.testing import CliRunner

    from flywheel.cli import main

    for rule, said in (('{name: errors, metric: error_rate, window: 1 day, above: 0.1}', "'1 day'"),
                       ('{name: refusals, metric: refusal_rate, above: 3.0, relative_to: "7d"}', "'7d'")):
        (tmp_path / "flywheel.yaml").write_text(f"monitor:\n  alerts:\n    - {rule}\n")
        res = CliRunner().invoke(main, ["--project", str(tmp_path), "monitor"])
        assert res.exit_code == 2
        assert "flywheel.yaml:3: " in res.output and said in res.output, res.output
        assert "Traceback" not in res.output

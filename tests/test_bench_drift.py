"""`flywheel bench drift` at a small size: every injected drift detected within one window, no false alarm,
and the JSON keys the README reports. Needs ../shared/data (skips without it)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import flywheel.cli.bench  # noqa: F401
from flywheel.bench import data_root
from flywheel.bench.drift import DRIFTS, injection_plan, run, score
from flywheel.cli import main


def _data() -> None:
    root = data_root(None)
    if root is None or not all((root / d).is_dir() for d in ("askfsdl-scope", "mrpc", "cmrc2018-dev")):
        pytest.skip("benchmark data (../shared/data) not present")


def test_plan_and_scoring() -> None:
    plan = injection_plan(50)
    assert list(plan) == list(DRIFTS)
    assert all(b - a == 3 for a, b in plan.values())
    alarms = [False] * 50
    a, _ = plan["topic"]
    alarms[a + 1] = True  # one window late: still detected
    alarms[0] = True  # outside every injection: a false alarm
    got = score(alarms, plan)
    assert got["detected"] == 1 and got["false_alarms"] == 1 and got["mean_delay_windows"] == 1.0
    assert "mean_delay_windows_reason" not in got


def test_an_undefined_mean_delay_is_null_with_a_reason() -> None:
    missed = score([False] * 6, {"topic": (2, 5)})
    assert missed["mean_delay_windows"] is None and "no injected drift" in missed["mean_delay_windows_reason"]
    assert score([False] * 6, {})["mean_delay_windows_reason"] == "nothing injected"


def test_every_injected_drift_is_detected_within_one_window() -> None:
    _data()
    out = run(windows=24, per_window=100, reference_windows=4, evidently=False, embed=False)
    assert out["injected"] == 5
    assert out["detected"] == 5, out
    assert out["false_alarms"] <= 1, out
    assert all(d is not None and d <= 1 for d in out["delays"].values())
    assert out["alert_kinds"]["json"] and any(k == "psi:output_format" for k in out["alert_kinds"]["json"])
    assert "psi:refused" in out["alert_kinds"]["refusal"]
    assert "psi:input_language" in out["alert_kinds"]["language"]


def test_cli_prints_the_json_keys() -> None:
    _data()
    res = CliRunner().invoke(main, ["bench", "drift", "--windows", "6", "--per-window", "30",
                                    "--reference-windows", "2", "--no-evidently", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert set(doc) >= {"detected", "injected", "false_alarms", "windows", "mean_delay_windows",
                        "seconds_per_10k_traces"}

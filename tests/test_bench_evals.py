"""`flywheel bench evals`: a run stopped mid-way (Ctrl-C, `kill`) stops the measured command too."""

from __future__ import annotations

import os
import sys

import pytest

from flywheel.bench import evals


def test_an_interrupted_measurement_stops_the_measured_process(tmp_path, monkeypatch):
    started: list[int] = []

    def interrupted_wait4(pid: int, options: int):
        started.append(pid)
        raise KeyboardInterrupt

    monkeypatch.setattr(evals.os, "wait4", interrupted_wait4)
    with pytest.raises(KeyboardInterrupt):
        evals.measure([sys.executable, "-c", "import time; time.sleep(120)"], tmp_path, "slow")
    assert started
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left running
        os.kill(started[0], 0)

"""`python -m flywheel.testing.tiny_model DIR` prints the folder and nothing else: no transformers progress bar,
and a folder that already holds a model is one `error:` line (exit 2), not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    env.pop("TRANSFORMERS_VERBOSITY", None)
    return subprocess.run([sys.executable, "-m", "flywheel.testing.tiny_model", *args], check=False,
                          capture_output=True, text=True, env=env, timeout=600)


def test_module_prints_only_the_folder(tmp_path):
    out = tmp_path / "tiny"
    run = _run(str(out))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(out)
    assert "Writing model shards" not in run.stderr and "it/s" not in run.stderr, run.stderr
    assert (out / "config.json").is_file()

    again = _run(str(out))  # the folder holds a model now
    assert again.returncode == 2
    assert again.stderr.startswith("error: ") and "already holds a model" in again.stderr
    assert "Traceback" not in again.stderr

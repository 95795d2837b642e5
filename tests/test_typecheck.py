"""The type checker over src/flywheel ([tool.mypy] in pyproject.toml) reports no errors."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import need

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_mypy_reports_no_errors() -> None:
    need(importlib.util.find_spec("mypy") is not None, "mypy is not installed (pip install -e '.[dev]')")
    out = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary"], cwd=ROOT, capture_output=True,
                         text=True, check=False)
    errors = [line for line in out.stdout.splitlines() if ": error:" in line]
    assert out.returncode == 0 and not errors, "\n".join(errors[:40]) or out.stderr[-2000:]

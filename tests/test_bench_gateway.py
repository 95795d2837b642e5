"""`flywheel bench gateway --json`: every figure the README quotes is in the JSON, or null with a
`<field>_reason` when it was not measured (LiteLLM not installed, --fault-calls 0)."""

from __future__ import annotations

import json
import sys

from click.testing import CliRunner

from flywheel.cli import main


def test_gateway_fields_not_measured_are_null_with_a_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "litellm", None)  # the peer not installed
    result = CliRunner().invoke(main, ["bench", "gateway", "--calls", "5", "--warmup", "1", "--fault-calls", "0",
                                       "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["litellm"]["status"] == "missing"
    for key in ("litellm_p50_ms", "litellm_overhead_p50_ms", "litellm_overhead_p99_ms", "fault_failed_calls",
                "fault_retried_calls", "fault_fallback_calls", "fault_p50_ms", "fault_p99_ms"):
        assert out[key] is None and out[f"{key}_reason"], key
    assert out["gateway_p50_ms"] > 0 and out["gateway_own_p50_ms"] > 0

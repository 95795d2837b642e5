"""A workflow run killed mid-way (`kill -9`, a crash) never ends its root span, so its trace has no trace row and
its root's `flywheel.app` is never stored: `flywheel traces --app NAME` must still list it (status incomplete),
from the spans that did end — every span of a run carries the app — or, for spans stored before they did, from
the run's record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from click.testing import CliRunner
from workflows_support import gateway

from flywheel.cli import main
from flywheel.store import Store
from flywheel.store.schema import spans as spans_t
from flywheel.tracing import list_traces
from flywheel.workflows import Workflow, WorkflowServices, step
from flywheel.workflows.records import RunRecords

STEPS = '''
import os
import signal


def fetch(topic):
    return f"notes about {topic}"


def die(fetch):
    from flywheel.tracing import tracer

    tracer.flush()  # what a kill after a while finds: the finished steps' spans are in the store
    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: the root span never ends
'''

WORKFLOW = """
name: nightly-digest
inputs: [topic]
steps:
  - id: fetch
    python: killed_steps:fetch
  - id: die
    python: killed_steps:die
"""


def _traces(root: Path, *args: str) -> list[dict]:
    out = CliRunner().invoke(main, ["--project", str(root), "traces", *args, "--json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout[out.stdout.index("["):])


def _run_digest(root: Path, steps: str) -> subprocess.CompletedProcess[str]:
    """`flywheel workflow run` of the digest workflow in a child process, its python steps from `steps`."""
    (root / "killed_steps.py").write_text(textwrap.dedent(steps), encoding="utf-8")
    (root / "workflows").mkdir()
    (root / "workflows" / "digest.yaml").write_text(WORKFLOW, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "flywheel", "--project", str(root), "workflow", "run",
                           "workflows/digest.yaml", "--input", "topic=tides"], cwd=root, capture_output=True,
                          text=True, timeout=120, check=False, env=env)


def test_a_run_killed_mid_way_is_listed_by_its_app(tmp_path):
    child = _run_digest(tmp_path, STEPS)
    assert child.returncode == -9, child.stderr[-2000:]

    found = _traces(tmp_path, "--app", "nightly-digest")
    assert len(found) == 1, found
    assert found[0]["status"] == "incomplete" and found[0]["app"] == "nightly-digest"
    assert _traces(tmp_path, "--app", "another-app") == []
    db = next((tmp_path / ".flywheel").glob("*.db"))
    with Store.open(f"sqlite:///{db}") as store:
        runs = RunRecords(store).recent("nightly-digest")
        rows = list_traces(store, app="nightly-digest")
    assert [r["trace_id"] for r in rows] == [found[0]["trace_id"]] == [runs[0]["trace_id"]]


def test_every_span_of_a_run_names_the_app_and_tenant(spans, llm):
    """Steps, map items, tools and model calls: whichever ended before a kill makes the trace findable."""
    from flywheel.workflows import map_step, prompt_step, register_tool, tool_step

    llm.add(r".*", "ok")
    register_tool("lookup", lambda city: {"city": city}, replace=True,
                  schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})

    @step
    def items() -> list[str]:
        return ["a", "b"]

    wf = Workflow(name="fan-out", steps=[
        items, map_step("each", "{{steps.items.output}}", "Say {{item}}"), prompt_step("sum", "Sum up"),
        tool_step("look", "lookup", args={"city": "Paris"})])
    result = wf.run({}, services=WorkflowServices(gateway=gateway(llm), tenant="acme"))
    assert result.status == "done"
    mine = [s for s in spans if s.trace_id == result.trace_id]
    kinds = {s.name.split(" ")[0].split(".")[0] for s in mine}
    assert {"workflow", "step", "map", "tool", "gateway"} <= kinds, kinds
    # (the gateway's span of each provider attempt, `chat MODEL`, ends inside its `gateway.chat`, which names it)
    unnamed = [s.name for s in mine if not s.name.startswith("chat ") and (
        s.attributes.get("flywheel.app") != "fan-out" or s.attributes.get("flywheel.tenant") != "acme")]
    assert unnamed == []


def test_spans_stored_before_they_named_the_app_are_found_by_the_run(store):
    """A run killed before this fix: its step spans carry the run id only; the run's record names the workflow."""
    from flywheel.tracing.store_sink import mark_open, span_row
    from flywheel.tracing.tracer import make_span

    RunRecords(store).start("run-old", "legacy-flow", "v1", None, {"topic": "tides"}, "acme")
    RunRecords(store).set_trace("run-old", "ab" * 16)
    old = make_span(span_id="cd" * 8, trace_id="ab" * 16, parent_id="ef" * 8, name="step fetch", kind="other",
                    start_ns=1_790_000_000_000_000_000, end_ns=1_790_000_001_000_000_000, inputs="x", outputs="y",
                    output_state="ok", error=None,
                    attributes={"flywheel.step.id": "fetch", "flywheel.workflow.run_id": "run-old"})
    with store.begin() as conn:
        conn.execute(spans_t.insert(), [span_row(old)])
        mark_open(conn, [("ab" * 16, 1_790_000_000.0)])  # as migration 0015 marks the spans stored before it
    rows = list_traces(store, app="legacy-flow")
    assert [(r["trace_id"], r["status"], r["tenant"]) for r in rows] == [("ab" * 16, "incomplete", "acme")]
    assert list_traces(store, app="other") == []


TERMINATED = STEPS.replace("os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: the root span never ends",
                           "os.kill(os.getpid(), signal.SIGTERM)  # `kill PID`, `timeout`, a process manager")


def test_a_plain_kill_stops_a_run_like_ctrl_c(tmp_path):
    """SIGTERM is how process managers, `timeout` and CI runners stop a job: the run stops as on Ctrl-C — its
    finished steps stored, the resume command printed, its trace ended with an error (not left incomplete)."""
    child = _run_digest(tmp_path, TERMINATED)
    assert child.returncode == 130, child.stderr[-2000:]
    assert "interrupted at step 'die'" in child.stderr and "--resume" in child.stderr
    assert "Traceback" not in child.stderr
    found = _traces(tmp_path, "--app", "nightly-digest")
    assert [t["status"] for t in found] == ["error"], found

"""`flywheel judge versions` names the review queue a version was calibrated on by its name, not its id."""

from __future__ import annotations

import json

from click.testing import CliRunner

import flywheel.cli.judge  # noqa: F401 - registers `flywheel judge`
from flywheel.apps.runtime import Runtime
from flywheel.cli import main
from flywheel.config import Project
from flywheel.evals.calibration_store import judge_key, save_calibration
from flywheel.feedback import queues

CRITERION = "The answer cites a source."


def _calibration(store, queue_id: str) -> None:
    save_calibration(store, judge_key=judge_key(CRITERION), examples=[], check_name=f"judge:{CRITERION}",
                     base_criterion=CRITERION, criterion=CRITERION, prompt=CRITERION, judge_model="judge",
                     queue_id=queue_id, seed=0, n=10, n_heldout=5, kappa_before=0.2, kappa_after=0.8,
                     adopted=True, metrics={})


def test_versions_show_the_queue_name_and_json_keeps_the_id(tmp_path):
    (tmp_path / "flywheel.yaml").write_text("models:\n  default: {provider: extractive}\n", encoding="utf-8")
    project = Project.load(tmp_path)
    with Runtime(project) as rt:
        tid = rt.app().run("hello").trace_id
    with Runtime(project, tracing=False) as rt:
        queue = queues.create_queue(rt.store, "daily-2026-12-01", kind="binary", overlap=1, trace_ids=[tid])
        _calibration(rt.store, queue.id)
        _calibration(rt.store, "0123456789ab")  # a queue deleted since: its id is all there is
    assert queue.id != queue.name
    run = CliRunner().invoke(main, ["--project", str(tmp_path), "judge", "versions", f"judge:{CRITERION}"])
    assert run.exit_code == 0, run.output
    first, second = run.output.splitlines()
    assert "queue daily-2026-12-01," in first and queue.id not in first
    assert "queue 0123456789ab," in second
    rows = json.loads(CliRunner().invoke(main, ["--project", str(tmp_path), "judge", "versions",
                                                f"judge:{CRITERION}", "--json"]).output)
    assert [(r["queue"], r["queue_id"]) for r in rows] == [("daily-2026-12-01", queue.id),
                                                           ("0123456789ab", "0123456789ab")]

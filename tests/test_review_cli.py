"""`flywheel review`: sample → label (script form and the keyboard UI fed from stdin) → status → agreement, with
exit 2 and nothing written for bad input."""

from __future__ import annotations

import json
import re
import shlex
import time

import pytest
from click.testing import CliRunner
from review_support import add_traces

import flywheel.cli.review  # noqa: F401 - registers `review` until the integrator adds it to COMMANDS
from flywheel.cli import main
from flywheel.cli.review import parse_when
from flywheel.config import Project
from flywheel.feedback import queues
from flywheel.store import Store


@pytest.fixture
def proj(tmp_path):
    with Store.open(Project(tmp_path).store_url) as store:
        ids = add_traces(store, [{"input": f"How do I pin version {i}?", "output": f"Answer {i}",
                                  "system": "You answer from sources."} for i in range(6)])
        add_traces(store, [{"input": "an old one", "started_at": time.time() - 5 * 86_400}])
    return tmp_path, ids


def run(path, *args, input: str | None = None, env: dict | None = None):
    return CliRunner().invoke(main, ["--project", str(path), *args], input=input, env=env)


def _labels(path):
    with Store.open(Project(path).store_url) as store:
        return queues.labels(store)


def test_sample_json_then_label_status_and_agreement(proj):
    path, ids = proj
    made = run(path, "review", "sample", "--daily", "10", "--seed", "4", "--overlap", "2", "--name", "d1", "--json")
    assert made.exit_code == 0, made.output
    queue = json.loads(made.output)
    assert queue["name"] == "d1" and queue["seed"] == 4 and queue["overlap"] == 2
    items = queue["items"]
    assert len(items) == 6 and {i["trace_id"] for i in items} == set(ids)  # the 5-day-old trace is outside --daily
    assert all(i["id"] and i["prompt"][0]["content"] == "You answer from sources." for i in items)
    for n, item in enumerate(items):
        for who, verdict in (("ana", "fail" if n < 3 else "pass"), ("bob", "fail" if n < 2 else "pass")):
            done = run(path, "review", "label", item["id"], "--annotator", who, "--verdict", verdict,
                       "--reason", "checked")
            assert done.exit_code == 0, done.output
    again = run(path, "review", "label", items[0]["id"], "--annotator", "ana", "--verdict", "pass")
    assert again.exit_code == 2 and "already labelled" in again.output
    undo = re.search(r"`flywheel (review undo [^`]+)`", again.output)  # the hint's command runs as printed
    assert undo is not None and run(path, *shlex.split(undo.group(1))).exit_code == 0
    relabel = run(path, "review", "label", items[0]["id"], "--annotator", "ana", "--verdict", "fail", "--reason", "x")
    assert relabel.exit_code == 0, relabel.output
    third = run(path, "review", "label", items[0]["id"], "--annotator", "cy", "--verdict", "pass")
    assert third.exit_code == 2 and "already has its 2 label" in third.output
    status = json.loads(run(path, "review", "status", "--queue", "d1", "--json").output)
    assert status["annotators"] == {"ana": 6, "bob": 6} and status["complete"] == 6
    table = run(path, "review", "status")
    assert table.exit_code == 0 and "d1" in table.output and "ana 6" in table.output
    report = json.loads(run(path, "review", "agreement", "--queue", "d1", "--json").output)
    assert report["n_items"] == 6 and report["pairs"][0]["annotators"] == ["ana", "bob"]
    assert report["pairs"][0]["n"] == 6 and len(report["disagreements"]) == 1
    assert report["disagreements"][0]["item_id"] == items[2]["id"]
    shown = run(path, "review", "agreement", "--queue", "d1")
    assert shown.exit_code == 0 and "Cohen" in shown.output and items[2]["id"] in shown.output


def test_bad_input_exits_2_and_writes_nothing(proj):
    path, _ = proj
    empty = run(path, "review", "sample", "--since", "2099-01-01")
    assert empty.exit_code == 2 and "nothing to review" in empty.output
    bad_time = run(path, "review", "sample", "--since", "yesterday-ish")
    assert bad_time.exit_code == 2 and "cannot read --since" in bad_time.output
    strategy = run(path, "review", "sample", "--strategy", "randm")
    assert strategy.exit_code == 2 and "did you mean 'random'" in strategy.output
    assert run(path, "review", "status", "--json").output.strip().startswith('{\n  "queues": []')
    made = json.loads(run(path, "review", "sample", "-n", "2", "--seed", "1", "--json").output)
    item = made["items"][0]["id"]
    outside = run(path, "review", "label", item, "--annotator", "ana", "--verdict", "tie")
    assert outside.exit_code == 2 and "pass, fail" in outside.output
    unknown = run(path, "review", "label", "feedbeef", "--annotator", "ana", "--verdict", "pass")
    assert unknown.exit_code == 2 and "no review item 'feedbeef'" in unknown.output
    nobody = run(path, "review", "label", item, "--verdict", "pass", env={"FLYWHEEL_ANNOTATOR": ""})
    assert nobody.exit_code == 2 and "--annotator" in nobody.output
    missing = run(path, "review", "status", "--queue", "nope")
    assert missing.exit_code == 2 and "no review queue 'nope'" in missing.output
    assert _labels(path) == []


def test_keyboard_ui_from_stdin(proj):
    path, _ = proj
    made = json.loads(run(path, "review", "sample", "-n", "4", "--seed", "2", "--overlap", "1", "--name", "kb",
                          "--json").output)
    first, second, third, fourth = (i["id"] for i in made["items"])
    keys = "p\nf too vague\nu\ne Set version: on the alias.\nf wrong version\ns\nx\nq\n"  # one action a line
    out = run(path, "review", "--queue", "kb", input=keys, env={"FLYWHEEL_ANNOTATOR": "ana"})
    assert out.exit_code == 0, out.output
    assert "final prompt" in out.output and "You answer from sources." in out.output
    assert "How do I pin version" in out.output and "retrieved sources" in out.output
    assert "[p] pass  [f] fail" in out.output and "unknown key 'x'" in out.output
    got = {lb.item_id: lb for lb in _labels(path)}
    assert set(got) == {first, second}  # third was skipped, then quit on the fourth
    assert got[first].verdict == "pass"
    assert got[second].verdict == "fail" and got[second].reason == "wrong version"
    assert got[second].correction == "Set version: on the alias."
    resume = re.search(r"`flywheel (review [^`]+)`\s+resumes", out.output)  # the printed command, run as printed
    assert resume is not None, out.output[-600:]
    assert shlex.split(resume.group(1)) == ["review", "--queue", "kb", "--annotator", "ana"]
    rest = run(path, *shlex.split(resume.group(1)), input="p\np\n")
    assert rest.exit_code == 0 and "nothing left for ana" in rest.output
    assert {lb.item_id for lb in _labels(path)} == {first, second, third, fourth}
    nobody = run(path, "review", env={"FLYWHEEL_ANNOTATOR": ""})
    assert nobody.exit_code == 2 and "annotator" in nobody.output


def test_pairwise_keys(tmp_path):
    with Store.open(Project(tmp_path).store_url) as store:
        add_traces(store, [{"input": "Same question?", "output": "Short.", "model": "m1"},
                           {"input": "Same question?", "output": "Longer answer.", "model": "m2"}])
    made = json.loads(run(tmp_path, "review", "sample", "--kind", "pairwise", "--overlap", "1", "--json").output)
    assert made["kind"] == "pairwise" and len(made["items"]) == 1
    out = run(tmp_path, "review", "--annotator", "ana", input="p\nt\n")
    assert out.exit_code == 0 and "unknown key 'p'" in out.output and "[a] a  [b] b  [t] tie" in out.output
    assert [lb.verdict for lb in _labels(tmp_path)] == ["tie"]
    empty = run(tmp_path, "review", "sample", "--kind", "pairwise")
    assert empty.exit_code == 2 and "pairs of traces" in empty.output


def test_parse_when():
    now = 1_800_000_000.0
    assert parse_when("24h", "--since", now) == now - 86_400
    assert parse_when("7d", "--since", now) == now - 7 * 86_400
    assert parse_when("1700000000", "--since", now) == 1_700_000_000.0
    assert parse_when("2026-06-01", "--since", now) == 1_780_272_000.0
    assert parse_when("2026-06-01T08:00:00+08:00", "--since", now) == 1_780_272_000.0
    assert parse_when(None, "--since", now) is None

"""`flywheel feedback TRACE_ID …`, the callable `flywheel.feedback(...)` API and the implicit-signal helpers."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from review_support import add_traces

import flywheel.cli.feedback  # noqa: F401 - registers `feedback` until the integrator adds it to COMMANDS
from flywheel import feedback
from flywheel.cli import main
from flywheel.config import Project
from flywheel.feedback.implicit import (
    edit_distance,
    edited_event,
    normalized_edit_distance,
    regenerations,
    session_regenerations,
)
from flywheel.store import Store


@pytest.fixture
def proj(tmp_path):
    with Store.open(Project(tmp_path).store_url) as store:
        [tid] = add_traces(store, [{"input": "How do I pin a version?", "tenant": "acme"}])
    return tmp_path, tid


def run(path, *args):
    return CliRunner().invoke(main, ["--project", str(path), *args])


def _events(path, tid):
    with Store.open(Project(path).store_url) as store:
        return feedback.for_trace(store, tid)


def test_feedback_cli_records_all_events_or_none(proj):
    path, tid = proj
    out = run(path, "feedback", tid[:10], "--thumbs", "down", "--comment", "wrong version",
              "--correction", "Set version: on the alias.", "--category", "outdated", "--json")
    assert out.exit_code == 0, out.output
    shown = json.loads(out.output)
    assert shown["trace_id"] == tid and [e["name"] for e in shown["events"]] == ["thumbs", "correction", "category"]
    stored = _events(path, tid)
    assert [(e.name, e.value, e.comment, e.tenant) for e in stored] == [
        ("thumbs", 0, "wrong version", "acme"), ("correction", "Set version: on the alias.", None, "acme"),
        ("category", "outdated", None, "acme")]
    plain = run(path, "feedback", tid, "--comment", "token sk-proj-abcdefghijklmnopqrstuvwxyz123456 leaked")
    assert plain.exit_code == 0 and f"comment on trace {tid}" in plain.output
    assert "sk-proj-abcdefghijklmnopqrstuvwxyz123456" not in (_events(path, tid)[-1].comment or "")
    before = len(_events(path, tid))
    for args, message in ((["--score", "1.5", "--thumbs", "up"], "1.5 is not in the range 0<=x<=1"),
                          ([], "nothing to record"),
                          (["--category", "x" * 101], "1 to 100 characters")):
        bad = run(path, "feedback", tid, *args)
        assert bad.exit_code == 2 and message in bad.output, bad.output
        assert "flywheel.feedback.events" not in bad.output  # the option is named, not the library
    unknown = run(path, "feedback", "ab" * 16, "--thumbs", "up")
    assert unknown.exit_code == 2 and "no trace" in unknown.output
    assert len(_events(path, tid)) == before  # the thumbs of the bad --score call was not written either


def test_flywheel_feedback_is_callable(proj):
    path, tid = proj
    event = feedback(tid, "thumbs", "down", comment="too vague", project=path)
    assert event.id and event.value == 0 and event.tenant == "acme"
    feedback.send(tid, "score", 0.25, project=str(path), actor="ci")
    from flywheel.feedback import record  # the module API keeps working

    assert callable(record)
    assert [(e.name, e.value) for e in _events(path, tid)] == [("thumbs", 0), ("score", 0.25)]


def test_edit_distance_is_character_level_and_cjk_safe():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == edit_distance("abc", "") == 3
    assert edit_distance("答案是二", "答案是三") == 1
    assert edit_distance("café", "cafe\u0301") == 0  # the same text, composed or not
    assert edit_distance("把版本固定在别名上", "在别名上把版本固定") == 8
    assert normalized_edit_distance("答案是二", "答案是三") == 0.25
    assert normalized_edit_distance("", "") == 0.0
    assert edited_event("the answer", "the answers")["edit_distance"] == 1


def test_regenerations_per_session(tmp_path):
    events = [{"name": "regenerated", "session_id": "s1"}, {"name": "regenerated", "session_id": "s1"},
              {"name": "copied", "session_id": "s1"}, {"name": "regenerated", "session_id": "s2"},
              {"name": "regenerated"}]
    assert regenerations(events) == {"s1": 2, "s2": 1, "": 1}
    with Store.open(f"sqlite:///{tmp_path / 'f.db'}") as store:
        a, b = add_traces(store, [{"input": "x"}, {"input": "y"}])
        traces = store.table("traces")
        with store.begin() as conn:
            conn.execute(traces.update().where(traces.c.trace_id == a).values(session_id="chat-1"))
        for tid in (a, a, b):
            feedback.record(store, tid, "regenerated")
        assert session_regenerations(store) == {"chat-1": 2, "": 1}

"""Run states: a run a check stopped (or a step refused, or that finished) is final and not resumable; its trace
is not a success; a killed run's trace shows the workflow's input; one run is run by one process at a time; a
resumed run does not reuse outputs that an edited prompt file, an edited python step or changed inputs made
stale."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from workflows_support import chat_requests, gateway, last_user

import flywheel.cli.workflow  # noqa: F401 - registers `flywheel workflow`
from flywheel.cli import main
from flywheel.errors import UserError
from flywheel.workflows import Workflow, WorkflowServices, load_workflow, step
from flywheel.workflows.steps import StepRefused

TESTS = Path(__file__).parent

STEPS_PY = """
from flywheel.workflows.steps import StepRefused

def draft(topic):
    return f"notes on {topic}"

def veto(draft):
    raise StepRefused("veto", "not allowed to write about that")
"""


def project_with(tmp_path: Path, workflow: str, name: str = "wf.yaml") -> Path:
    sys.modules.pop("wfstates", None)  # each test's own copy of the module
    (tmp_path / "flywheel.yaml").write_text("models: {}\n", encoding="utf-8")
    (tmp_path / "wfstates.py").write_text(STEPS_PY, encoding="utf-8")
    path = tmp_path / name
    path.write_text(textwrap.dedent(workflow).lstrip(), encoding="utf-8")
    return path


STOPPING = """
    name: stopping
    inputs: [topic]
    steps:
      - id: draft
        python: wfstates:draft
      - id: cited
        check: {contains: "[1]"}
        input: "{{steps.draft.output}}"
        on_fail: stop
"""


def cli(tmp_path: Path, *args: str) -> object:
    return CliRunner().invoke(main, ["--project", str(tmp_path), *args])


def test_a_stopped_run_is_not_offered_resume_and_resuming_it_says_it_is_finished(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project_with(tmp_path, STOPPING)
    out = cli(tmp_path, "workflow", "run", "wf.yaml", "-i", "topic=tides", "--json")
    assert out.exit_code == 1
    run_id = json.loads(out.stdout)["run_id"]
    plain = cli(tmp_path, "workflow", "run", "wf.yaml", "-i", "topic=tides")
    assert plain.exit_code == 1 and "stopped at step 'cited'" in plain.output
    assert "--resume" not in plain.output  # was: "resume with `flywheel workflow run wf.yaml --resume …`"

    again = cli(tmp_path, "workflow", "run", "wf.yaml", "--resume", run_id)
    assert again.exit_code == 2, again.output  # was 1: replayed every step to the same stop
    first = again.output.splitlines()[0]
    assert f"workflow run '{run_id}' is stopped" in first and "check 'cited' failed" in first
    assert "start a new run instead: `flywheel workflow run wf.yaml --input topic=tides`" in first
    assert "Traceback" not in again.output

    listed = json.loads(cli(tmp_path, "workflow", "runs", "--workflow", "stopping", "--json").stdout)
    assert [r["status"] for r in listed] == ["stopped", "stopped"] and run_id in {r["run_id"] for r in listed}
    latest = cli(tmp_path, "workflow", "run", "wf.yaml", "--resume", "latest")
    assert latest.exit_code == 2 and "no unfinished run" in latest.output  # a stopped run is not unfinished


def test_show_and_resume_take_a_unique_prefix_of_the_run_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project_with(tmp_path, STOPPING)
    run_id = json.loads(cli(tmp_path, "workflow", "run", "wf.yaml", "-i", "topic=tides", "--json").stdout)["run_id"]
    shown = cli(tmp_path, "workflow", "show", run_id[:8], "--json")
    assert shown.exit_code == 0, shown.output  # was: "no workflow run '…' in the store"
    assert json.loads(shown.stdout)["run_id"] == run_id and json.loads(shown.stdout)["steps"]
    again = cli(tmp_path, "workflow", "run", "wf.yaml", "--resume", run_id[:8])
    assert again.exit_code == 2 and f"workflow run '{run_id}' is stopped" in again.output  # found by its prefix
    assert cli(tmp_path, "workflow", "show", "zzzzzzzz").exit_code == 2


def test_a_refused_or_finished_run_cannot_be_resumed_from_python(store):
    services = WorkflowServices(store=store)

    @step
    def draft(topic):
        return f"notes on {topic}"

    @step
    def veto(draft):
        raise StepRefused("veto", "not allowed")

    refused = Workflow(steps=[draft, veto], name="vetoed", inputs=["topic"])
    assert refused.run({"topic": "x"}, services=services, run_id="r-refused").status == "refused"
    with pytest.raises(UserError, match=r"'r-refused' is refused \(not allowed\): a refused run is finished"):
        refused.run(services=services, run_id="r-refused", resume=True)

    done = Workflow(steps=[draft], name="fine", inputs=["topic"])
    assert done.run({"topic": "x"}, services=services, run_id="r-done").status == "done"
    with pytest.raises(UserError, match="'r-done' is done: it finished, there is nothing to resume"):
        done.run(services=services, run_id="r-done", resume=True)


def test_stopped_and_refused_runs_are_not_successes_in_the_traces(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project_with(tmp_path, STOPPING)
    project_with(
        tmp_path,
        """
        name: vetoed
        inputs: [topic]
        steps:
          - id: draft
            python: wfstates:draft
          - id: veto
            python: wfstates:veto
    """,
        name="veto.yaml",
    )
    assert cli(tmp_path, "workflow", "run", "wf.yaml", "-i", "topic=tides").exit_code == 1
    assert cli(tmp_path, "workflow", "run", "veto.yaml", "-i", "topic=tides").exit_code == 1
    rows = {r["name"]: r for r in json.loads(cli(tmp_path, "traces", "--json").stdout)}
    stopped, refused = rows["workflow stopping"], rows["workflow vetoed"]
    assert stopped["status"] == "error"  # was "ok": counted as a success by the dashboard and the monitors
    assert stopped["error"] == "workflow stopped at step 'cited': check 'cited' failed: did not find '[1]'"
    assert refused["status"] == "error" and "workflow refused at step 'veto': not allowed" in refused["error"]
    only_errors = json.loads(cli(tmp_path, "traces", "--status", "error", "--json").stdout)
    assert {r["name"] for r in only_errors} == {"workflow stopping", "workflow vetoed"}

    tree = json.loads(cli(tmp_path, "traces", "show", stopped["trace_id"], "--json").stdout)
    root = tree["spans"][0]
    assert root["attributes"]["flywheel.workflow.reason"] == "check 'cited' failed: did not find '[1]'"
    assert root["attributes"]["flywheel.workflow.stopped_by"] == "cited"


def test_a_killed_runs_trace_shows_the_workflows_input_not_a_steps(tmp_path):
    (tmp_path / "flywheel.yaml").write_text("models: {}\n", encoding="utf-8")
    (tmp_path / ".flywheel").mkdir()
    url = f"sqlite:///{tmp_path / '.flywheel' / 'flywheel.db'}"
    env = {
        **os.environ,
        "WF_COUNTS": str(tmp_path / "counts.json"),
        "WF_KILL": "1",
        "WF_TRACE": "1",
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    code = "import workflows_support as w; w.run_child()"
    child = subprocess.run(
        [sys.executable, "-c", code, url, "run-killed"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -9, child.stderr
    rows = json.loads(cli(tmp_path, "traces", "--json").stdout)
    assert len(rows) == 1 and rows[0]["status"] == "incomplete"
    assert rows[0]["input_preview"] == '{"topic":"tides"}'  # was the step's inputs: {"kind": "python", …}
    assert rows[0]["name"] == "workflow killable"
    _the_dashboard_names_the_killed_run_too(tmp_path)

    shown = cli(tmp_path, "workflow", "show", "run-killed")
    assert "its process is gone (killed or crashed)" in shown.output
    assert "resume with" in shown.output
    listed = cli(tmp_path, "workflow", "runs").output.splitlines()
    assert listed[1].split()[0] == "run-killed" and " killed " in listed[1]


def _the_dashboard_names_the_killed_run_too(root):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from flywheel import web
    from flywheel.config import Project
    from flywheel.server import create_app

    app = create_app(Project.load(root))
    web.mount(app, app.state.flywheel)
    app.state.flywheel.admin_key = "admin-key-for-this-test"
    with TestClient(app) as client:
        got = client.get("/ui/traces.json", headers={"Authorization": "Bearer admin-key-for-this-test"})
    assert got.status_code == 200, got.text
    (row,) = got.json()["rows"]
    assert row["name"] == "workflow killable" and row["input_preview"] == '{"topic":"tides"}'


def test_two_processes_cannot_run_one_run_at_once(store):
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    @step
    def slow(topic):
        calls.append(topic)
        started.set()
        assert release.wait(timeout=60)
        return topic.upper()

    wf = Workflow(steps=[slow], name="held", inputs=["topic"])
    services = WorkflowServices(store=store)
    results: list = []
    first = threading.Thread(
        target=lambda: results.append(wf.run({"topic": "a"}, services=services, run_id="h-1"))
    )
    first.start()
    try:
        assert started.wait(timeout=60)
        with pytest.raises(UserError, match="'h-1' is being run by another process"):
            wf.run(services=services, run_id="h-1", resume=True)  # was: ran `slow` a second time
    finally:
        release.set()
        first.join(timeout=60)
    assert results[0].status == "done" and calls == ["a"]


def test_a_run_held_on_another_host_is_taken_over_only_once_it_is_stale(store):
    from sqlalchemy import update

    from flywheel.workflows.records import HOLDER, STALE_S

    @step
    def one(topic):
        raise RuntimeError("down")

    wf = Workflow(steps=[one], name="remote", inputs=["topic"])
    services = WorkflowServices(store=store)
    with pytest.raises(RuntimeError):
        wf.run({"topic": "a"}, services=services, run_id="rem-1")
    runs = store.table("workflow_runs")

    def held(age: float) -> None:
        with store.engine.begin() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.run_id == "rem-1")
                .values(
                    status="running",
                    reason=HOLDER + "elsewhere.example:4242:abcd",
                    updated_at=time.time() - age,
                )
            )

    held(5)
    with pytest.raises(UserError, match="process 4242 on elsewhere.example"):
        wf.run(services=services, run_id="rem-1", resume=True)
    held(STALE_S + 5)
    with pytest.raises(RuntimeError):  # taken over: the step ran (and failed) here
        wf.run(services=services, run_id="rem-1", resume=True)


PROMPT_WF = """
    name: prompted
    inputs: [text]
    steps:
      - id: split
        python: wfprompted:split
      - id: each
        map: "{{steps.split.output}}"
        prompt: prompts/each.yaml
        vars: {word: "{{item}}"}
      - id: all
        reduce: "{{steps.each.output}}"
        prompt: prompts/all.yaml
      - id: one
        prompt: prompts/one.yaml
        vars: {text: "{{inputs.text}}"}
      - id: gate
        python: wfprompted:gate
"""

PROMPTED_PY = """
import pathlib

def split(text):
    return text.split()

def gate(one, all):
    if pathlib.Path(__file__).with_name("down").exists():
        raise RuntimeError("the gate is down")
    return [one, all]
"""


def prompted(tmp_path: Path) -> Path:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "each.yaml").write_text(
        'name: each\ntemplate: "Echo {{word}}"\n', encoding="utf-8"
    )
    (tmp_path / "prompts" / "all.yaml").write_text(
        'name: all\ntemplate: "Join {{items}}"\n', encoding="utf-8"
    )
    (tmp_path / "prompts" / "one.yaml").write_text('name: one\ntemplate: "Say {{text}}"\n', encoding="utf-8")
    (tmp_path / "wfprompted.py").write_text(PROMPTED_PY, encoding="utf-8")
    sys.modules.pop("wfprompted", None)
    (tmp_path / "down").write_text("", encoding="utf-8")
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(PROMPT_WF).lstrip(), encoding="utf-8")
    return path


def test_a_resumed_run_asks_again_after_its_prompt_file_changed(tmp_path, llm, store):
    llm.add(r"^Echo", lambda body: last_user(body).upper())
    llm.add(r"^Join", lambda body: "joined: " + last_user(body))
    llm.add(r"^(Say|Shout)", lambda body: last_user(body))
    path = prompted(tmp_path)
    services = WorkflowServices(gateway=gateway(llm), store=store, root=tmp_path)
    with pytest.raises(RuntimeError, match="gate is down"):
        load_workflow(path, root=tmp_path).run({"text": "a b"}, services=services, run_id="p-1")
    assert "[1] ECHO A" in last_user(
        next(r for r in chat_requests(llm) if "Join" in last_user(r))
    )  # was "Join "
    (tmp_path / "prompts" / "one.yaml").write_text(
        'name: one\ntemplate: "Shout {{text}}"\n', encoding="utf-8"
    )
    (tmp_path / "down").unlink()
    before = len(chat_requests(llm))
    result = load_workflow(path, root=tmp_path).run(services=services, run_id="p-1", resume=True)
    assert result.outputs["one"] == "Shout a b"  # was "Say a b", reused from before the edit
    steps = {s.id: s.status for s in result.steps}
    assert steps["each"] == "reused" and steps["all"] == "reused" and steps["one"] == "done"
    assert len(chat_requests(llm)) == before + 1


def test_map_items_of_a_prompt_file_follow_their_items_on_resume(tmp_path, llm, store):
    llm.add(r"^Echo", lambda body: last_user(body).upper())
    llm.add(r"^Join", lambda body: "joined")
    llm.add(r"^Say", lambda body: last_user(body))
    path = prompted(tmp_path)
    services = WorkflowServices(gateway=gateway(llm), store=store, root=tmp_path)
    with pytest.raises(RuntimeError):
        load_workflow(path, root=tmp_path).run({"text": "a b"}, services=services, run_id="m-1")
    (tmp_path / "down").unlink()
    result = load_workflow(path, root=tmp_path).run(
        {"text": "c d"}, services=services, run_id="m-1", resume=True
    )
    assert result.outputs["each"] == [
        "ECHO C",
        "ECHO D",
    ]  # was ["ECHO A", "ECHO B"]: items keyed by the file name


def test_editing_a_python_steps_body_runs_it_again(tmp_path, store, monkeypatch):
    module = tmp_path / "wfedited.py"
    module.write_text(
        "def shout(text):\n    return text.upper()\n\ndef boom(shout):\n    raise RuntimeError('x')\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "wf.yaml").write_text(
        textwrap.dedent("""
        name: edited
        inputs: [text]
        steps:
          - id: shout
            python: wfedited:shout
          - id: boom
            python: wfedited:boom
    """).lstrip(),
        encoding="utf-8",
    )
    services = WorkflowServices(store=store)
    with pytest.raises(RuntimeError):
        load_workflow(tmp_path / "wf.yaml", root=tmp_path).run(
            {"text": "hi"}, services=services, run_id="e-1"
        )
    module.write_text(
        "def shout(text):\n    return text.upper() + '!'\n\ndef boom(shout):\n    return shout\n",
        encoding="utf-8",
    )
    importlib.reload(sys.modules["wfedited"])
    before = load_workflow(tmp_path / "wf.yaml", root=tmp_path)
    result = before.run(services=services, run_id="e-1", resume=True)
    assert result.output == "HI!"  # was "HI": the old code's stored output
    assert {s.id: s.status for s in result.steps}["shout"] == "done"
    sys.modules.pop("wfedited", None)


def test_resuming_after_the_workflow_changed_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = project_with(
        tmp_path,
        """
        name: vetoed
        inputs: [topic]
        steps:
          - id: draft
            python: wfstates:draft
          - id: boom
            python: wfstates:veto
    """,
    )
    (tmp_path / "wfstates.py").write_text(STEPS_PY + "\ndef boom(draft):\n    raise RuntimeError('down')\n")
    path.write_text(path.read_text().replace("wfstates:veto", "wfstates:boom"), encoding="utf-8")
    out = cli(tmp_path, "workflow", "run", "wf.yaml", "-i", "topic=tides")
    assert out.exit_code == 1 and "failed at step 'boom'" in out.output
    run_id = out.output.split("workflow run ")[1].split()[0]
    path.write_text(path.read_text().replace("wfstates:boom", "wfstates:draft"), encoding="utf-8")
    resumed = cli(tmp_path, "workflow", "run", "wf.yaml", "--resume", "latest")
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming run {run_id} (failed, " in resumed.output  # which run `latest` picked
    assert f"wf.yaml changed since run {run_id} started" in resumed.output
    assert "draft reused, boom ran" in resumed.output


@pytest.mark.postgres
def test_ctrl_c_on_postgres_is_not_hidden_by_the_store(pg_fresh_url):
    from flywheel.store import Store
    from flywheel.workflows.records import RunRecords

    @step
    def halt(topic):
        raise KeyboardInterrupt

    with Store.open(pg_fresh_url) as store:
        services = WorkflowServices(store=store)
        with pytest.raises(KeyboardInterrupt):
            Workflow(steps=[halt], name="pg-states", inputs=["topic"]).run(
                {"topic": "a"}, services=services, run_id="pg-int"
            )
        # was a DataError from storing the status (a 10-character column), raised instead of the KeyboardInterrupt
        assert RunRecords(store).require("pg-int")["status"] == "interrupted"


def test_a_sql_qa_refusal_is_an_apps_refusal_in_its_trace(tmp_path, llm, spans):
    import sqlite3

    from flywheel.workflows.sql_db import SqlDatabase
    from flywheel.workflows.sql_qa import SqlQAApp

    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT)")
    llm.add(r"DROP|did not pass", "```sql\nDROP TABLE orders;\n```")
    app = SqlQAApp(gateway=gateway(llm), database=SqlDatabase(str(path)), max_retries=1, name="shop")
    answer = app.run("Drop the orders table")
    assert answer.refused
    by_name = {s.name: s for s in spans}
    root, inner = by_name["shop"], by_name["workflow shop"]
    assert root.parent_id is None and inner.parent_id == root.span_id and answer.trace_id == root.trace_id
    assert root.error is None and root.attributes["flywheel.refused"] is True  # like every app's refusal: ok
    assert root.attributes["flywheel.refusal"] == "guard_blocked"
    assert inner.error is not None and inner.error.startswith("workflow stopped at step 'safe'")

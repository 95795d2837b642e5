"""Online evaluators: deterministic sampling, atomic claims (no trace scored twice, restarts resume), scores as
feedback with their cost, a judge that is down recorded as pending and retried, and no work in the request
path (checked with a real server: every score row is written after its response was received)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from monitor_support import load, record
from sqlalchemy import select

from flywheel.apps.runtime import Runtime
from flywheel.config import OnlineEvaluatorSpec, Project
from flywheel.errors import UserError
from flywheel.monitor.online import OnlineWorker, build_evaluators, pending_counts, sampled

JUDGE_YAML = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}", model: fake-model, max_retries: 0,
        price: {{input: 0.0, output: 125000.0}}}}
monitor:
  online:
    - {{check: judge, criterion: "The answer is polite.", model: gpt, sample: 1.0, name: polite}}
  interval_s: {interval}
"""

LOCAL_YAML = """
monitor:
  online:
    - {check: icontains, value: "settings", name: mentions_settings, apps: [support]}
    - {check: icontains, value: "password", sample: 0.5, name: half}
"""


def _project(tmp_path, text: str) -> Project:
    (tmp_path / "flywheel.yaml").write_text(text, encoding="utf-8")
    return Project.load(tmp_path)


def _feedback(store, name: str | None = None) -> list[dict]:
    table = store.table("feedback")
    q = select(table).order_by(table.c.id)
    if name:
        q = q.where(table.c.name == name)
    with store.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def test_sampling_is_deterministic_nested_and_close_to_the_rate():
    ids = [f"{i:032x}" for i in range(4000)]
    fifth = {t for t in ids if sampled(t, 0.2)}
    twentieth = {t for t in ids if sampled(t, 0.05)}
    assert twentieth <= fifth and {t for t in ids if sampled(t, 0.2)} == fifth
    assert 0.17 < len(fifth) / len(ids) < 0.23 and 0.03 < len(twentieth) / len(ids) < 0.07
    assert all(sampled(t, 1.0) for t in ids[:10])


def test_bad_specs_are_config_errors():
    with pytest.raises(UserError, match="no-such-check"):
        build_evaluators([OnlineEvaluatorSpec(check="no-such-check")])
    with pytest.raises(UserError, match="same name"):
        build_evaluators([OnlineEvaluatorSpec(check="icontains", value="a"),
                          OnlineEvaluatorSpec(check="icontains", value="b")])


def test_local_checks_claims_cursor_and_no_double_scoring(tmp_path, store_url):
    project = _project(tmp_path, f"store: {store_url}\n" + LOCAL_YAML)
    now = time.time()
    with Runtime(project, tracing=False) as rt:
        recs = [record(now - 300 + i, question=f"password question {i}",
                       answer="Open Settings." if i % 2 else "No idea.") for i in range(40)]
        recs.append(record(now - 100, app="other", question="password?", answer="Open Settings."))
        load(rt.store, tmp_path, recs)
        workers = [OnlineWorker(rt) for _ in range(3)]
        results = []
        threads = [threading.Thread(target=lambda w=w: results.append(w.run_once())) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rows = _feedback(rt.store, "mentions_settings")
        assert len(rows) == 40 and len({r["trace_id"] for r in rows}) == 40  # apps: [support] only, once each
        assert sum(r["value"]["passed"] for r in rows) == 20
        assert {r["source"] for r in rows} == {"check"} and rows[0]["actor"] == "online:mentions_settings"
        assert rows[0]["value"]["cost_usd"] == 0.0 and rows[0]["value"]["check"] == "icontains"
        half = _feedback(rt.store, "half")
        assert 0 < len(half) < 41 and len({r["trace_id"] for r in half}) == len(half)
        assert sum(r.scored for r in results) == 40 + len(half)
        # a restarted worker resumes from the cursor: nothing is scored again, new traces are
        again = OnlineWorker(rt).run_once()
        assert again.scored == 0
        load(rt.store, tmp_path, [record(time.time() - 1, question="password reset", answer="Settings page.")],
             name="new.jsonl")
        assert OnlineWorker(rt).run_once().by_evaluator["mentions_settings"] == 1
        assert pending_counts(rt.store)["mentions_settings"] == {"done": 41}


def test_backfill_since_scores_old_history(tmp_path):
    project = _project(tmp_path, LOCAL_YAML)
    with Runtime(project, tracing=False) as rt:
        old = time.time() - 5 * 86400
        load(rt.store, tmp_path, [record(old + i, answer="Open Settings.") for i in range(5)])
        assert OnlineWorker(rt).run_once().by_evaluator["mentions_settings"] == 0  # older than the cursor's reach
        assert OnlineWorker(rt).run_once(since=old - 1).by_evaluator["mentions_settings"] == 5


def test_judge_down_is_pending_then_retried_with_cost(tmp_path, llm):
    from conftest import FakeClock

    project = _project(tmp_path, JUDGE_YAML.format(base=llm.base_url, interval=30))
    llm.add(r"criterion", "The reply greets the user kindly.\nVerdict: PASS")
    clock = FakeClock()
    with Runtime(project) as rt:
        load(rt.store, tmp_path, [record(clock.now - 60, answer="Hello! Happy to help.")])
        worker = OnlineWorker(rt, clock=clock)
        llm.fail("server_error", times=None)
        first = worker.run_once()
        assert (first.scored, first.pending) == (0, 1)
        assert _feedback(rt.store, "polite") == []
        assert pending_counts(rt.store)["polite"] == {"pending": 1}
        assert worker.run_once().pending == 0  # not due yet: no hammering a down judge
        llm.clear_faults()
        clock.advance(120)  # past the backoff (interval 30 s × 2)
        second = worker.run_once()
        assert second.scored == 1
        row = _feedback(rt.store, "polite")[0]
        assert row["source"] == "judge" and row["value"]["passed"] is True
        assert row["value"]["cost_usd"] > 0 and second.cost_usd == row["value"]["cost_usd"]
        assert "greets the user" in row["comment"]
        assert pending_counts(rt.store)["polite"] == {"done": 1}


def test_no_work_in_the_request_path_with_a_live_server(tmp_path, llm):
    from server_support import LiveServer

    from flywheel.server import create_app

    project = _project(tmp_path, JUDGE_YAML.format(base=llm.base_url, interval=0.2))
    llm.add(r"criterion", "Polite enough.\nVerdict: PASS", latency=1.0)  # a slow judge
    server = LiveServer(create_app(project)).start()
    # what server/app.py's lifespan does when `server.online_evaluators` and `monitor.online` are set
    worker = OnlineWorker(server.state.runtime).start()
    try:
        received: dict[str, float] = {}
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in range(3):
                resp = client.post("/v1/chat/completions", json={
                    "model": "gpt", "messages": [{"role": "user", "content": f"hello {i}"}]})
                assert resp.status_code == 200
                received[resp.json()["flywheel"]["trace_id"]] = time.time()
        deadline = time.monotonic() + 60
        rows: list[dict] = []
        while time.monotonic() < deadline:  # readiness poll for the background worker
            rows = [r for r in _feedback(server.state.store, "polite") if r["trace_id"] in received]
            if len(rows) == len(received):
                break
            time.sleep(0.1)
        assert {r["trace_id"] for r in rows} == set(received)
        for r in rows:  # each score row was written after its response had reached the client
            assert r["created_at"] > received[r["trace_id"]]
            assert r["source"] == "judge" and r["value"]["passed"] is True
        judged = [q for q in llm.requests if "criterion" in str(q.get("messages"))]
        assert len(judged) == len(received)  # the judge's own traces were not judged in turn
    finally:
        worker.stop()
        server.stop()


def test_cli_monitor_run_once_json(tmp_path):
    import json

    from click.testing import CliRunner

    import flywheel.cli.monitor  # noqa: F401 - registers `flywheel monitor` until the integrator wires it
    from flywheel.cli import main

    project = _project(tmp_path, LOCAL_YAML)
    with Runtime(project, tracing=False) as rt:
        load(rt.store, tmp_path, [record(time.time() - 3 * 86400, answer="Open Settings.")])
    runner = CliRunner()
    out = runner.invoke(main, ["--project", str(tmp_path), "monitor", "run", "--once", "--since", "7d", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["by_evaluator"]["mentions_settings"] == 1 and data["claims"]["mentions_settings"] == {"done": 1}
    (tmp_path / "flywheel.yaml").write_text("models: {}\n", encoding="utf-8")
    none = runner.invoke(main, ["--project", str(tmp_path), "monitor", "run", "--once"])
    assert none.exit_code == 2 and "no online evaluators" in none.output

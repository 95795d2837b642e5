"""`flywheel route select|report|compare-shadow` end to end against a fake LLM with scripted quality per model."""
# ruff: noqa: F811 - the shared fixture imported from conftest is redefined as a parameter

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import server  # noqa: F401 - module-scoped fake LLM
from routes_support import write_project
from sqlalchemy import select

import flywheel.cli.route  # noqa: F401 - registers `flywheel route` until cli/__init__ lists it
from flywheel.apps.runtime import Runtime
from flywheel.cli import main
from flywheel.config import Project
from flywheel.feedback import record
from flywheel.gateway.routes import pick_arm
from flywheel.loop.routing import fisher_exact
from flywheel.types import ChatRequest

SUITE = """\
name: capitals
target: model:small
prompt: "Q: {{question}}"
threshold: 1.0
cases:
  - id: france
    vars: {question: "Capital of France?"}
    checks: [{contains: Paris}]
  - id: italy
    vars: {question: "Capital of Italy?"}
    checks: [{contains: Rome}]
"""


@pytest.fixture
def llm(server):
    server.reset()
    server.clear_faults()
    return server


def run(root: Path, *args: str):
    return CliRunner().invoke(main, ["--project", str(root), *args], catch_exceptions=False)


def suite(root: Path) -> Path:
    path = root / "evals" / "capitals.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SUITE, encoding="utf-8")
    return path


def test_select_picks_the_cheap_model_when_it_passes(tmp_path: Path, llm) -> None:
    llm.add(r"France", "Paris.")
    llm.add(r"Italy", "Rome.")
    write_project(tmp_path, llm)
    result = run(tmp_path, "route", "select", "--suite", str(suite(tmp_path)), "--models", "small,large",
                 "--write", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["chosen"] == "small" and data["written"] is True and data["route"] == "capitals"
    rows = {c["alias"]: c for c in data["candidates"]}
    assert rows["small"]["pass_rate"] == 1.0 and rows["large"]["pass_rate"] == 1.0
    assert rows["large"]["cost_usd"] > rows["small"]["cost_usd"] > 0
    assert rows["small"]["pass_rate_ci95"][1] == 1.0 and rows["small"]["pass_rate_ci95"][0] < 1.0
    assert any("fewer than 30" in w for w in data["warnings"])
    text = (tmp_path / "flywheel.yaml").read_text(encoding="utf-8")
    assert text.startswith("# project config\n") and "route select: suite capitals" in text
    assert Project.load(tmp_path).config.routes["capitals"].alias == "small"


def test_select_picks_the_strong_model_when_the_cheap_one_fails(tmp_path: Path, llm) -> None:
    llm.add(r"France", "London.", model="fake-small")
    llm.add(r"France", "Paris.", model="fake-large")
    llm.add(r"Italy", "Rome.")
    write_project(tmp_path, llm, """\
        # the A/B we are replacing
        capitals:
          split: {small: 50, large: 50}
          shadow: small   # keep watching the small one
        other: {alias: small}  # untouched
        """)
    before = (tmp_path / "flywheel.yaml").read_text(encoding="utf-8")
    table = run(tmp_path, "route", "select", "--suite", str(suite(tmp_path)), "--models", "small,large")
    assert table.exit_code == 0, table.output
    assert "selected: large" in table.stdout and "add --write" in table.stdout
    assert (tmp_path / "flywheel.yaml").read_text(encoding="utf-8") == before  # no --write, no change
    result = run(tmp_path, "route", "select", "--suite", str(suite(tmp_path)), "--models", "small,large",
                 "--write")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "flywheel.yaml").read_text(encoding="utf-8")
    assert "# the A/B we are replacing" in text and "other: {alias: small}  # untouched" in text
    assert "split" not in text
    routes = Project.load(tmp_path).config.routes
    assert routes["capitals"].alias == "large" and routes["capitals"].shadow == "small"
    assert routes["other"].alias == "small"


def test_select_with_nothing_passing_exits_1_and_writes_nothing(tmp_path: Path, llm) -> None:
    llm.add(r".", "I do not know.")
    write_project(tmp_path, llm)
    before = (tmp_path / "flywheel.yaml").read_text(encoding="utf-8")
    result = run(tmp_path, "route", "select", "--suite", str(suite(tmp_path)), "--models", "small,large",
                 "--write", "--min-pass", "0.5")
    assert result.exit_code == 1 and "no alias meets the bar" in result.stdout
    assert (tmp_path / "flywheel.yaml").read_text(encoding="utf-8") == before


def test_bad_routes_exit_2_with_file_and_line(tmp_path: Path, llm) -> None:
    write_project(tmp_path, llm)
    with (tmp_path / "flywheel.yaml").open("a", encoding="utf-8") as f:
        f.write("routes:\n  support:\n    split: {small: 90, large: -1}\n")
    result = run(tmp_path, "route", "report")
    assert result.exit_code == 2 and "flywheel.yaml:10" in result.stderr and "positive" in result.stderr
    assert "Traceback" not in result.output
    write_project(tmp_path, llm)
    assert run(tmp_path, "route", "select", "--suite", str(suite(tmp_path)), "--models", "small,gpt9").exit_code == 2


def test_fisher_exact_matches_known_values() -> None:
    assert fisher_exact(1, 9, 11, 3) == pytest.approx(0.002759, abs=1e-6)  # scipy.stats.fisher_exact docs
    assert fisher_exact(3, 1, 1, 3) == pytest.approx(0.485714, abs=1e-6)  # Fisher's tea tasting
    assert fisher_exact(0, 0, 5, 5) == 1.0


def test_report_numbers_match_hand_computed_values(tmp_path: Path, llm) -> None:
    llm.add(r".", "small answer", model="fake-small")
    llm.add(r".", "large answer", model="fake-large")
    project = write_project(tmp_path, llm, "ab: {split: {small: 50, large: 50}, sticky: user, shadow: large}\n",
                            extra=f"store: sqlite:///{tmp_path / 'fw.db'}\n")
    users = [f"user-{i}" for i in range(24)]
    arms = {u: pick_arm("ab", project.config.routes["ab"], u) for u in users}
    expected: dict[str, dict] = {a: {"requests": 0, "negative": 0, "cost": 0.0, "checks": 0, "passed": 0}
                                 for a in ("small", "large")}
    with Runtime(project) as rt:
        results = []
        for i, user in enumerate(users):
            res = rt.gateway.chat(ChatRequest.of(f"question {i}", model="ab", metadata={"user": user}))
            results.append(res)
            arm = arms[user]
            e = expected[arm]
            e["requests"] += 1
            e["cost"] += res.cost_usd
            assert res.text == f"{arm} answer"
        shadow_cost = sum(future.result(timeout=20).cost_usd for future in list(rt.gateway.router.futures))
        rt.store.flush()
        traces = rt.store.table("traces")
        with rt.store.connect() as conn:
            stored = dict(conn.execute(select(traces.c.trace_id, traces.c.cost_usd)).all())
        assert all(stored[r.trace_id] == pytest.approx(r.cost_usd) for r in results)  # no shadow cost in them
        for i, (user, res) in enumerate(zip(users, results, strict=True)):
            e = expected[arms[user]]
            if i % 3 == 0:
                record(rt.store, res.trace_id, "thumbs", "down")
                e["negative"] += 1
            elif i % 3 == 1:
                record(rt.store, res.trace_id, "thumbs", "up")
            if i % 2 == 0:
                record(rt.store, res.trace_id, "grounding", {"passed": i % 4 == 0}, source="check")
                e["checks"] += 1
                e["passed"] += i % 4 == 0
    result = run(tmp_path, "route", "report", "ab", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["routes"]["ab"]
    for arm, e in expected.items():
        got = report["arms"][arm]
        assert got["requests"] == e["requests"] and got["negative"] == e["negative"]
        assert got["negative_feedback_rate"] == pytest.approx(round(e["negative"] / e["requests"], 4))
        assert got["online_checks"] == e["checks"] and got["online_passed"] == e["passed"]
        assert got["cost_usd"] == pytest.approx(e["cost"], rel=1e-6)
        assert got["latency_p50_ms"] is not None
    base = report["baseline"]
    other = "large" if base == "small" else "small"
    b, o = expected[base], expected[other]
    assert report["arms"][other]["negative_feedback_p"] == pytest.approx(
        fisher_exact(o["negative"], o["requests"] - o["negative"], b["negative"], b["requests"] - b["negative"]))
    assert any("too few to compare" in w for w in report["warnings"])
    assert report["shadow"]["large"]["requests"] == len(users)
    assert report["shadow"]["large"]["cost_usd"] == pytest.approx(shadow_cost, rel=1e-6) and shadow_cost > 0
    table = run(tmp_path, "route", "report")
    assert table.exit_code == 0 and "route ab" in table.stdout and "shadow large" in table.stdout


def test_compare_shadow_judges_shadow_outputs_against_served_ones(tmp_path: Path, llm) -> None:
    llm.add(r"<response_a>\s*large", "A is better.\nVerdict: A", model="fake-judge")
    llm.add(r"<response_b>\s*large", "B is better.\nVerdict: B", model="fake-judge")
    llm.add(r".", "small answer", model="fake-small")
    llm.add(r".", "large answer", model="fake-large")
    project = write_project(tmp_path, llm, "support: {alias: small, shadow: large}\n",
                            extra=f"store: sqlite:///{tmp_path / 'fw.db'}\n")
    with Runtime(project) as rt:
        for i in range(4):
            rt.gateway.chat(ChatRequest.of(f"question {i}", model="support"))
        for future in list(rt.gateway.router.futures):
            future.result(timeout=20)
    result = run(tmp_path, "route", "compare-shadow", "support", "--judge", "judge", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["route"] == "support" and data["shadow"]["paired"] == 4
    pair = data["pairs"][0]
    assert pair["answer_a"] == "small answer" and pair["answer_b"] == "large answer"
    assert pair["question"].startswith("question")
    assert data["comparison_id"]
    missing = run(tmp_path, "route", "compare-shadow", "nope", "--judge", "judge")
    assert missing.exit_code == 2


def test_written_routes_block_is_appended_when_there_is_none(tmp_path: Path, llm) -> None:
    from flywheel.loop.routing import set_route_alias

    write_project(tmp_path, llm)
    path = tmp_path / "flywheel.yaml"
    set_route_alias(path, "support", "small", "picked")
    set_route_alias(path, "faq", "large")
    text = path.read_text(encoding="utf-8")
    assert text.endswith(textwrap.dedent("""\
        routes:
          faq: {alias: large}
          support: {alias: small}  # picked
        """))


def test_arms_without_online_checks_get_no_online_p_value() -> None:
    """Two arms and no online-check feedback: the report showed p 1.000 for the online pass rate, a test that
    was never run; it is None (printed `-`), while the feedback p-value is still computed."""
    from flywheel.loop.routing import _route_summary

    def row(i: int) -> dict:
        return {"trace_id": f"t{i}", "attributes": {}, "latency_ms": 10.0, "error": None}

    entry = {"arms": {"small": [row(i) for i in range(3)], "large": [row(i) for i in range(3, 5)]}, "shadow": {}}
    report = _route_summary(entry, {})
    assert report["baseline"] == "small"
    assert report["arms"]["large"]["online_pass_rate"] is None
    assert report["arms"]["large"]["online_pass_p"] is None
    assert report["arms"]["large"]["negative_feedback_p"] == 1.0

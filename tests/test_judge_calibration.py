"""Judge calibration: a judge with a known bias (fake_llm, following few-shot examples) is caught by
`flywheel judge calibrate` (low κ against the human majority) and agrees better after the few-shot step; the
calibrated prompt is versioned, used by the suite's judge check, and shown in eval reports."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner
from rich.console import Console

import flywheel.cli.judge  # noqa: F401 - registers `flywheel judge` (until cli/__init__ lists it)
from flywheel.apps.runtime import Runtime
from flywheel.cli import main
from flywheel.config import Project
from flywheel.evals.calibration import LabelledItem, agreement, split
from flywheel.evals.calibration_judges import apply_calibration, calibrate_for_run, resolve_judge
from flywheel.evals.calibration_store import calibrated_criterion, judge_key, judge_status, save_calibration
from flywheel.evals.calibration_synthetic import (
    CRITERION,
    PROPOSED,
    biased_judge_reply,
    calibrate_synthetic,
    synthetic_items,
)
from flywheel.evals.report import render_run
from flywheel.evals.report_html import render_runs
from flywheel.evals.runner import RunOptions, run_suite
from flywheel.evals.suite import load_suite
from flywheel.feedback import queues
from flywheel.store import Store, schema_diff
from flywheel.testing.fake_llm import FakeLLM
from flywheel.testing.fake_llm_wire import last_user_text

N_ITEMS = 24
SUITE = f"""\
name: support
target: app:support
defaults: {{judge: judge}}
cases:
  - id: promise
    vars: {{question: "%s"}}
    checks: [{{judge: "{CRITERION}"}}, {{max_words: 80}}, {{not-contains: "sorry"}}]
"""


@pytest.fixture(scope="module")
def fake():
    with FakeLLM() as llm:
        yield llm


@pytest.fixture(scope="module")
def world(tmp_path_factory, fake):
    """A project whose chat app answered N_ITEMS traced questions, and a binary queue labelled by two people."""
    root = tmp_path_factory.mktemp("calibration")
    items = synthetic_items(N_ITEMS, seed=3)
    answers = {i.input: i.output for i in items}
    fake.add(r"<criterion>|<disagreements>", lambda body: biased_judge_reply(last_user_text(body)))
    fake.add(r".", lambda body: answers.get(last_user_text(body), "I'm not sure, sorry."))
    (root / "flywheel.yaml").write_text(textwrap.dedent(f"""\
        models:
          gpt: {{provider: openai_compat, base_url: "{fake.base_url}", model: fake-app, max_retries: 0}}
          judge: {{provider: openai_compat, base_url: "{fake.base_url}", model: fake-judge, max_retries: 0}}
        apps:
          support: {{kind: chat, model: gpt, options: {{system: "You are support."}}}}
        cache: {{exact: false}}
        monitor:
          online: [{{check: judge, name: helpful, criterion: "{CRITERION}", sample: 0.5}}]
        """), encoding="utf-8")
    (root / "evals").mkdir()
    promise = next(i for i in items if "guarantee" in i.output)
    (root / "evals" / "support.yaml").write_text(SUITE % promise.input, encoding="utf-8")
    project = Project.load(root)
    with Runtime(project) as rt:
        traces = [rt.app("support").run(i.input).trace_id for i in items]
        tie = rt.app("support").run("How do I sort out my invoice? (ticket 500)").trace_id
    with Runtime(project, tracing=False) as rt:
        q = queues.create_queue(rt.store, "cal", kind="binary", overlap=2, trace_ids=[*traces, tie])
        by_trace = {it.trace_id: it for it in queues.items(rt.store, q)}
        queues.label(rt.store, by_trace[tie].id, "ana", "pass")  # people split: no truth, left out
        queues.label(rt.store, by_trace[tie].id, "bo", "fail")
        for tid, truth in zip(traces, items, strict=True):
            item_id = by_trace[tid].id
            queues.label(rt.store, item_id, "ana", truth.human, reason=truth.reason or None)
            queues.label(rt.store, item_id, "bo", truth.human, reason=truth.reason or None)
    return project


def _cli(project: Project, *args: str):
    return CliRunner().invoke(main, ["--project", str(project.root), *args], catch_exceptions=False)


def test_agreement_numbers_and_stratified_split():
    humans = ["pass"] * 6 + ["fail"] * 4
    judged = ["pass"] * 5 + ["fail"] + ["pass", "pass", "fail", None]
    a = agreement(humans, judged)
    assert a.confusion == {"tp": 5, "fn": 1, "fp": 2, "tn": 1} and a.errors == 1 and a.n == 9
    assert a.tpr == round(5 / 6, 4) and a.tnr == round(1 / 3, 4)
    po, pe = 6 / 9, (6 / 9) * (7 / 9) + (3 / 9) * (2 / 9)
    assert a.kappa == pytest.approx((po - pe) / (1 - pe), abs=1e-4)

    items = [LabelledItem(id=f"i{n}", input=f"q{n}", output="", human="pass" if n % 3 else "fail") for n in range(30)]
    train, held = split(items, 0.5, seed=7)
    assert {i.id for i in train}.isdisjoint({i.id for i in held}) and len(train) + len(held) == 30
    assert sum(i.human == "fail" for i in held) == 5 and sum(i.human == "pass" for i in held) == 10
    assert [i.id for i in split(items, 0.5, seed=7)[1]] == [i.id for i in held]  # seeded
    assert [i.id for i in split(items, 0.5, seed=8)[1]] != [i.id for i in held]


def test_schema_matches_the_migration(store_url):
    store = Store.open(store_url)
    try:
        assert schema_diff(store, ["judge_calibrations"]) == []
    finally:
        store.close()


def test_biased_judge_is_caught_and_improves_with_few_shot_examples(world):
    ref = "evals/support.yaml#promise"
    with Runtime(world, tracing=False) as rt:
        suite = load_suite(world.root / "evals" / "support.yaml", world)
        assert run_suite(suite, rt, options=RunOptions(progress=False)).by_check["judge"]["passed"] == 1  # bias
    result = _cli(world, "judge", "calibrate", ref, "--queue", "cal", "--no-propose", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == N_ITEMS and report["n_heldout"] + report["n_train"] == N_ITEMS
    assert report["kappa_before"] < 0.6  # the bias: every promise passes
    assert report["before"]["confusion"]["fp"] > 0 and report["before"]["tnr"] < 1
    assert report["step"] == "few-shot" and report["examples"] >= 1
    assert report["kappa_after"] > report["kappa_before"] and report["after"]["confusion"]["fp"] == 0
    assert report["adopted"] and report["version"] == 1

    with Runtime(world, tracing=False) as rt:
        prompt = calibrated_criterion(rt.store, CRITERION)
        assert prompt.startswith(CRITERION) and "Human verdict: FAIL" in prompt and "guarantee" in prompt
        status = judge_status(rt.store, CRITERION)
        assert status is not None and status["kappa"] == report["kappa_after"] and status["version"] == 1
        suite = load_suite(world.root / "evals" / "support.yaml", world)
        lines = calibrate_for_run(suite, rt)
        judge = next(c for c in suite.cases[0].checks if c.name == "judge")
        assert judge.criterion == prompt  # the suite's judge now runs with the calibrated prompt
        assert lines[0]["version"] == 1 and lines[0]["warning"] is None
        summary = run_suite(suite, rt, options=RunOptions(progress=False))
    assert summary.by_check["judge"]["passed"] == 0  # the calibrated judge fails the promise

    console = Console(record=True, width=160)
    render_run(console, summary, judges=lines)
    text = console.export_text()
    assert f"judge agreement evals/support.yaml#promise: κ {report['kappa_after']:.2f} (v1" in text
    html = render_runs([summary], judges={summary.run_id: lines})
    assert "judge agreement with people" in html and "support.yaml#promise" in html

    again = json.loads(_cli(world, "judge", "versions", ref, "--json").output)
    assert [v["version"] for v in again] == [1]


def test_proposed_criterion_edit_and_other_addresses(world):
    ref = resolve_judge(world, "monitor:helpful")
    assert ref.criterion == CRITERION and ref.key == resolve_judge(world, "evals/support.yaml").key
    check = "judge:The answer serves the customer."  # its own history, whatever ran before
    first = json.loads(_cli(world, "judge", "calibrate", check, "--queue", "cal", "--model", "judge", "--json").output)
    assert first["proposed_criterion"] == PROPOSED and first["version"] == 1
    assert first["kappa_after"] > first["kappa_before"] and first["adopted"]
    # the next calibration starts from the adopted version: its examples already fix the bias
    second = json.loads(_cli(world, "judge", "calibrate", check, "--queue", "cal", "--model", "judge", "--seed", "1",
                             "--json").output)
    assert second["version"] == 2 and second["kappa_before"] >= 0.6


def test_never_measured_and_low_agreement_warnings(world):
    def lines_for(criterion: str, store) -> list[dict]:
        suite = load_suite(world.root / "evals" / "support.yaml", world)
        for case in suite.cases:
            for check in case.checks:
                if check.name == "judge":
                    check.criterion = criterion
        return apply_calibration(suite, store, 0.6, world.root)

    with Runtime(world, tracing=False) as rt:
        never = lines_for("Some criterion nobody calibrated.", rt.store)
        save_calibration(rt.store, judge_key=judge_key("A weak judge."), examples=[], check_name="x",
                         base_criterion="A weak judge.", criterion="A weak judge.", prompt="A weak judge.",
                         judge_model="judge", queue_id=None, seed=0, n=10, n_heldout=5, kappa_before=0.3,
                         kappa_after=0.2, adopted=False, metrics={})
        low = lines_for("A weak judge.", rt.store)
    assert never[0]["version"] is None and "never calibrated" in never[0]["warning"]
    assert low[0]["kappa"] == 0.3 and "κ 0.30, below review.min_judge_kappa 0.6" in low[0]["warning"]
    console = Console(record=True, width=200)
    render_run(console, run_suite_stub(), judges=low + never)
    text = console.export_text()
    assert "warning: judge evals/support.yaml#promise agrees with people at κ 0.30" in text
    assert "evals/support.yaml#promise: never calibrated" in text


def run_suite_stub():
    from flywheel.evals.runner import RunSummary

    return RunSummary(run_id="r" * 32, suite="s", target="app:support", model=None, threshold=1.0, repeat=1,
                      cases=0, executions=0, passed=0, pass_rate=0.0, pass_rate_ci95=[None, None],
                      meets_threshold=False, errors=0, resumed=0, cost_usd=0.0,
                      latency_ms={"p50": None, "p95": None, "mean": None}, wall_s=0.0, by_check={}, by_case=[],
                      flaky=[], versions={})


@pytest.mark.parametrize(("args", "message"), [
    (["judge", "calibrate", "evals/nope.yaml", "--queue", "cal"], "unknown check evals/nope.yaml"),
    (["judge", "calibrate", "evals/support.yaml#other", "--queue", "cal"], "case 'other' has no judge check"),
    (["judge", "calibrate", "monitor:absent", "--queue", "cal"], "unknown check monitor:absent"),
    (["judge", "calibrate", "evals/support.yaml", "--queue", "nope"], "nope"),
    (["judge", "calibrate", "evals/support.yaml", "--queue", "cal", "--heldout", "1.5"], "--heldout"),
])
def test_bad_input_exits_2_and_stores_nothing(world, args, message):
    with Runtime(world, tracing=False) as rt:
        before = len(queues.labels(rt.store, "cal"))
    result = CliRunner().invoke(main, ["--project", str(world.root), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    with Runtime(world, tracing=False) as rt:
        assert len(queues.labels(rt.store, "cal")) == before


def test_unreachable_judge_exits_3_and_stores_no_version(world, fake):
    from flywheel.testing.fake_llm import Fault

    before = len(json.loads(_cli(world, "judge", "versions", "evals/support.yaml", "--json").output))
    fake.fail(Fault.SERVER_ERROR, times=None, model="fake-judge")
    try:
        result = CliRunner().invoke(main, ["--project", str(world.root), "judge", "calibrate", "evals/support.yaml",
                                           "--queue", "cal"])
    finally:
        fake.clear_faults()
    assert result.exit_code == 3, result.output
    assert len(json.loads(_cli(world, "judge", "versions", "evals/support.yaml", "--json").output)) == before


def test_queue_without_labels_exits_2(world):
    with Runtime(world) as rt:
        tid = rt.app("support").run("How do I sort out my invoice? (ticket 999)").trace_id
    with Runtime(world, tracing=False) as rt:
        queues.create_queue(rt.store, "empty", kind="binary", overlap=1, trace_ids=[tid])
    result = CliRunner().invoke(main, ["--project", str(world.root), "judge", "calibrate", "evals/support.yaml",
                                       "--queue", "empty"])
    assert result.exit_code == 2 and "no labelled items" in result.output


def test_calibrate_synthetic_for_the_bench():
    from flywheel.evals.calibration import calibrate_synthetic as for_bench

    assert for_bench(seed=0, n=120) == calibrate_synthetic(seed=0, n=120)
    got = calibrate_synthetic(seed=0, n=120)
    assert set(got) == {"kappa_before", "kappa_after", "n_heldout"} and got["n_heldout"] == 60
    assert got["kappa_before"] < 0.6 < got["kappa_after"]


def test_synthetic_judge_through_fake_llm_matches_the_in_process_one(fake):
    from flywheel.config import ModelAlias
    from flywheel.gateway import Gateway

    fake.add(r"<criterion>|<disagreements>", lambda body: biased_judge_reply(last_user_text(body)))
    gateway = Gateway({"default": ModelAlias(provider="openai_compat", model="fake-judge",
                                             base_url=fake.base_url, max_retries=0)})
    assert calibrate_synthetic(seed=2, n=40, gateway=gateway) == calibrate_synthetic(seed=2, n=40)


def test_never_calibrated_hint_is_a_command_that_runs(world):
    """The hint eval prints (`flywheel judge calibrate LABEL --queue Q`) names the suite as calibrate resolves
    it: a bare `support.yaml#promise` was refused as an unknown check when copied."""
    suite = load_suite(world.root / "evals" / "support.yaml", world)
    for case in suite.cases:
        for check in case.checks:
            if check.name == "judge":
                check.criterion = "A criterion no one calibrated, for the hint."
    with Runtime(world, tracing=False) as rt:
        [line] = calibrate_for_run(suite, rt)
    assert line["check"] == "evals/support.yaml#promise"
    assert f"flywheel judge calibrate {line['check']} --queue Q" in line["warning"]
    assert resolve_judge(world, line["check"]).criterion == CRITERION


def test_the_report_names_the_queue_as_the_user_did(world):
    """The header said `on queue 14a4c9bc02e9` (the id) for `--queue cal`."""
    result = _cli(world, "judge", "calibrate", "judge:Names the queue.", "--queue", "cal", "--model", "judge",
                  "--no-propose")
    assert result.exit_code == 0, result.output
    assert "on queue cal:" in result.output

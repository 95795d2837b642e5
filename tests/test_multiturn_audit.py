"""Multi-turn evals when a turn fails with an error: the earlier turns keep their answers and checks, the error
names its turn, the later turns are not sent, and the per-turn rows and the HTML report say so."""
# ruff: noqa: F811 - pytest fixtures imported from the shared modules are redefined as parameters

from __future__ import annotations

from pathlib import Path

import pytest
from test_evals_support import llm, write_suite  # noqa: F401 - fixtures
from test_multiturn import rt, sent  # noqa: F401 - fixtures

from flywheel.errors import ConfigError, UserError
from flywheel.evals.case_kinds import turn_rows
from flywheel.evals.records import CaseRun
from flywheel.evals.report_html import render_runs
from flywheel.evals.runner import RunOptions, run_suite
from flywheel.evals.suite import EvalCase, EvalTurn, load_suite
from flywheel.types import CheckResult

QUIET = RunOptions(concurrency=1, progress=False)

SUITE = """\
name: broken-middle
target: {target}
{prompt}cases:
  - id: three-turns
    turns:
      - input: "Hi, my name is Ann."
        checks: [{{contains: Ann}}]
      - input: "Now crash, please."
        checks: [{{contains: anything}}]
      - input: "What is my name?"
        checks: [{{contains: Ann}}]
"""


def crash(body: dict) -> str:
    raise RuntimeError("the model fell over")


@pytest.mark.parametrize("target", ["app:support", "model:gpt"])
def test_an_error_in_a_middle_turn_keeps_the_turns_before_and_names_its_turn(
    tmp_path: Path, rt, llm, target
) -> None:
    llm.add(r"my name is", "Nice to meet you, Ann.")
    llm.add(r"crash", crash)
    llm.add(r"what is my name", "You are Ann.")
    prompt = 'prompt: "{{input}}"\n' if target.startswith("model") else ""  # an app uses its own prompt
    text = SUITE.format(target=target, prompt=prompt)
    suite = load_suite(write_suite(tmp_path / "evals" / "b.yaml", text), rt.project)
    summary = run_suite(suite, rt, options=QUIET)
    (result,) = summary.results
    assert result.error is not None and result.error.startswith("turn 2 of 3: ")
    assert "the model fell over" in result.error and not result.passed
    assert result.output == "[turn 1] Hi, my name is Ann.\nNice to meet you, Ann."  # turn 1 is kept
    assert [(c.details["turn"], c.passed) for c in result.checks] == [(1, True)]
    assert result.latency_ms is None  # no latency for a broken-off conversation
    assert not any("What is my name?" in m["content"] for ms in sent(llm) for m in ms)  # turn 3 was not sent
    rows = summary.by_case[0]["turns"]
    assert [(r["turn"], r["passes"], r["errors"], r["not_run"]) for r in rows] == [
        (1, 1, 0, 0),
        (2, 0, 1, 0),
        (3, 0, 0, 1),
    ]


def test_turn_rows_of_stored_results_without_a_named_turn() -> None:
    """Results stored before errors named their turn count as failing at the first turn."""
    case = EvalCase("c", {}, [], [], turns=[EvalTurn(f"q{i}", [], []) for i in (1, 2)])
    ok = CaseRun(
        "c",
        0,
        passed=True,
        score=1.0,
        output="x",
        checks=[CheckResult(passed=True, score=1.0, name="contains", details={"turn": n}) for n in (1, 2)],
    )
    old = CaseRun("c", 1, passed=False, score=0.0, output=None, error="timed out after 60 s")
    rows = turn_rows(case, [ok, old])
    assert [(r["passes"], r["errors"], r["not_run"]) for r in rows] == [(1, 1, 0), (1, 0, 1)]


def test_the_html_report_labels_each_check_with_its_turn(tmp_path: Path, rt, llm) -> None:
    llm.add(r"my name is", "Nice to meet you, Ann.")
    llm.add(r"crash", "Crashed? No.")
    llm.add(r"what is my name", "You are Bob.")
    text = SUITE.format(target="app:support", prompt="")
    suite = load_suite(write_suite(tmp_path / "evals" / "b.yaml", text), rt.project)
    page = render_runs([run_suite(suite, rt, options=QUIET)])
    assert "turn 1 · contains" in page and "turn 3 · contains" in page


def test_diversity_over_repeats_compares_the_last_answers_not_the_transcripts(
    tmp_path: Path, rt, llm
) -> None:
    poems = iter(
        [
            "Red kites circle over quiet barley",
            "Salt wind rattles harbour masts tonight",
            "Moss remembers every footstep through pines",
        ]
    )
    llm.add(r"my name is", "Nice to meet you, Ann.")  # the same in every repeat
    llm.add(r"poem", lambda body: next(poems))
    text = """\
name: poems
target: app:support
cases:
  - id: poem-after-greeting
    turns:
      - input: "Hi, my name is Ann."
        checks: [{contains: Ann}]
      - input: "Write me a one-line poem."
        checks: [{diversity: {min_distinct_2: 0.9}}, {min_words: 3}]
"""
    suite = load_suite(write_suite(tmp_path / "evals" / "p.yaml", text), rt.project)
    summary = run_suite(suite, rt, options=RunOptions(concurrency=1, progress=False, repeat=3))
    verdicts = [c for r in summary.results for c in r.checks if c.name == "diversity"]
    assert len(verdicts) == 3 and all(v.passed for v in verdicts), verdicts[0].reason
    assert verdicts[0].details["distinct_2"] == 1.0 and verdicts[0].details["turn"] == 2
    assert summary.passed == 3


def test_turns_on_a_workflow_target_say_it_keeps_no_conversation(tmp_path: Path, rt) -> None:
    (rt.project.root / "wf.yaml").write_text(
        'name: wf\ninputs: {question: {type: string}}\nsteps:\n  - {id: answer, model: gpt, prompt: "{{inputs.question}}"}\n',
        encoding="utf-8",
    )
    text = "name: wf\ntarget: workflow:wf.yaml\ncases:\n  - id: t\n    turns:\n      - {input: hi, checks: [{contains: a}]}\n"
    path = write_suite(rt.project.root / "evals" / "w.yaml", text)
    with pytest.raises(
        ConfigError
    ) as err:  # not "lacks input(s) question": the case gives its inputs as turns
        load_suite(path, rt.project)
    assert "has `turns:` but the target workflow:wf.yaml keeps no conversation" in err.value.message
    assert err.value.where == f"{path}:4"


def test_a_turn_that_times_out_keeps_the_turns_before(tmp_path: Path, rt, llm) -> None:
    llm.add(r"2\+2", "4")
    llm.add(r"times 3", "12", latency=60.0)  # never in time; the server's stop wakes it
    text = """\
name: slow
target: model:gpt
prompt: "{{question}}"
cases:
  - turns:
      - {input: "2+2?", checks: [{equals: "4"}]}
      - {input: "times 3?", checks: [{equals: "12"}]}
"""
    suite = load_suite(write_suite(tmp_path / "evals" / "slow.yaml", text), rt.project)
    (result,) = run_suite(suite, rt, options=RunOptions(concurrency=1, progress=False, timeout_s=2.0)).results
    # the case's timeout or the gateway's (it gets the same seconds), whichever fires first
    assert (
        result.error is not None
        and result.error.startswith("turn 2 of 2: ")
        and "time" in result.error.lower()
    )
    assert result.output == "[turn 1] 2+2?\n4" and [c.details["turn"] for c in result.checks] == [1]


def test_compare_leaves_out_a_conversation_broken_off_by_an_error() -> None:
    from flywheel.evals.pairwise import pairs_from_runs

    whole = CaseRun(
        "c", 0, passed=True, score=1.0, output="[turn 1] Hi\nHello\n\n[turn 2] Bye\nBye!", input="Hi"
    )
    broken = CaseRun(
        "c",
        0,
        passed=False,
        score=0.0,
        output="[turn 1] Hi\nHello",
        input="Hi",
        error="turn 2 of 2: HTTP 500",
    )  # keeps turn 1, as a run stopped by an error does

    class Runs:  # what pairs_from_runs reads of a RunStore
        def get(self, ref: str) -> dict:
            return {"id": ref, "suite": "s"}

        def load_results(self, run_id: str) -> list[CaseRun]:
            return [whole] if run_id == "a" else [broken]

    with pytest.raises(UserError, match="no case answered by both"):
        pairs_from_runs(Runs(), "a", "b")

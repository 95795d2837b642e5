"""Multiple-choice eval cases (lm-evaluation-harness style): accuracy by generation against the fake LLM, the
first-token log-probability reading for providers that return them, and bad cases with file:line."""
# ruff: noqa: F811 - pytest fixtures imported from test_evals_support are redefined as parameters

from __future__ import annotations

from pathlib import Path

import pytest
from test_evals_support import llm, project, runtime, write_suite  # noqa: F401 - fixtures

from flywheel.errors import ConfigError
from flywheel.evals.choices import chosen_by_logprobs, chosen_by_text, first_token_alternatives
from flywheel.evals.runner import RunOptions, run_suite
from flywheel.evals.suite import load_suite
from flywheel.testing.fake_llm_wire import Scored

QUIET = RunOptions(concurrency=2, progress=False)

SUITE = """\
name: capitals-mc
target: model:small
prompt: "{{question}}"
cases:
  - id: france
    vars: {question: "Capital of France?"}
    choices: [Paris, Rome, Madrid]
    answer: 0
  - id: italy
    vars: {question: "Capital of Italy?"}
    choices: [Paris, Rome, Madrid]
    answer: Rome
  - id: spain
    vars: {question: "Capital of Spain?"}
    choices: [Paris, Rome, Madrid]
    answer: 2
  - id: germany
    vars: {question: "Capital of Germany?"}
    choices: [Berlin, Bonn]
    answer: Berlin
"""


def test_accuracy_by_generation(tmp_path: Path, llm, runtime, project) -> None:
    llm.add(r"France", "A")  # a letter
    llm.add(r"Italy", "The answer is B.")  # a sentence naming the letter
    llm.add(r"Spain", "Barcelona, I think.")  # none of the choices: wrong
    llm.add(r"Germany", "It is Berlin.")  # the text of a choice
    suite = load_suite(write_suite(tmp_path / "evals" / "mc.yaml", SUITE), project)
    assert not suite.warnings  # a multiple-choice case needs no checks
    summary = run_suite(suite, runtime, options=QUIET)
    assert summary.multiple_choice == {"cases": 4, "executions": 4, "correct": 3, "accuracy": 0.75,
                                       "methods": {"generation": 4}}
    spain = next(r for r in summary.results if r.case_id == "spain")
    assert not spain.passed and spain.checks[0].details == {"chosen": None, "answer": 2, "method": "generation"}
    asked = next(r for r in llm.requests if "France" in r["messages"][-1]["content"])["messages"][-1]["content"]
    assert "A. Paris\nB. Rome\nC. Madrid" in asked and "letter" in asked


def test_reading_the_choice() -> None:
    choices = ["Paris", "Rome", "Madrid"]
    assert [chosen_by_text(t, choices) for t in ("B", "(C)", "Answer: A", "答案：B", "Rome.", "Rome or Paris",
                                                 "A city")] == [1, 2, 0, 1, 1, None, None]
    tokens = [{"token": "B", "logprob": -0.2, "top_logprobs": [
        {"token": "B", "logprob": -0.2}, {"token": " A", "logprob": -1.9}, {"token": "Z", "logprob": -0.1}]}]
    top = first_token_alternatives(tokens)
    assert top == {"B": -0.2, " A": -1.9, "Z": -0.1}
    assert chosen_by_logprobs(top, choices) is None  # Z, no option, is likelier than B: the text decides
    assert chosen_by_logprobs({**top, "Z": -3.0}, choices) == 1
    assert first_token_alternatives(None) is None


@pytest.mark.parametrize(("case", "message", "line"), [
    ("    choices: [a, b]\n    answer: 2", "`answer: 2` in case 1 is not a choice index", 6),
    ("    choices: [a, b]\n    answer: c", "`answer: c` in case 1 is none of the choices", 6),
    ("    choices: [a, b]", "has `choices:` but no `answer:`", 5),
    ("    choices: [a, A]\n    answer: 0", "lists the same choice twice", 5),
    ("    choices: [a]\n    answer: 0", "`choices` in case 1", 5),
    ("    answer: 1", "has `answer:` but no `choices:`", 5),
    ("    choices: [a, b]\n    answer: true", "got a boolean", 6),
])
def test_bad_choices_are_config_errors(tmp_path: Path, project, case, message, line) -> None:
    text = f"name: bad\ntarget: model:small\ncases:\n  - vars: {{question: q}}\n{case}\n"
    path = write_suite(tmp_path / "evals" / "bad.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_suite(path, project)
    assert message in err.value.message and err.value.where == f"{path}:{line}"


def test_jsonl_cases_with_choices_and_a_plain_answer_column(tmp_path: Path, project) -> None:
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "mc.jsonl").write_text(
        '{"id": "a", "question": "Capital of France?", "choices": ["Paris", "Rome"], "answer": "Paris"}\n'
        '{"id": "b", "question": "2+2?", "answer": "4", "checks": [{"contains": "4"}]}\n', encoding="utf-8")
    path = write_suite(tmp_path / "evals" / "s.yaml", "name: j\ntarget: model:small\ncases: mc.jsonl\n")
    first, second = load_suite(path, project).cases
    assert (first.kind, first.answer, first.vars) == ("choice", 0, {"question": "Capital of France?"})
    assert (second.kind, second.vars) == ("single", {"question": "2+2?", "answer": "4"})  # still a var


def test_accuracy_by_logprobs_when_the_provider_returns_them(tmp_path: Path, llm, project) -> None:
    """The alias asks for log-probabilities; fake_llm answers them (scripted) through the gateway's one path."""
    from flywheel.apps.runtime import Runtime
    from flywheel.config import Project

    config = project.root / "flywheel.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        "model: fake-small,", "model: fake-small, params: {logprobs: true, top_logprobs: 5},"), encoding="utf-8")
    for country, right in (("France", " A"), ("Italy", " B"), ("Spain", " A"), ("Germany", " A")):
        llm.add(country, Scored("C", {right: -0.1, "C": -2.5}))  # sampled C, but the likeliest letter is `right`
    runtime = Runtime(Project.load(project.root), tracing=False)
    try:
        suite = load_suite(write_suite(tmp_path / "evals" / "mc.yaml", SUITE), runtime.project)
        summary = run_suite(suite, runtime, options=QUIET)
    finally:
        runtime.close()
    # france A ✓, italy B ✓, spain A ✗ (the text says C: log-probabilities win), germany A ✓
    assert summary.multiple_choice == {"cases": 4, "executions": 4, "correct": 3, "accuracy": 0.75,
                                       "methods": {"logprobs": 4}}
    assert all(r["logprobs"] is True and r["top_logprobs"] == 5 for r in llm.requests)

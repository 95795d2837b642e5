"""Multiple-choice scoring: log-probabilities only when the first answer token's alternatives carry an option,
else the text (recorded as `generation-fallback`); spellings of a letter (" b", "(B", "Ｂ", "选项B"), choices
answered by their text, more than four choices."""
# ruff: noqa: F811 - pytest fixtures imported from test_evals_support are redefined as parameters

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from test_evals_support import llm, project, write_suite  # noqa: F401 - fixtures

from flywheel.apps.runtime import Runtime
from flywheel.config import Project
from flywheel.errors import ConfigError
from flywheel.evals.choices import (
    chosen_by_logprobs,
    chosen_by_text,
    first_token_alternatives,
    option_of_token,
)
from flywheel.evals.report import render_run
from flywheel.evals.runner import RunOptions, run_suite
from flywheel.evals.suite import load_suite
from flywheel.testing.fake_llm_wire import Scored

QUIET = RunOptions(concurrency=2, progress=False)
CAPITALS = ["Paris", "Rome", "Madrid"]

SUITE = """\
name: mc
target: model:small
prompt: "{{question}}"
cases:
  - id: spain
    vars: {question: "Capital of Spain?"}
    choices: [Paris, Rome, Madrid]
    answer: 2
  - id: italy
    vars: {question: "Capital of Italy?"}
    choices: [Paris, Rome, Madrid]
    answer: 1
  - id: sixth
    vars: {question: "Which is the sixth letter?"}
    choices: [a, b, c, d, e, f]
    answer: 5
"""


def scored_run(tmp_path: Path, project: Project, suite: str = SUITE):
    config = project.root / "flywheel.yaml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "model: fake-small,", "model: fake-small, params: {logprobs: true, top_logprobs: 5},"
        ),
        encoding="utf-8",
    )
    runtime = Runtime(Project.load(project.root), tracing=False)
    try:
        return run_suite(
            load_suite(write_suite(tmp_path / "evals" / "mc.yaml", suite), runtime.project),
            runtime,
            options=QUIET,
        )
    finally:
        runtime.close()


def test_a_stray_letter_among_the_alternatives_does_not_beat_the_answer_in_words(
    tmp_path, llm, project
) -> None:
    # the model answers in a sentence: its first token "The" is by far the likeliest; " A" is noise
    llm.add("Spain", Scored("The answer is C.", {"The": -0.01, " A": -6.0, " I": -5.0}))
    llm.add("Italy", Scored(" B", {" B": -0.05, " A": -3.2}))  # a letter first: the log-probabilities decide
    llm.add("sixth", Scored("(F)", {"(": -0.02}, {"F": -0.1, "E": -2.6}))  # past the opening bracket
    summary = scored_run(tmp_path, project)
    by_id = {r.case_id: r.checks[0] for r in summary.results}
    assert by_id["spain"].details == {"chosen": 2, "answer": 2, "method": "generation-fallback"}
    assert "by generation-fallback" in by_id["spain"].reason
    assert by_id["italy"].details == {"chosen": 1, "answer": 1, "method": "logprobs"}
    assert by_id["sixth"].details == {"chosen": 5, "answer": 5, "method": "logprobs"}
    assert summary.multiple_choice == {
        "cases": 3,
        "executions": 3,
        "correct": 3,
        "accuracy": 1.0,
        "methods": {"generation-fallback": 1, "logprobs": 2},
    }
    out = io.StringIO()
    render_run(Console(file=out, width=200, color_system=None), summary)
    assert "multiple choice 3/3 correct = 100.0% (by generation-fallback 1, logprobs 2)" in out.getvalue()


def test_log_probabilities_win_over_the_text_when_they_carry_the_answer(tmp_path, llm, project) -> None:
    # sampled "(C)" but the letter after the bracket is B with most of the probability
    llm.add("Spain", Scored("(C)", {"(": -0.01}, {"B": -0.2, "C": -1.8}))
    llm.add(
        "Italy", Scored("Ｂ", {"Ｂ": -0.3, " b": -1.6, "The": -1.0})
    )  # full-width and lower-case spellings
    llm.add("sixth", Scored("F", {"F": -0.1}))
    summary = scored_run(tmp_path, project)
    chosen = {
        r.case_id: (r.checks[0].details["chosen"], r.checks[0].details["method"]) for r in summary.results
    }
    assert chosen == {"spain": (1, "logprobs"), "italy": (1, "logprobs"), "sixth": (5, "logprobs")}


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("B", 1),
        (" B", 1),
        (" b", 1),
        ("(B", 1),
        ("b)", 1),
        ("B.", 1),
        ("Ｂ", 1),
        ("选项B", 1),
        (" Rome", 1),
        ("madrid", 2),
        ("D", None),
        ("The", None),
        ("(", None),
        ("Ro", None),
    ],
)
def test_the_option_a_token_spells(token, expected) -> None:
    assert option_of_token(token, CAPITALS) == expected


def test_spellings_of_one_option_add_up() -> None:
    # " b", "B" and "(B" together (0.30 + 0.27 + 0.14) outweigh "The" (0.41); each alone would not
    top = {"The": -0.9, " b": -1.2, "B": -1.3, "(B": -2.0, " A": -1.1}
    assert chosen_by_logprobs(top, CAPITALS) == 1
    assert chosen_by_logprobs({"The": -0.9, " b": -1.2}, CAPITALS) is None
    assert chosen_by_logprobs({"Hmm": -0.7, " A": -0.7}, CAPITALS) is None  # a tie is no answer either


def test_the_first_answer_token_skips_brackets_and_markup() -> None:
    tokens = [
        {"token": "**", "logprob": -0.1, "top_logprobs": [{"token": "**", "logprob": -0.1}]},
        {
            "token": "C",
            "logprob": -0.3,
            "top_logprobs": [{"token": "C", "logprob": -0.3}, {"token": "A", "logprob": -1.5}],
        },
    ]
    assert first_token_alternatives(tokens) == {"C": -0.3, "A": -1.5}
    # the sampled token counts even when top_logprobs: 0 sends no alternatives
    assert first_token_alternatives([{"token": " B", "logprob": -0.4, "top_logprobs": []}]) == {" B": -0.4}
    assert first_token_alternatives([{"token": "(", "logprob": -0.1}]) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(b)", 1),
        ("b) Rome", 1),
        ("the answer is c.", 2),
        ("**B**", 1),
        ("The answer is **C**.", 2),
        ("Ｃ", 2),
        ("答案是（C）", 2),
        ("选项B", 1),
        ("我选A", 0),
        ("正确答案应该是 B", 1),
        ("A is wrong; the answer is C", 2),
        ("rome", 1),
        ("It is Madrid.", 2),
        ("a city in Spain", None),
        ("Romeo", None),
        ("Paris or Rome", None),
        ("D", None),
        ("", None),
    ],
)
def test_reading_the_answer_from_text(text, expected) -> None:
    assert chosen_by_text(text, CAPITALS) == expected


def test_more_than_four_choices_and_choices_that_contain_each_other() -> None:
    seven = ["one", "two", "three", "four", "five", "six", "seven"]
    assert [chosen_by_text(t, seven) for t in ("G", "(f)", "Answer: E", "H")] == [6, 5, 4, None]
    nested = ["Rome", "Rome, Italy"]
    assert chosen_by_text("Rome, Italy.", nested) == 1  # the answer is that choice exactly
    assert (
        chosen_by_text("巴黎", ["北京", "巴黎"]) == 1
        and chosen_by_text("我认为是巴黎。", ["北京", "巴黎"]) == 1
    )


def test_more_than_26_choices_is_a_load_error(tmp_path: Path, project) -> None:
    options = ", ".join(f"o{i}" for i in range(27))
    path = write_suite(
        tmp_path / "evals" / "many.yaml",
        f"name: many\ntarget: model:small\ncases:\n  - vars: {{question: q}}\n"
        f"    choices: [{options}]\n    answer: 0\n",
    )
    with pytest.raises(ConfigError) as err:
        load_suite(path, project)
    assert "27 choices; at most 26" in err.value.message and err.value.where == f"{path}:5"

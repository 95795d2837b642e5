"""`flywheel eval --strategies` on a `workflow:` target: every model step of the workflow answers with the strategy
(it used to be refused with a hint no CLI user could follow); `--models` on one names the workflow's `model:`."""

from __future__ import annotations

import json
import textwrap

from click.testing import CliRunner
from test_evals_support import write_project

import flywheel.cli.evals  # noqa: F401 - registers `eval`
from flywheel.cli import main
from flywheel.testing.fake_llm import Choices

WORKFLOW = """
name: capital
inputs: [question]
model: small
steps:
  - id: answer
    prompt: "Q: {{inputs.question}}"
output: "{{steps.answer.output}}"
"""

SUITE = """
name: wf-cities
target: workflow:flow.yaml
threshold: 0.9
cases:
  - id: france
    vars: {question: "Largest city of France?"}
    checks: [{contains: Paris}, {max_words: 5}, {not-contains: London}]
  - id: italy
    vars: {question: "Largest city of Italy?"}
    checks: [{contains: Rome}, {max_words: 5}, {not-contains: London}]
"""


def setup(tmp_path, llm):
    write_project(tmp_path, llm)
    (tmp_path / "flow.yaml").write_text(textwrap.dedent(WORKFLOW), encoding="utf-8")
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "s.yaml").write_text(textwrap.dedent(SUITE), encoding="utf-8")


def test_a_workflow_target_compares_strategies(tmp_path, llm):
    llm.add(r"France", Choices("London.", "Paris.", "Paris."))  # one call: wrong; a vote of three: right
    llm.add(r"Italy", "Rome.")
    setup(tmp_path, llm)
    out = CliRunner().invoke(main, ["--project", str(tmp_path), "eval", "--strategies", "none,self_consistency:3",
                                    "--json"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    suite = json.loads(out.stdout)["suites"][0]
    rows = {r["strategy"]: r for r in suite["strategies"]["strategies"]}
    assert rows["none"]["pass_rate"] == 0.5 and rows["self_consistency:3"]["pass_rate"] == 1.0
    assert suite["strategies"]["best"] == "self_consistency:3"
    assert [r["suite"] for r in suite["runs"]] == ["wf-cities", "wf-cities [self_consistency:3]"]
    assert sorted(r.get("n") or 1 for r in llm.requests) == [1, 1, 3, 3]  # the step sampled three times at once


def test_models_on_a_workflow_target_points_at_the_workflows_model(tmp_path, llm):
    setup(tmp_path, llm)
    out = CliRunner().invoke(main, ["--project", str(tmp_path), "eval", "--models", "small,strong"])
    assert out.exit_code == 2
    assert "set `model:` in the workflow" in out.output and "inside your function" not in out.output

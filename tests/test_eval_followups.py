"""Eval follow-ups: promoted cases are not told to state three expectations, `flywheel eval` prints each
suite warning once (on stderr), the `judge:CRITERION` calibrate header names the criterion, and topic labels
leave out question words (多久, 怎么办, the "long" of "how long")."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

import flywheel.cli.promote  # noqa: F401 - registers `flywheel promote`
from flywheel.apps.runtime import Runtime
from flywheel.cli import main
from flywheel.config import Project
from flywheel.evals.calibration_judges import resolve_judge
from flywheel.evals.suite import load_suite
from flywheel.feedback import queues
from flywheel.monitor.clusters import keywords
from flywheel.testing.fake_llm import FakeLLM
from flywheel.text import tokenize

SHORT_WARNING = "state at least 3 expectations"


def _run(root: Path, *args: str):
    return CliRunner().invoke(main, ["--project", str(root), *args], catch_exceptions=False)


@pytest.fixture
def app_project(tmp_path: Path, llm: FakeLLM) -> Project:
    llm.add(".", "Verdict: PASS", model="fake-judge")
    llm.add(".", "We ship to Sweden in 5 days.", model="fake-app")
    (tmp_path / "flywheel.yaml").write_text(textwrap.dedent(f"""\
        models:
          gpt: {{provider: openai_compat, base_url: "{llm.base_url}", model: fake-app, max_retries: 0}}
          judge: {{provider: openai_compat, base_url: "{llm.base_url}", model: fake-judge, max_retries: 0}}
        retrieval: {{embedder: none}}
        cache: {{exact: false}}
        apps:
          support: {{kind: chat, model: gpt, options: {{system: "You are support."}}}}
        """), encoding="utf-8")
    return Project.load(tmp_path)


def test_a_promoted_suite_evals_without_the_three_expectations_warning(app_project: Project) -> None:
    """A coverage case states one judge: every eval of a promoted suite warned about it."""
    root = app_project.root
    with Runtime(app_project) as rt:
        tid = rt.app("support").run("Do you ship to Sweden?").trace_id
    promoted = _run(root, "promote", "--traces", tid, "--to", "evals/coverage.yaml", "--judge", "judge")
    assert promoted.exit_code == 0 and SHORT_WARNING not in promoted.output, promoted.output
    suite = load_suite(root / "evals" / "coverage.yaml", app_project)
    assert len(suite.cases[0].checks) == 1 and suite.warnings == []
    result = _run(root, "eval", "evals/coverage.yaml", "--no-progress")
    assert result.exit_code == 0, result.output
    assert SHORT_WARNING not in result.output  # (a "never calibrated" judge warning may stay: it is true)
    # the same case written by hand (no source trace) is still told to state more
    text = (root / "evals" / "coverage.yaml").read_text(encoding="utf-8").replace("source_trace_id:", "trace:")
    (root / "evals" / "hand.yaml").write_text(text, encoding="utf-8")
    assert SHORT_WARNING in " ".join(load_suite(root / "evals" / "hand.yaml", app_project).warnings)


def test_eval_prints_each_suite_warning_once_on_stderr(tmp_path: Path, llm: FakeLLM) -> None:
    llm.add(".", "Paris.")
    (tmp_path / "flywheel.yaml").write_text(
        f'models:\n  small: {{provider: openai_compat, base_url: "{llm.base_url}", model: fake-small, '
        "max_retries: 0}\ntracing: {enabled: false}\n", encoding="utf-8")
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "s.yaml").write_text(textwrap.dedent("""\
        target: model:small
        prompt: "Q: {{question}}"
        cases:
          - id: france
            vars: {question: "Capital of France?"}
            checks: [{contains: Paris}, {max_words: 10}]
        """), encoding="utf-8")
    text = _run(tmp_path, "eval", "evals/s.yaml", "--no-progress")
    assert text.exit_code == 0, text.output
    assert text.stderr.count(SHORT_WARNING) == 1 and SHORT_WARNING not in text.stdout
    assert "PASS" in text.stdout
    as_json = _run(tmp_path, "eval", "evals/s.yaml", "--json")
    assert as_json.stderr.count(SHORT_WARNING) == 1
    data = json.loads(as_json.stdout)  # stdout is the JSON alone; the warning stays in the run's data
    assert data["ok"] is True and SHORT_WARNING in data["suites"][0]["warnings"][0]


def test_calibrate_header_names_the_criterion(app_project: Project) -> None:
    """`judge:CRITERION` printed "judge judged by judge"; the criterion is shown, shortened and as text."""
    root = app_project.root
    with Runtime(app_project) as rt:
        traces = [rt.app("support").run(f"Do you ship to country {n}?").trace_id for n in range(6)]
    with Runtime(app_project, tracing=False) as rt:
        q = queues.create_queue(rt.store, "cal", kind="binary", overlap=1, trace_ids=traces)
        for n, item in enumerate(queues.items(rt.store, q)):
            queues.label(rt.store, item.id, "ana", "pass" if n % 2 else "fail")
    criterion = "The answer [bold]names[/bold] the delivery time and the country, and it offers tracking help."
    assert resolve_judge(app_project, f"judge:{criterion}").label.startswith('judge "The answer [bold]names')
    result = _run(root, "judge", "calibrate", f"judge:{criterion}", "--queue", "cal", "--model", "judge",
                  "--no-propose")
    assert result.exit_code == 0, result.output
    header = result.output.splitlines()[0]
    assert header.startswith('judge "The answer [bold]names[/bold] the delivery time') and "…\"" in header
    assert "judged by judge" in header and not header.startswith("judge judged by")


def test_topic_labels_leave_out_question_words() -> None:
    questions = ["退款要多久？", "退款多久到账", "退款怎么办", "退款到底有没有", "為啥退款要幾天",
                 "How long do refunds take?", "how long until refunds arrive", "How often are refunds paid?",
                 "How much is refunded and how many refunds", "whether refunds work"]
    docs = [tokenize(q) for q in questions]
    words = keywords(docs, Counter({"其他": 5}), 5, top=20)
    assert "退款" in words and "refunds" in words
    framing = {"多久", "怎么办", "到底", "有没有", "为啥", "几天", "long", "often", "much", "many", "whether"}
    assert not framing & set(words), words

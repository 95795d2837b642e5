"""`flywheel judge calibrate` as a user gets it wrong: a judge alias that answers without a verdict, a queue
people labelled with one verdict only, and a second calibration that finds nothing new to add. The agreement
numbers are checked against a hand computation."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import flywheel.cli.judge  # noqa: F401 - registers `flywheel judge`
from flywheel.apps.runtime import Runtime
from flywheel.cli import main
from flywheel.config import Project
from flywheel.feedback import queues
from flywheel.testing.fake_llm import FakeLLM
from flywheel.testing.fake_llm_wire import last_user_text

# (question, answer, the people's verdict); the judge fails answers that hedge ("I think"), so it disagrees
# with people on the two short-question items they failed and on the hedged answer they passed.
ITEMS = [
    ("What is the capital of France?", "Paris is the capital.", "pass"),
    ("Capital of Japan?", "Tokyo is the capital.", "pass"),
    ("法国的首都是哪里？", "巴黎。", "pass"),
    ("日本的首都是哪里？", "东京。", "pass"),
    ("Capital of Spain?", "Madrid is the capital.", "pass"),
    ("Capital of Chile?", "I think it is Lima.", "pass"),
    ("Capital of Peru?", "I think it is Quito.", "fail"),
    ("Capital of Kenya?", "I think it is Lagos.", "fail"),
    ("意大利的首都是哪里？", "I think 米兰。", "fail"),
    ("Capital of Egypt?", "I think it is Rabat.", "fail"),
    ("Italy?", "Rome is the capital.", "fail"),
    ("Norway?", "Oslo is the capital.", "fail"),
]


def _judge(body: dict) -> str:
    answer = last_user_text(body).rsplit("<output>", 1)[-1]
    return "It hedges.\nVerdict: FAIL" if "I think" in answer else "Fine.\nVerdict: PASS"


@pytest.fixture(scope="module")
def fake():
    with FakeLLM() as llm:
        yield llm


def _project(root: Path, fake: FakeLLM, verdicts: list[str] | None = None) -> Project:
    answers = {q: a for q, a, _ in ITEMS}
    fake.reset()
    fake.add(".", _judge, model="fake-judge")
    fake.add(".", "Nothing to grade here, sorry.", model="fake-chatty")
    fake.add(".", lambda body: answers[last_user_text(body)], model="fake-app")
    (root / "flywheel.yaml").write_text(
        textwrap.dedent(f"""\
        models:
          gpt: {{provider: openai_compat, base_url: "{fake.base_url}", model: fake-app, max_retries: 0}}
          judge: {{provider: openai_compat, base_url: "{fake.base_url}", model: fake-judge, max_retries: 0}}
          chatty: {{provider: openai_compat, base_url: "{fake.base_url}", model: fake-chatty, max_retries: 0}}
        apps:
          support: {{kind: chat, model: gpt}}
        cache: {{exact: false}}
        """),
        encoding="utf-8",
    )
    project = Project.load(root)
    with Runtime(project) as rt:
        traces = [rt.app("support").run(q).trace_id for q, _, _ in ITEMS]
    with Runtime(project, tracing=False) as rt:
        q = queues.create_queue(rt.store, "q", kind="binary", overlap=1, trace_ids=traces)
        by_trace = {it.trace_id: it for it in queues.items(rt.store, q)}
        for tid, (_, _, human), verdict in zip(
            traces, ITEMS, verdicts or [h for _, _, h in ITEMS], strict=True
        ):
            queues.label(rt.store, by_trace[tid].id, "ana", verdict or human, reason="hedges or too terse")
    return project


def _cli(project: Project, *args: str):
    return CliRunner().invoke(main, ["--project", str(project.root), *args], catch_exceptions=False)


def _versions(project: Project, check: str) -> list[dict]:
    return json.loads(_cli(project, "judge", "versions", check, "--json").output)


def test_agreement_matches_a_hand_computation(tmp_path, fake):
    project = _project(tmp_path, fake)
    result = _cli(
        project,
        "judge",
        "calibrate",
        "judge:The answer is right.",
        "--queue",
        "q",
        "--model",
        "judge",
        "--heldout",
        "0.99",
        "--no-propose",
        "--json",
    )  # all but one item of each verdict held out
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    before = report["before"]
    cm = before["confusion"]
    assert report["n_heldout"] == 10 and before["n"] == 10 and sum(cm.values()) == 10
    n, agree = 10, cm["tp"] + cm["tn"]
    people_pass, judge_pass = (cm["tp"] + cm["fn"]) / n, (cm["tp"] + cm["fp"]) / n
    pe = people_pass * judge_pass + (1 - people_pass) * (1 - judge_pass)
    assert before["kappa"] == pytest.approx((agree / n - pe) / (1 - pe), abs=1e-4)
    assert before["tpr"] == pytest.approx(cm["tp"] / (cm["tp"] + cm["fn"]), abs=1e-4)
    assert before["tnr"] == pytest.approx(cm["tn"] / (cm["tn"] + cm["fp"]), abs=1e-4)
    assert 0 < cm["fp"] and before["kappa"] < 1  # the judge passes the terse answers people failed


def test_a_judge_that_gives_no_verdict_exits_2_and_stores_nothing(tmp_path, fake):
    project = _project(tmp_path, fake)
    check = "judge:The answer is right."
    result = _cli(project, "judge", "calibrate", check, "--queue", "q", "--model", "chatty")
    assert result.exit_code == 2, result.output
    assert "no PASS/FAIL verdict on any of the 12 item(s)" in result.output
    assert "Nothing to grade here, sorry." in result.output and "Traceback" not in result.output
    assert _versions(project, check) == []


def test_a_queue_with_one_human_verdict_exits_2_before_judging(tmp_path, fake):
    project = _project(tmp_path, fake, verdicts=["pass"] * len(ITEMS))
    judged = len(fake.requests)
    result = _cli(
        project, "judge", "calibrate", "judge:The answer is right.", "--queue", "q", "--model", "judge"
    )
    assert result.exit_code == 2, result.output
    assert "all 12 labelled item(s) have the human verdict pass" in result.output
    assert len(fake.requests) == judged  # no judge call paid for a κ that cannot be measured


def test_a_calibration_with_nothing_new_says_the_prompt_did_not_change(tmp_path, fake):
    project = _project(tmp_path, fake)
    args = (
        "judge",
        "calibrate",
        "judge:The answer is right.",
        "--queue",
        "q",
        "--model",
        "judge",
        "--no-propose",
    )
    # item ids are random, so which seed puts a disagreement in the train part varies: take the first that does
    for seed in range(20):
        first = json.loads(_cli(project, *args, "--seed", str(seed), "--json").output)
        if first["train_disagreements"]:
            break
    assert first["prompt_changed"] and first["examples"] > 0 and first["adopted"]
    again = _cli(project, *args, "--seed", str(seed))  # the adopted version already holds them as examples
    assert again.exit_code == 0, again.output
    text = " ".join(again.output.split())
    assert "none (the train disagreements are already examples in the prompt)" in text
    assert "not adopted: the prompt did not change" in text and "κ did not improve" not in text

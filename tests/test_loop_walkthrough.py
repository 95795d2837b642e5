"""The data flywheel walked as docs/loop.md, review.md, promote.md and judge-calibration.md tell it, on a fresh
project: traffic in English and Chinese through `flywheel serve` (a real server on 127.0.0.1, fake_llm behind it)
with the official openai SDK, feedback over HTTP, the CLI and Python, a review queue labelled from the CLI and the
HTTP API, then promote, eval, export and judge calibration. Personal data (an e-mail) and a secret (an API key)
in the users' messages must not come out unmasked in promoted cases, exports or a calibrated judge prompt; re-runs
add nothing and rewrite nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from openai import OpenAI
from server_support import serving

import flywheel.feedback
from flywheel.cli import main
from flywheel.config import Project
from flywheel.evals.promote import numbers
from flywheel.feedback import queues
from flywheel.monitor.clusters import keywords
from flywheel.store import Store
from flywheel.testing.fake_llm import FakeLLM
from flywheel.text import tokenize

EMAIL, KEY = "alice.walker@example.com", "sk-proj-Wq3vX9kLm2Pz7Rt5Yb8Nc4Hd6Jf1Gs0A"
ZH_EMAIL, ZH_EMAIL_2 = "zhang.wei@example.cn", "li.na@example.org"
PRIVATE = (EMAIL, ZH_EMAIL, ZH_EMAIL_2, KEY)

YAML = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}", model: fake-model, max_retries: 0}}
  judge: {{provider: openai_compat, base_url: "{base}", model: fake-judge, max_retries: 0}}
cache: {{exact: false}}
"""

# (question, served answer, majority verdict of the reviewers)
TRAFFIC = [
    (f"How long do refunds take? Mail me at {EMAIL}, my key is {KEY}", "Refunds take 30 days.", "fail"),
    (f"退款需要多久？我的邮箱是 {ZH_EMAIL}", "退款需要30天。", "fail"),
    (f"如何固定模型版本？请回复到 {ZH_EMAIL_2}", "在别名上设置 version。", "fail"),
    ("Where do I pin a model version?", "Set `version:` on the alias.", "pass"),
    ("今天天气怎么样？", "抱歉，我只回答产品问题。", "pass"),
    ("Can I change my delivery address?", "Yes, under Orders → Address.", "pass"),
]
USER_FIX_ZH = "在模型别名上设置 version: 字段来固定版本。"  # a user's correction, sent as feedback, not by a reviewer


def cli(root: Path, *args: str):
    return CliRunner().invoke(main, ["--project", str(root), *args])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("walk")
    with FakeLLM() as llm:
        llm.add(r"<disagreements>", "<criterion>The answer gives the right refund window.</criterion>",
                model="fake-judge")
        llm.add(r".", '{"reasoning": "looks fine", "verdict": "PASS"}', model="fake-judge")  # a lenient judge
        for question, answer, _ in TRAFFIC:
            llm.add(r"^" + question[:8].replace("?", r"\?"), answer, model="fake-model")
        with serving(root, YAML.format(base=llm.base_url)) as live:
            client = OpenAI(base_url=live.url + "/v1", api_key="none")
            ids = []
            for question, _, _ in TRAFFIC:
                raw = client.chat.completions.with_raw_response.create(
                    model="gpt", messages=[{"role": "user", "content": question}])
                ids.append(raw.headers["x-flywheel-trace-id"])
            from flywheel.tracing import tracer

            tracer.flush()
            yield {"root": root, "ids": ids, "url": live.url, "llm": llm, "client": client}


@pytest.fixture(scope="module")
def reviewed(world):
    """Feedback (HTTP, CLI, Python) and a binary queue labelled by two annotators (CLI and HTTP)."""
    import httpx

    root, ids, url = world["root"], world["ids"], world["url"]
    sent = httpx.post(url + "/v1/feedback", json={"trace_id": ids[0], "name": "thumbs", "value": "down",
                                                 "comment": f"wrong window; my key {KEY}"})
    assert sent.status_code in (200, 201), sent.text
    fixed = cli(root, "feedback", ids[2][:8], "--thumbs", "down", "--correction", USER_FIX_ZH)
    assert fixed.exit_code == 0, fixed.output
    flywheel.feedback(ids[4], "score", 0.9, project=str(root), actor="ana")
    made = cli(root, "review", "sample", "-n", "6", "--strategy", "random", "--overlap", "2", "--seed", "3",
               "--name", "daily", "--json")
    assert made.exit_code == 0, made.output
    items = {i["trace_id"]: i["id"] for i in json.loads(made.stdout)["items"]}
    corrections = {ids[0]: "Refunds take 14 days.", ids[1]: "退款需要14天。"}
    for n, (_, _, verdict) in enumerate(TRAFFIC):
        item, fix = items[ids[n]], corrections.get(ids[n])
        args = ["review", "label", item, "--annotator", "ana", "--verdict", verdict, "--reason", f"reason {n}"]
        done = cli(root, *args, *(["--correction", fix] if fix else []))
        assert done.exit_code == 0, done.output
        labelled = httpx.post(f"{url}/v1/review/items/{item}/label", json={"annotator": "bob", "verdict": verdict})
        assert labelled.status_code == 201, labelled.text
    return world


def _no_secrets(text: str) -> None:
    assert not [value for value in PRIVATE if value in text]


def test_feedback_prefix_too_short_says_so(world):
    short = cli(world["root"], "feedback", world["ids"][0][:4], "--thumbs", "down")
    assert short.exit_code == 2
    assert "too short" in short.output and "6 characters" in short.output and "Traceback" not in short.output
    unknown = cli(world["root"], "feedback", "ffffffffffff", "--thumbs", "down")
    assert unknown.exit_code == 2 and "no trace ffffffffffff" in unknown.output  # the API's and Python's words


def test_review_items_show_chinese_intact_and_secrets_masked(reviewed):
    with Store.open(Project(reviewed["root"]).store_url) as store:
        items = {i.trace_id: i for i in queues.items(store, queues.get_queue(store, "daily"))}
    zh = items[reviewed["ids"][1]]
    assert zh.input.startswith("退款需要多久？") and zh.output == "退款需要30天。"
    assert KEY not in items[reviewed["ids"][0]].input  # the secret scrubber ran on the stored span
    agreement = cli(reviewed["root"], "review", "agreement", "--queue", "daily", "--json")
    assert agreement.exit_code == 0 and json.loads(agreement.stdout)["fleiss_kappa"] == pytest.approx(1.0)


def test_promote_masks_takes_the_users_correction_and_is_idempotent(reviewed):
    root, ids = reviewed["root"], reviewed["ids"]
    args = ["promote", "--queue", "daily", "--to", "evals/regressions.yaml", "--target", "model:gpt", "--judge", "judge", "--json"]
    first = cli(root, *args)
    assert first.exit_code == 0, first.output
    suite_path = root / "evals" / "regressions.yaml"
    text = suite_path.read_text(encoding="utf-8")
    _no_secrets(text)
    cases = {c["metadata"]["source_trace_id"]: c for c in yaml.safe_load(text)["cases"]}
    assert set(cases) == set(ids[:3])
    assert "<EMAIL_ADDRESS_1>" in cases[ids[0]]["vars"]["question"]
    # no reviewer wrote a correction for the Chinese version question; the user's feedback did
    assert cases[ids[2]]["reference"] == USER_FIX_ZH
    # the number in a Chinese correction is a check, and the wrong one of the served answer is ruled out
    zh = cases[ids[1]]["checks"]
    assert {"contains-all": ["14"]} in zh and any("not-regex" in c and "30" in c["not-regex"] for c in zh)
    again = cli(root, *args)
    assert again.exit_code == 0 and json.loads(again.stdout)["written"] == []
    assert suite_path.read_text(encoding="utf-8") == text
    ran = cli(root, "eval", "evals/regressions.yaml")
    assert ran.exit_code == 1, ran.output  # the served answers are what the cases rule out


def test_numbers_inside_chinese_text():
    assert numbers("退款需要14天。") == ["14"]
    assert numbers("在14天内，费用为1,200元") == ["14", "1,200"]
    assert numbers("版本v2 和 abc123") == []


def test_export_twice_is_byte_identical_masked_and_reports_the_real_agreement(reviewed):
    root, ids = reviewed["root"], reviewed["ids"]
    out = root / "out" / "sft.jsonl"
    first = cli(root, "export", "sft", str(out), "--split", "1", "--json")
    assert first.exit_code == 0, first.output
    created = json.loads((out.parent / "sft.datasheet.json").read_text(encoding="utf-8"))["created_at"]
    for sheet_file in out.parent.glob("sft.datasheet.*"):  # as if the first export had run a while ago
        sheet_file.write_text(sheet_file.read_text(encoding="utf-8").replace(created, "2026-01-01T00:00:00Z"),
                              encoding="utf-8")
    before = {p.name: p.read_bytes() for p in sorted(out.parent.iterdir())}
    again = cli(root, "export", "sft", str(out), "--split", "1", "--json")
    assert again.exit_code == 0, again.output
    assert {p.name: p.read_bytes() for p in sorted(out.parent.iterdir())} == before
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    for written in before.values():
        _no_secrets(written.decode("utf-8"))
    answers = {r["source_trace_id"]: r["messages"][-1]["content"] for r in rows}
    assert answers[ids[2]] == USER_FIX_ZH  # a failed item no reviewer corrected takes the user's correction
    assert answers[ids[1]] == "退款需要14天。"
    sheet = json.loads((out.parent / "sft.datasheet.json").read_text(encoding="utf-8"))
    assert sheet["labels"]["n_labels"] == 12


def test_datasheet_agreement_counts_the_ties_it_leaves_out(tmp_path):
    from review_support import add_traces

    from flywheel.loop.labelled import collect

    with Store.open(Project(tmp_path).store_url) as store:
        tids = add_traces(store, [{"input": f"question {i}", "output": f"answer {i}"} for i in range(4)])
        q = queues.create_queue(store, kind="binary", overlap=2, trace_ids=tids, name="q")
        for n, item in enumerate(queues.items(store, q)):
            queues.label(store, item.id, "ana", "pass")
            queues.label(store, item.id, "bob", "pass" if n < 2 else "fail")  # two ties
        got = collect(store)
    assert got.dropped == {"tie between annotators": 2} and len(got.items) == 2
    assert got.n_labels == 8 and got.agreement["fleiss_kappa"] < 1.0


def test_calibrated_judge_prompt_holds_no_personal_data(reviewed):
    root, llm = reviewed["root"], reviewed["llm"]
    done = cli(root, "judge", "calibrate", "judge:The answer is correct.", "--queue", "daily", "--heldout", "0.5",
               "--model", "judge", "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["examples"] >= 1
    with Store.open(Project(root).store_url) as store:
        from sqlalchemy import select

        t = store.table("judge_calibrations")
        with store.connect() as conn:
            stored = [dict(r) for r in conn.execute(select(t.c.prompt, t.c.examples)).mappings()]
    assert stored
    for row in stored:
        _no_secrets(row["prompt"] + json.dumps(row["examples"], ensure_ascii=False))
    proposals = [r for r in llm.requests if "<disagreements>" in json.dumps(r, ensure_ascii=False)]
    assert proposals, "the judge model was asked to rewrite the criterion"
    for r in proposals:
        _no_secrets(json.dumps(r, ensure_ascii=False))


def test_monitor_counts_both_languages(reviewed):
    shown = cli(reviewed["root"], "monitor", "--since", "1d", "--group-by", "", "--json")
    assert shown.exit_code == 0, shown.output
    window = json.loads(shown.stdout)["windows"][-1]
    assert window["metrics"]["volume"] >= len(TRAFFIC)  # evals and judge calls of the other tests are traced too
    languages = window["details"]["languages"]
    assert languages.get("zh", 0) >= 3 and languages.get("en", 0) >= 3, languages


def test_topic_labels_leave_out_question_words():
    docs = [tokenize(f"堆肥可以用在番茄上吗{i}") for i in range(6)]
    background = {"退款": 40, "订单": 40}
    from collections import Counter

    words = keywords(docs, Counter(background), 80)
    assert "番茄" in words and "堆肥" in words and "可以" not in words


def test_new_topic_sampling_ignores_order_numbers_and_question_words(tmp_path):
    import time

    from review_support import add_traces

    from flywheel.feedback.sampling import sample_traces

    now = time.time()
    with Store.open(Project(tmp_path).store_url) as store:
        add_traces(store, [{"input": f"refund for order {i}", "started_at": now - 10 * 86_400 + i} for i in range(5)]
                   + [{"input": f"订单{i}退款", "started_at": now - 10 * 86_400 + i} for i in range(5)])
        add_traces(store, [{"input": "refund for order 99999", "started_at": now - 60},
                           {"input": "订单88888可以退款吗", "started_at": now - 50}])
        tomato = add_traces(store, [{"input": "番茄怎么施肥", "started_at": now - 40}])
        got = sample_traces(store, n=10, strategy="new-topic", since=now - 86_400, seed=1)
    assert set(got) == set(tomato)


def test_appending_to_a_suite_with_a_judge_does_not_warn_about_the_offline_model(world):
    root, ids = world["root"], world["ids"]
    made = cli(root, "promote", "--traces", ids[3], "--to", "evals/judged.yaml", "--target", "model:gpt",
               "--judge", "judge")
    assert made.exit_code == 0 and "note:" not in made.stderr, made.output
    added = cli(root, "promote", "--traces", ids[5], "--to", "evals/judged.yaml")
    assert added.exit_code == 0, added.output
    assert "note:" not in added.stderr  # the suite's defaults.judge is a real model, not the extractive default
    bare = cli(root, "promote", "--traces", ids[4], "--to", "evals/bare.yaml", "--target", "model:gpt")
    assert bare.exit_code == 0 and "offline extractive model" in bare.stderr

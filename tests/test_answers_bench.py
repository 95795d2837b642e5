"""`flywheel bench answers`: the question set is well-formed, and the benchmark runs the real docs_qa app over a
small set and scores it (answer phrase, false refusals, "I don't know"), per split and language."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from flywheel.bench.answers import load_questions, run
from flywheel.cli import main

QA_SET = Path(__file__).parent / "data" / "qa_set"


def test_the_shipped_question_set_is_well_formed():
    rows = [json.loads(line) for line in (QA_SET / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    refs = [json.loads(line) for line in (QA_SET / "cmrc.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len({r["id"] for r in rows + refs}) == len(rows) + len(refs)
    inside = [r for r in rows if r["in_corpus"]]
    assert len(inside) + len(refs) >= 50 and all(r["answer_phrases"] for r in inside)
    for lang in ("en", "zh"):
        assert sum(1 for r in rows if not r["in_corpus"] and r["lang"] == lang) >= 20
    assert {r["split"] for r in rows + refs} == {"dev", "test"}
    for r in inside:  # every answer phrase is really in the article it is about
        if r["source"].startswith("articles/"):
            text = (QA_SET / r["source"]).read_text(encoding="utf-8")
            assert any(p in text for p in r["answer_phrases"]), r["id"]


def test_missing_cmrc_data_is_reported_not_fatal(tmp_path):
    questions, notes = load_questions(QA_SET, tmp_path / "nowhere")
    assert questions and all(q["source"] != "cmrc2018" for q in questions)
    assert "CMRC 2018" in notes[0] and "CC BY-SA 4.0" in notes[0] and "--cmrc" in notes[0]


def test_the_benchmark_asks_through_the_app_and_scores_per_split_and_language(tmp_path):
    (tmp_path / "articles").mkdir()
    (tmp_path / "articles" / "a.md").write_text(
        "点击上方蓝字关注我们\n\n# 评估\n\n成对比较评估让裁判同时看到两个回答。\n它的好处是判断更稳定。\n", encoding="utf-8")
    rows = [
        {"id": "q1", "question": "成对比较评估有什么好处？", "answer_phrases": ["判断更稳定"], "lang": "zh",
         "in_corpus": True, "split": "dev", "source": "articles/a.md"},
        {"id": "q2", "question": "How do I pin a model version?", "answer_phrases": ["version:"], "lang": "en",
         "in_corpus": True, "split": "test", "source": "docs/configuration.md"},
        {"id": "q3", "question": "红烧肉怎么做？", "answer_phrases": [], "lang": "zh", "in_corpus": False,
         "split": "dev", "source": ""},
        {"id": "q4", "question": "How do I bake sourdough bread?", "answer_phrases": [], "lang": "en",
         "in_corpus": False, "split": "test", "source": ""},
    ]
    (tmp_path / "questions.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows),
                                              encoding="utf-8")
    result = run(tmp_path, None, show="dev")
    assert result["questions"] == 4 and result["corpus"]["boilerplate_dropped"]["subscribe"] >= 1
    assert result["dev"]["zh"] == {"in_corpus": 1, "out_of_corpus": 1, "answered_with_phrase": 1.0,
                                   "false_refusal": 0.0, "false_refusal_no_passage": 0.0, "idk_rate": 1.0}
    assert result["test"]["en"]["answered_with_phrase"] == 1.0 and result["test"]["en"]["idk_rate"] == 1.0
    assert result["misses"] == []  # and only dev questions could ever be listed


def test_registered_as_a_bench_command():
    out = CliRunner().invoke(main, ["bench", "answers", "--help"])
    assert out.exit_code == 0 and "--data" in out.output and "--cmrc" in out.output

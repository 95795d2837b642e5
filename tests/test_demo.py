"""`flywheel demo`: offline, on the documentation bundled with the package; every section's facts come from
`demo --json`; and the bundled copy stays in sync."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from conftest import need

from flywheel.cli import main
from flywheel.cli.app import bundled_docs
from flywheel.cli.demo import DEMO_QUESTIONS, INJECTION, PII_MESSAGE
from flywheel.cli.demo_loop import CORRECTION, PROMOTED_SUITE, WRONG_QUESTION

REPO = Path(__file__).resolve().parent.parent


def test_bundled_docs_are_the_repository_docs():
    """The package ships docs/ through the symlink src/flywheel/docs, so the demo corpus is the real docs."""
    packaged = bundled_docs()
    assert packaged.resolve() == (REPO / "docs").resolve()
    assert {"getting-started.md", "configuration.md", "retrieval.md", "tracing.md", "gateway.md",
            "zh/getting-started.md"} <= {str(p.relative_to(packaged)) for p in packaged.rglob("*.md")}


def run_demo(project: Path) -> dict:
    result = CliRunner().invoke(main, ["--project", str(project), "demo", "--json"])
    assert result.exit_code == 0, result.output
    assert "[1/7] Answers" in result.stderr and "[7/7] The flywheel" in result.stderr  # progress, as it happens
    return json.loads(result.stdout)


def check_answers(data: dict) -> None:
    answers = {a["question"]: a for a in data["answers"]}
    assert list(answers) == DEMO_QUESTIONS
    pin, zh, retry, mercury = (answers[q] for q in DEMO_QUESTIONS)
    config_ids = [c["id"] for c in pin["citations"] if c["source"] == "docs/configuration.md"]
    assert any(f"“To pin a model version, set `version:` on the alias.” [{n}]" in pin["answer"] for n in config_ids)
    assert zh["answer"].startswith("根据资料") and zh["citations"]
    assert all(c["source"].startswith("docs/zh/") for c in zh["citations"])  # Chinese question, Chinese sources
    assert "retr" in retry["answer"] and retry["citations"][0]["source"] == "docs/gateway.md"
    assert mercury["refused"] and mercury["citations"] == []
    assert mercury["answer"].startswith("I don't know")
    for a in data["answers"]:
        assert {f"[{c['id']}]" for c in a["citations"]} <= set(a["answer"].replace("]", "]\n").split())


def check_sections(data: dict, demo_dir: Path, semantic: bool) -> None:
    blocked, redacted = data["guards"]["blocked"], data["guards"]["redacted"]
    assert blocked["input"] == INJECTION and blocked["refused"] and blocked["refusal"] == "guard_blocked"
    assert any(a["check"] == "injection" and a["action"] == "block" and not a["passed"]
               for a in blocked["guard_actions"])
    assert redacted["input"] == PII_MESSAGE
    assert "jane.doe@example.com" not in redacted["model_saw"] and "<EMAIL_ADDRESS_1_" in redacted["model_saw"]
    assert "jane.doe@example.com" in redacted["answer"]  # restored for the user
    assert any(a["check"] == "pii" and a["action"] == "redact" for a in redacted["guard_actions"])

    caches = {row["ask"]: (row["cache"], row["model_calls"]) for row in data["cache"]["asks"]}
    assert caches["first"] == ("miss", 1) and caches["again"] == ("exact", 0)  # a hit calls no model
    assert (caches.get("reworded") == ("semantic", 0)) if semantic else "reworded" not in caches
    assert data["cache"]["semantic"] == ("on" if semantic else "skipped: needs the `local` extra")

    fallback = data["fallback"]
    assert fallback["alias"] == "primary" and fallback["fallbacks"] == ["backup"]
    assert fallback["model"].startswith("backup-model")
    assert fallback["attempts"] == 3 and fallback["failed_attempts"] == 2  # 1 try + 1 retry, then the fallback

    ev = data["eval"]
    assert ev["cases"] == 5 and 0 <= ev["passed"] <= 5
    assert ev["pass_rate"] == ev["passed"] / ev["cases"] and len(ev["failed"]) == ev["cases"] - ev["passed"]
    assert Path(ev["report"]).is_file() and Path(ev["report"]).read_text(encoding="utf-8").startswith("<!")

    traces = data["traces"]
    assert traces["stored"] == traces["expected"] == len(DEMO_QUESTIONS) + 2 + len(caches) + 1
    assert [s["title"].split(":")[0] for s in data["sections"]] == [
        "Answers with citations (flywheel's docs, the offline extractive model)", "Guards", "Cache",
        "Retries and fallback", "Evals", "Traces of it all", "The flywheel"]
    for s in data["sections"]:
        assert s["command"].startswith((f"flywheel --project {demo_dir} ",)) and "TRACE_ID" not in s["command"]
    assert f"traces show {fallback['trace_id']}" in data["sections"][3]["command"]
    check_loop(data, demo_dir)


def check_loop(data: dict, demo_dir: Path) -> None:
    """Feedback → review → agreement → monitor → promote, checked against the store, not only the summary."""
    from flywheel.config import Project
    from flywheel.feedback import for_trace, queues
    from flywheel.store import Store

    loop = data["loop"]
    answers = {a["question"]: a["trace_id"] for a in data["answers"]}
    wrong = answers[WRONG_QUESTION]
    assert loop["feedback"]["down"] == wrong and loop["feedback"]["up"] == answers[DEMO_QUESTIONS[0]]
    review = loop["review"]
    assert review["items"] == 4 and review["overlap"] == 2 and review["annotators"] == ["ana", "ben"]
    agreement = loop["agreement"]
    assert agreement["cohen_kappa"] == 0.5 and agreement["n_items"] == 4  # 3 of 4 agree; chance 1/2
    assert agreement["disagreements"] == ["What is the boiling point of mercury?"]
    monitor = loop["monitor"]["apps"]
    assert monitor["docs_qa"]["volume"] >= 4 and monitor["docs_qa"]["negative_feedback_rate"] > 0
    assert monitor["assistant"]["guard_trigger_rate"] > 0
    promote = loop["promote"]
    assert promote["cases"] == [f"trace-{wrong[:12]}"] and (promote["passed"], promote["total"]) == (0, 1)
    suite = (demo_dir / PROMOTED_SUITE).read_text(encoding="utf-8")
    assert WRONG_QUESTION in suite and "contains-all" in suite and "'408'" in suite

    with Store.open(Project.load(demo_dir).store_url) as store:
        events = {(e.name, str(e.value)) for e in for_trace(store, wrong)}
        assert ("correction", CORRECTION) in events and any(n == "thumbs" for n, _ in events)
        q = queues.get_queue(store, review["queue"])
        assert len(queues.labels(store, q)) == 8  # 4 items × overlap 2


def test_demo_without_the_local_extra_shows_every_section(tmp_path, monkeypatch):
    from flywheel.retrieval import embedders

    monkeypatch.setattr(embedders, "local_available", lambda: False)  # BM25-only fallback, as without [local]
    data = run_demo(tmp_path)
    demo_dir = tmp_path / ".flywheel" / "demo"
    assert Path(data["project"]) == demo_dir and (demo_dir / "flywheel.yaml").is_file()
    assert data["ingest"]["indexed"] == len(list(bundled_docs().rglob("*.md"))) and not data["ingest"]["skipped"]
    check_answers(data)
    check_sections(data, demo_dir, semantic=False)

    runner = CliRunner()
    traces = runner.invoke(main, ["--project", str(demo_dir), "traces", "--json", "--last", "50"])
    by_id = {r["trace_id"]: r for r in json.loads(traces.stdout)}
    for a in data["answers"]:
        assert by_id[a["trace_id"]]["app"] == "docs_qa"
    assert by_id[data["guards"]["blocked"]["trace_id"]]["app"] == "assistant"

    again = runner.invoke(main, ["--project", str(tmp_path), "demo"])
    assert again.exit_code == 0, again.output
    assert "0 indexed" in again.output  # nothing changed: nothing re-ingested
    assert "Q: " + DEMO_QUESTIONS[0] in again.output and "Sources" in again.output
    assert "cache miss, 1 model call" in again.output and "cache exact, 0 model calls" in again.output
    assert f"flywheel --project {demo_dir} traces" in again.output
    assert "[7/7] The flywheel: feedback → review → agreement → monitor → promote" in again.output
    for line in [f"👎 on {WRONG_QUESTION!r} with a correction", "feedback ", "--thumbs down",
                 "review sample -n 20 --overlap 2", "4 answers labelled by ana (1 fail) and ben (2 fail)",
                 "Cohen's κ ana–ben = 0.50 on 4 items", "review agreement --queue demo-",
                 "monitor, traces of this run:", "monitor --window 1h --since 1h",
                 f"in {PROMOTED_SUITE}; run now: 0/1 passed", "promote --queue demo-", f"eval {PROMOTED_SUITE}"]:
        assert line in again.output, line


def test_demo_with_the_local_embedder(tmp_path):
    from flywheel.retrieval.embedders import local_available

    need(local_available(), "the `local` extra (all-MiniLM-L6-v2) is not installed")
    data = run_demo(tmp_path)
    assert data["ingest"]["embedded"] > 0
    check_answers(data)
    check_sections(data, tmp_path / ".flywheel" / "demo", semantic=True)

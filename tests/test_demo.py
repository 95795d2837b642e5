"""`flywheel demo`: offline, on the documentation bundled with the package; and the bundled copy stays in sync."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from conftest import need

from flywheel.cli import main
from flywheel.cli.app import DEMO_QUESTIONS, bundled_docs

REPO = Path(__file__).resolve().parent.parent


def test_bundled_docs_are_the_repository_docs():
    """The package ships docs/ through the symlink src/flywheel/docs, so the demo corpus is the real docs."""
    packaged = bundled_docs()
    assert packaged.resolve() == (REPO / "docs").resolve()
    assert {"getting-started.md", "configuration.md", "retrieval.md", "tracing.md", "gateway.md",
            "zh/quickstart.md"} <= {str(p.relative_to(packaged)) for p in packaged.rglob("*.md")}


def run_demo(project: Path) -> dict:
    result = CliRunner().invoke(main, ["--project", str(project), "demo", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def check_answers(data: dict) -> None:
    answers = {a["question"]: a for a in data["answers"]}
    assert list(answers) == DEMO_QUESTIONS
    pin, zh, retry, mercury = (answers[q] for q in DEMO_QUESTIONS)
    config_ids = [c["id"] for c in pin["citations"] if c["source"] == "docs/configuration.md"]
    assert any(f"“To pin a model version, set `version:` on the alias.” [{n}]" in pin["answer"] for n in config_ids)
    assert zh["answer"].startswith("根据资料") and zh["citations"][0]["source"] == "docs/zh/quickstart.md"
    assert "A failed attempt is retried when the failure is worth retrying" in retry["answer"]
    assert retry["citations"][0]["source"] == "docs/gateway.md"
    assert mercury["refused"] and mercury["citations"] == []
    assert mercury["answer"].startswith("I don't know")
    for a in data["answers"]:
        assert {f"[{c['id']}]" for c in a["citations"]} <= set(a["answer"].replace("]", "]\n").split())


def test_demo_without_the_local_extra_answers_with_citations_and_traces(tmp_path, monkeypatch):
    from flywheel.retrieval import embedders

    monkeypatch.setattr(embedders, "local_available", lambda: False)  # BM25-only fallback, as without [local]
    data = run_demo(tmp_path)
    demo_dir = tmp_path / ".flywheel" / "demo"
    assert Path(data["project"]) == demo_dir and (demo_dir / "flywheel.yaml").is_file()
    assert data["ingest"]["indexed"] == len(list(bundled_docs().rglob("*.md"))) and not data["ingest"]["skipped"]
    check_answers(data)

    runner = CliRunner()
    traces = runner.invoke(main, ["--project", str(demo_dir), "traces", "--json"])
    by_id = {r["trace_id"]: r for r in json.loads(traces.output)}
    for a in data["answers"]:
        assert by_id[a["trace_id"]]["app"] == "docs_qa"

    again = runner.invoke(main, ["--project", str(tmp_path), "demo"])
    assert again.exit_code == 0, again.output
    assert "0 indexed" in again.output  # nothing changed: nothing re-ingested
    assert "Q: " + DEMO_QUESTIONS[0] in again.output and "Sources" in again.output
    assert f"flywheel --project {demo_dir} traces" in again.output


def test_demo_with_the_local_embedder(tmp_path):
    from flywheel.retrieval.embedders import local_available

    need(local_available(), "the `local` extra (all-MiniLM-L6-v2) is not installed")
    data = run_demo(tmp_path)
    assert data["ingest"]["embedded"] > 0
    check_answers(data)

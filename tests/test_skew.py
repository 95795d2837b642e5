"""`flywheel skew`: a topic, language and format present in production but missing from the suite, with the
traces to add."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from drift_support import DAY, START, traffic, write_project, write_suite

import flywheel.cli.drift  # noqa: F401 - registers `drift` and `skew` until the CLI lists them
from flywheel.bench.drift import write_traces
from flywheel.cli import main
from flywheel.store import Store


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    root = write_project(tmp_path_factory.mktemp("skew"))
    rnd = random.Random(11)
    records = traffic({"billing": 0.5, "garden": 0.3, "天气": 0.2}, 300, START, 3 * DAY, rnd)
    (root / ".flywheel").mkdir()
    with Store.open(f"sqlite:///{root / '.flywheel' / 'flywheel.db'}") as store:
        write_traces(store, records)
    suite = [r["question"] for r in traffic({"billing": 1.0}, 12, START, DAY, random.Random(12))]
    write_suite(root, "billing", suite)
    write_suite(root, "empty", [])
    return root, records


def run(root: Path, *args: str):
    return CliRunner().invoke(main, ["--project", str(root), *args])


def test_skew_finds_the_topic_and_language_the_suite_lacks(prod) -> None:
    root, records = prod
    res = run(root, "skew", "--suite", "billing", "--since", "2026-10-01", "--until", "2026-10-05", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["suite"]["n"] == 12 and doc["production"]["n"] == 300
    topic = {r["trace_id"]: r["topic"] for r in records}
    topics = [g for g in doc["gaps"] if g["kind"] == "topic"]
    assert topics, doc["gaps"]
    assert all(topic[t] != "billing" for g in topics for t in g["traces"])
    assert any(topic[g["traces"][0]] == "garden" for g in topics)
    garden = next(g for g in topics if topic[g["traces"][0]] == "garden")
    assert set(garden["keywords"]) & {"tomato", "plants", "compost", "seeds", "soil", "garden", "pests", "watering"}
    assert garden["command"].startswith("flywheel promote --traces " + ",".join(garden["traces"]))
    language = [g for g in doc["gaps"] if g["kind"] == "language"]
    assert [g["what"] for g in language] == ["zh"]
    assert all(topic[t] == "天气" for t in language[0]["traces"])
    assert doc["language"]["suite"] == {"en": 1.0}
    assert doc["commands"] == [g["command"] for g in doc["gaps"]]


def test_skew_text_output_and_bad_suites(prod) -> None:
    root, _ = prod
    res = run(root, "skew", "--suite", "billing", "--since", "2026-10-01", "--until", "2026-10-05")
    assert res.exit_code == 0, res.output
    assert "gap [topic]" in res.output and "flywheel promote --traces" in res.output
    for suite, message in (("nope", "no eval suite 'nope'"), ("empty", "no cases")):
        bad = run(root, "skew", "--suite", suite)
        assert bad.exit_code == 2 and message in bad.output


def test_skew_with_no_production_traces_says_so(prod) -> None:
    root, _ = prod
    res = run(root, "skew", "--suite", "billing", "--since", "2025-01-01", "--until", "2025-01-02", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["production"]["n"] == 0 and doc["gaps"] == [] and "no production traces" in doc["warning"]


def test_the_printed_promote_command_runs(prod, tmp_path: Path) -> None:
    """Each gap's command is what the user copies: it must parse and add the traces to the suite."""
    import shlex
    import shutil

    root = Path(shutil.copytree(prod[0], tmp_path / "project"))
    res = run(root, "skew", "--suite", "billing", "--since", "2026-10-01", "--until", "2026-10-05", "--json")
    gap = json.loads(res.output)["gaps"][0]
    argv = shlex.split(gap["command"])
    assert argv[0] == "flywheel"
    before = (root / "evals" / "billing.yaml").read_text()
    promoted = run(root, *argv[1:])
    assert promoted.exit_code == 0, promoted.output
    after = (root / "evals" / "billing.yaml").read_text()
    assert len(after) > len(before) and gap["traces"][0] in after

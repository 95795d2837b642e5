"""Drift: the statistics, stationary traffic without false alarms, topic and Chinese topic shifts, the stored
vectors (SQLite and PostgreSQL schema), and `flywheel drift --json`."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from drift_support import DAY, START, traffic, write_project, write_suite

import flywheel.cli.drift  # noqa: F401 - registers `drift` and `skew` until the CLI lists them
from flywheel.bench.drift import write_traces
from flywheel.cli import main
from flywheel.monitor.drift import Window, compare
from flywheel.monitor.drift_stats import chi2_sf, gamma_sf, pearson3_sf, roc_auc
from flywheel.monitor.vectors import load_rows, rows_from_texts, store_vectors
from flywheel.store import Store
from flywheel.store.db import schema_diff

MIX = {"billing": 0.5, "deploy": 0.45, "天气": 0.05}


def rows(records, embedder=None):
    return rows_from_texts([r["trace_id"] for r in records], [r["question"] for r in records],
                           [r["answer"] for r in records], embedder, [r["started_at"] for r in records])


def windows_of(records, per_window):
    out = []
    for i in range(0, len(records), per_window):
        part = rows(records[i:i + per_window])
        out.append(Window(float(part.started_at[0]), float(part.started_at[-1]), part))
    return out


def test_gamma_tail_and_auc_match_known_values() -> None:
    assert chi2_sf(3.841, 1) == pytest.approx(0.05, abs=1e-3)
    assert chi2_sf(18.307, 10) == pytest.approx(0.05, abs=1e-3)
    assert gamma_sf(2.0, 0.5) == pytest.approx(0.909796, abs=1e-5)
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert roc_auc(np.array([1.0, 1.0]), np.array([0, 1])) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    assert pearson3_sf(rng.normal(size=20_000), 3.0) == pytest.approx(0.00135, abs=4e-4)
    assert pearson3_sf(rng.chisquare(4, size=20_000), 18.467) == pytest.approx(0.001, abs=5e-4)
    assert pearson3_sf(rng.chisquare(4, size=20_000), 1.0) > 0.5


def test_stationary_traffic_over_50_windows_raises_at_most_one_false_alarm() -> None:
    rnd = random.Random(1)
    reference = rows(traffic(MIX, 600, START, DAY, rnd))
    stream = traffic(MIX, 50 * 60, START + DAY, 50 * DAY, rnd)
    out, alerts, summary = compare(reference, windows_of(stream, 60), seed=1)
    assert len(out) == 50
    assert sum(w["drifted"] for w in out) <= 1, alerts
    assert summary["threshold"] < 0.05 / 50  # Bonferroni over tests and windows


def test_topic_shift_is_detected_in_its_window_with_a_labelled_new_cluster() -> None:
    rnd = random.Random(2)
    reference = rows(traffic(MIX, 600, START, DAY, rnd))
    calm = traffic(MIX, 80, START + DAY, DAY, rnd)
    shifted = traffic({**MIX, "garden": 0.6}, 80, START + 2 * DAY, DAY, rnd)
    out, _, _ = compare(reference, [*windows_of(calm, 80), *windows_of(shifted, 80)], seed=2)
    assert not out[0]["drifted"]
    assert out[1]["input_drift"]["drifted"] and out[1]["input_drift"]["auc"] > 0.6  # 37% of the window is new
    garden = {r["trace_id"] for r in shifted if r["topic"] == "garden"}
    new = out[1]["new_clusters"]
    assert new, out[1]
    assert set(new[0]["examples"]) <= garden
    assert set(new[0]["keywords"]) & {"tomato", "plants", "compost", "seeds", "soil", "garden", "pests", "watering"}


def test_chinese_topic_shift_is_detected_with_chinese_keywords() -> None:
    """MiniLM maps most Chinese characters to [UNK]: the keyword side of the vectors has to carry the shift."""
    from flywheel.retrieval.embedders import local_available, local_embedder

    embedder = local_embedder() if local_available() else None
    rnd = random.Random(3)
    zh = {"天气": 0.5, "股票": 0.5}
    reference = rows(traffic(zh, 300, START, DAY, rnd), embedder)
    calm = traffic(zh, 80, START + DAY, DAY, rnd)
    shifted = traffic({**zh, "医院": 1.0}, 80, START + 2 * DAY, DAY, rnd)
    windows = []
    for part in (calm, shifted):
        r = rows(part, embedder)
        windows.append(Window(float(r.started_at[0]), float(r.started_at[-1]), r))
    out, _, _ = compare(reference, windows, seed=3)
    assert not out[0]["input_drift"]["drifted"]
    assert out[1]["input_drift"]["drifted"]
    keywords = {k for c in out[1]["new_clusters"] for k in c["keywords"]}
    assert keywords & {"挂号", "医生", "体检报告", "住院", "医保", "报销", "门诊", "时间", "药房", "体检", "报告"}, out[1]


def test_language_refusal_and_json_shifts_show_in_psi() -> None:
    rnd = random.Random(4)
    reference = rows(traffic(MIX, 600, START, DAY, rnd))
    zh = traffic({"天气": 0.5, "股票": 0.5}, 80, START + DAY, DAY, rnd)
    refusing = traffic(MIX, 80, START + 2 * DAY, DAY, rnd)
    for r in refusing[:30]:
        r["answer"] = "I don't know. The sources do not cover this question."
    broken = traffic(MIX, 80, START + 3 * DAY, DAY, rnd)
    for r in broken[:40]:
        r["answer"] = json.dumps({"answer": r["answer"]})[:25]
    out, _, _ = compare(reference, [*windows_of(zh, 80), *windows_of(refusing, 80), *windows_of(broken, 80)])
    assert out[0]["psi"]["input_language"]["drifted"]
    assert out[1]["psi"]["refused"]["drifted"]
    assert out[2]["psi"]["output_format"]["drifted"]
    assert out[2]["psi"]["output_format"]["shift"]["broken_json"][1] == pytest.approx(0.5)


@pytest.mark.parametrize("store_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_trace_vectors_table_matches_its_migration_and_is_filled_once(store_url: str) -> None:
    with Store.open(store_url) as store:
        assert schema_diff(store, ["trace_vectors"]) == []
        records = traffic(MIX, 30, START, DAY, random.Random(5))
        write_traces(store, records)
        assert store_vectors(store, None) == 30
        assert store_vectors(store, None) == 0
        got = load_rows(store, "none", since=START, until=START + DAY)
        assert len(got) == 30 and got.vectors["input"] is None
        assert got.trace_ids[0] == records[0]["trace_id"]


def test_vectors_of_an_embedder_that_glosses_chinese_are_kept_apart(store) -> None:
    """The local MiniLM reads Chinese traces through glosses since 2026-12-05: its vectors are stored under
    another key than those stored before, so a reference window from before never meets new windows (a false
    drift of every Chinese topic)."""
    before, glossing = _HashEmbedder(), _HashEmbedder()
    glossing.glossed = frozenset({"zh"})
    write_traces(store, traffic({"天气": 1.0}, 10, START, DAY, random.Random(6)))
    assert store_vectors(store, before) == 10 and store_vectors(store, glossing) == 10
    assert len(load_rows(store, "hash-384")) == len(load_rows(store, "hash-384+zh-gloss")) == 10


# ---------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def cli_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_project(tmp_path_factory.mktemp("drift"))
    rnd = random.Random(6)
    records = traffic(MIX, 300, START, 5 * DAY, rnd)  # 10-01 .. 10-05: the reference
    records += traffic(MIX, 60, START + 5 * DAY, DAY, rnd)  # 10-06: calm
    records += traffic({**MIX, "garden": 0.7}, 60, START + 6 * DAY, DAY, rnd)  # 10-07: a new topic
    (root / ".flywheel").mkdir()
    with Store.open(f"sqlite:///{root / '.flywheel' / 'flywheel.db'}") as store:
        write_traces(store, records)
    write_suite(root, "billing", ["How do I get a refund for my invoice?", "Why was my credit card charged twice?",
                                  "Where is the receipt for my subscription?"])
    write_suite(root, "empty", [])
    return root


def run(root: Path, *args: str):
    return CliRunner().invoke(main, ["--project", str(root), *args])


def test_drift_json_shape_empty_window_and_new_topic(cli_project: Path) -> None:
    res = run(cli_project, "drift", "--reference", "window:2026-10-01..2026-10-05", "--since", "2026-10-06",
              "--until", "2026-10-09", "--window", "1d", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert set(doc) >= {"reference", "windows", "alerts"}
    assert doc["reference"]["n"] == 300 and doc["reference"]["kind"] == "window"
    calm, shifted, empty = doc["windows"]
    for w in (calm, shifted):
        assert set(w) >= {"start", "end", "n", "input_drift", "output_drift", "psi", "new_clusters",
                          "vanished_clusters"}
        assert set(w["input_drift"]) == {"distance", "mmd", "p_value", "auc", "drifted"}
        assert set(w["psi"]) >= {"model", "app", "input_language", "output_length", "refused", "output_format"}
    assert not calm["drifted"] and shifted["input_drift"]["drifted"]
    assert shifted["new_clusters"] and set(shifted["new_clusters"][0]) >= {"label", "keywords", "n", "examples"}
    assert empty["n"] == 0 and empty["empty"] and empty["input_drift"] is None
    assert any(a["kind"] == "input_drift" and a["start"] == shifted["start"] for a in doc["alerts"])
    text = run(cli_project, "drift", "--reference", "window:2026-10-01..2026-10-05", "--since", "2026-10-06",
               "--until", "2026-10-09")
    assert text.exit_code == 0 and "new topic:" in text.output and "(no traces)" in text.output


def test_drift_against_an_eval_suite(cli_project: Path) -> None:
    res = run(cli_project, "drift", "--reference", "eval:billing", "--since", "2026-10-06", "--until", "2026-10-07",
              "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["reference"]["suite"] == "billing" and doc["reference"]["n"] == 3
    assert doc["windows"][0]["n"] == 60


@pytest.mark.parametrize(("args", "message"), [
    (["--reference", "eval:nope"], "no eval suite 'nope'"),
    (["--reference", "eval:empty"], "no cases"),
    (["--reference", "window:2026-10-05..2026-10-01"], "ends before it starts"),
    (["--reference", "window:2026-13-01..2026-10-02"], "cannot read"),
    (["--reference", "last-week"], "cannot read --reference"),
    (["--window", "fortnight"], "cannot read --window"),
])
def test_bad_input_is_a_user_error(cli_project: Path, args: list[str], message: str) -> None:
    res = run(cli_project, "drift", "--since", "2026-10-06", "--until", "2026-10-07", *args)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output


class _HashEmbedder:
    """A deterministic 384-dimension embedder (hashed words): enough to give traces vectors."""

    name = "hash-384"

    def embed(self, texts):
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in str(t).lower().split():
                out[i, hash(w) % 384] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_empty_reference_with_an_embedder_says_so_instead_of_crashing(tmp_path: Path) -> None:
    """Regression: an empty reference window, traces in the current one and an embedder set raised
    `ValueError: matmul … size 256 is different from 640` in the random projection."""
    from flywheel.monitor.drift import drift_report

    with Store.open(f"sqlite:///{tmp_path / 'f.db'}") as store:
        write_traces(store, traffic(MIX, 120, START + 5 * DAY, DAY, random.Random(7)))
        report = drift_report(store, _HashEmbedder(), reference=f"window:{START:.0f}..{START + DAY:.0f}",
                              since=START + 5 * DAY, until=START + 6 * DAY)
    assert report["reference"]["n"] == 0
    assert "the reference is empty" in report["reference"]["warning"]
    (only,) = report["windows"]
    assert only["n"] == 120 and only["input_drift"] is None and not only["drifted"]
    assert report["alerts"] == []


def test_cli_with_an_empty_reference_exits_0_and_says_so(cli_project: Path) -> None:
    res = run(cli_project, "drift", "--reference", "window:2026-09-01..2026-09-05", "--since", "2026-10-06",
              "--until", "2026-10-07")
    assert res.exit_code == 0, res.output
    assert "warning: the reference is empty" in res.output


def test_a_remainder_of_milliseconds_joins_the_last_window() -> None:
    """`--since 1d --window 1h` is read a moment before `until` defaults to now: the report ended with a window
    `09:55 .. 09:55` of a few milliseconds (n=0). A real remainder (a half window) is still its own window."""
    from flywheel.monitor.drift import split_windows

    rows = rows_from_texts(["t1", "t2"], ["a question", "another"], ["an answer", "another"], None,
                           started_at=[START + 10.0, START + 86400.0 - 1.0])
    windows = split_windows(rows, "time", 3600.0, START, START + 86400.0 + 0.004)
    assert len(windows) == 24 and windows[-1].end == START + 86400.0 + 0.004
    assert sum(len(w.rows) for w in windows) == 2
    half = split_windows(rows, "time", 3600.0, START, START + 1800.0 + 3600.0)
    assert [w.end - w.start for w in half] == [3600.0, 1800.0]

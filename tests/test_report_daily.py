"""`flywheel report daily`'s drift section: the day against the 7 days before it (drifted yes / no, new topics
with keywords), and a report that still comes out when drift cannot run (empty reference, a failing embedder)."""

from __future__ import annotations

import datetime as dt
import random

import numpy as np
import pytest
from drift_support import DAY, START, traffic

from flywheel.bench.drift import write_traces
from flywheel.monitor.report import daily, render_html, render_text
from flywheel.store import Store

MIX = {"billing": 0.5, "deploy": 0.45, "天气": 0.05}
DAY_8 = dt.date(2026, 10, 8)  # START is 2026-10-01: the reference is 10-01 .. 10-07


@pytest.fixture(scope="module")
def shifted_store(tmp_path_factory):
    rnd = random.Random(3)
    records = traffic(MIX, 350, START, 7 * DAY, rnd) + traffic({**MIX, "garden": 0.7}, 80, START + 7 * DAY, DAY, rnd)
    with Store.open(f"sqlite:///{tmp_path_factory.mktemp('report') / 'f.db'}") as store:
        write_traces(store, records)
        yield store


def test_drift_section_flags_the_new_topic_with_keywords(shifted_store):
    report = daily(shifted_store, day=DAY_8)
    d = report["drift"]
    assert d["ran"] and d["n"] == 80 and d["reference_n"] == 350
    assert d["input_drifted"] is True and d["output_drifted"] in (True, False)
    assert d["new_topics"] and all(t["keywords"] and t["n"] > 0 for t in d["new_topics"])
    assert "words only" in d["note"]  # no embedder given
    text = render_text(report)
    assert "drift vs the previous 7 days (80 traces vs 350): input drifted yes" in text
    assert f"new topic: {d['new_topics'][0]['label']}" in text
    assert "<h2>Drift</h2>" in render_html(report) and "input drifted yes" in render_html(report)


def test_a_calm_day_is_not_drifted(shifted_store):
    report = daily(shifted_store, day=dt.date(2026, 10, 7))  # 10-07 is calm traffic like the days before it
    d = report["drift"]
    assert d["ran"] and d["input_drifted"] is False and not d["alerts"]
    assert "input drifted no" in render_text(report)


def test_empty_reference_is_said_and_the_report_still_comes_out(shifted_store):
    report = daily(shifted_store, day=dt.date(2026, 10, 1))  # nothing before 10-01
    d = report["drift"]
    assert not d["ran"] and d["note"] == "no traces in the 7 days before to compare against"
    assert report["totals"]["volume"] == 50
    text = render_text(report)
    assert "drift vs the previous 7 days: not tested (no traces in the 7 days before" in text
    assert "--reference" not in text  # drift's own hint names an option `report daily` does not have


class _Down:
    name = "down"

    def embed(self, texts):
        raise ConnectionError("embedding server unreachable")


class _Hash:
    name = "hash-64"

    def embed(self, texts):
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in str(t).lower().split():
                out[i, sum(map(ord, w)) % 64] += 1.0
        return out


def test_a_failing_embedder_costs_only_the_drift_section(shifted_store):
    report = daily(shifted_store, day=DAY_8, embedder=_Down())
    assert not report["drift"]["ran"]
    assert "drift could not run: ConnectionError: embedding server unreachable" in report["drift"]["note"]
    assert report["totals"]["volume"] == 80 and "not tested" in render_text(report)


def test_with_an_embedder_and_without_drift(shifted_store):
    d = daily(shifted_store, day=DAY_8, embedder=_Hash())["drift"]
    assert d["ran"] and d["embedder"] == "hash-64" and d["note"] is None and d["input_drifted"] is True
    assert daily(shifted_store, day=DAY_8, drift=False)["drift"] is None

"""`flywheel bench review` at small sizes through the CLI: the JSON shape, statistics equal to the direct function
results, and a synthetic store that keeps the schema, holds what the sampler needs and is reused from its cache."""

from __future__ import annotations

import importlib.util
import json

import pytest
from click.testing import CliRunner

import flywheel.cli.bench  # noqa: F401  (registers `flywheel bench`)
from flywheel.bench.review import DATA_VERSION, simulated_labels, synthetic_store
from flywheel.cli import main
from flywheel.feedback.agreement import agreement_report

ITEMS, ANNOTATORS, N_BOOT, TRACES = 300, 4, 50, 3000
HAS_SAMPLING = importlib.util.find_spec("flywheel.feedback.sampling") is not None
HAS_CALIBRATION = importlib.util.find_spec("flywheel.evals.calibration_synthetic") is not None


def run_bench(cache_dir, *extra: str) -> dict:
    result = CliRunner().invoke(main, ["bench", "review", "--items", str(ITEMS), "--annotators", str(ANNOTATORS),
                                       "--n-boot", str(N_BOOT), "--traces", str(TRACES),
                                       "--cache-dir", str(cache_dir), "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("bench-review")


@pytest.fixture(scope="module")
def first_run(cache_dir):
    return run_bench(cache_dir)


def test_shape(first_run):
    assert set(first_run) >= {"agreement", "sampling", "calibration", "targets", "targets_met"}
    agreement = first_run["agreement"]
    assert agreement["items"] == ITEMS and agreement["annotators"] == ANNOTATORS
    assert agreement["labels"] == ITEMS * ANNOTATORS and agreement["n_boot"] == N_BOOT
    assert isinstance(agreement["seconds"], float) and len(agreement["runs_seconds"]) == 3
    assert len(agreement["pairs"]) == ANNOTATORS * (ANNOTATORS - 1) // 2
    assert set(first_run["targets_met"]) == {"agreement_seconds", "sampling_seconds"}


def test_agreement_statistics_equal_the_direct_report(first_run):
    direct = agreement_report(simulated_labels(ITEMS, ANNOTATORS), n_boot=N_BOOT, seed=0)
    agreement = first_run["agreement"]
    for key in ("fleiss_kappa", "fleiss_ci95", "krippendorff_alpha", "krippendorff_ci95", "pairs", "reasons"):
        assert agreement[key] == direct[key], key
    assert agreement["disagreements"] == len(direct["disagreements"])
    assert 0.2 < agreement["fleiss_kappa"] < 0.9  # flip rates 5–20 %: real but imperfect agreement


def test_simulated_annotators_flip_at_their_rates():
    labels = simulated_labels(4000, 5, seed=1)
    by_item: dict[str, dict[str, str]] = {}
    for item, annotator, verdict in labels:
        by_item.setdefault(item, {})[annotator] = verdict
    # annotator-1 flips 5 %, annotator-5 30 %: they disagree on ≈ 0.05·0.7 + 0.95·0.3 = 32 % of items
    disagree = sum(v["annotator-1"] != v["annotator-5"] for v in by_item.values()) / len(by_item)
    assert disagree == pytest.approx(0.32, abs=0.03)


@pytest.mark.skipif(not HAS_SAMPLING, reason="flywheel.feedback.sampling is not there yet")
def test_sampling_part(first_run, cache_dir):
    sampling = first_run["sampling"]
    assert sampling["traces"] == TRACES and sampling["sampled"] == {"random": 50, "mixed": 50}
    assert sampling["seconds"] == max(sampling["random_seconds"], sampling["mixed_seconds"])
    from flywheel.feedback.sampling import STRATEGIES

    assert set(sampling["mixed_strata"]) <= set(STRATEGIES) and sum(sampling["mixed_strata"].values()) == 50
    # every strategy found candidates in the synthetic store (so "mixed" exercises all of them)
    assert set(sampling["mixed_strata"]) == set(STRATEGIES)
    assert sampling["store"] == str(cache_dir / f"traces-{TRACES}-v{DATA_VERSION}.db")
    assert sampling["cached"] is False and sampling["build_seconds"] > 0


@pytest.mark.skipif(not HAS_SAMPLING, reason="flywheel.feedback.sampling is not there yet")
def test_second_run_reuses_the_cached_store(first_run, cache_dir):
    again = run_bench(cache_dir, "--skip-calibration")
    assert again["sampling"]["cached"] is True and again["sampling"]["build_seconds"] is None
    assert again["sampling"]["mixed_strata"] == first_run["sampling"]["mixed_strata"]  # same store, same seed
    assert again["calibration"] == {"skipped": "--skip-calibration"}


def test_synthetic_store_keeps_the_schema_and_leaves_nothing_half_built(tmp_path):
    from sqlalchemy import func, select

    from flywheel.store import Store
    from flywheel.store.db import schema_diff

    path, seconds = synthetic_store(500, tmp_path)
    assert seconds is not None and sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == [path.name]
    store = Store.open(f"sqlite:///{path}")
    try:
        assert schema_diff(store, ["traces", "feedback", "spans"]) == []  # dropped indexes all rebuilt
        with store.connect() as conn:
            traces = store.table("traces")
            assert conn.scalar(select(func.count()).select_from(traces)) == 500
            assert conn.scalar(select(func.count(func.distinct(traces.c.trace_id)))) == 500
            assert conn.scalar(select(func.min(func.length(traces.c.trace_id)))) == 32
            assert conn.scalar(select(func.count()).select_from(store.table("feedback"))) > 0
    finally:
        store.close()
    assert synthetic_store(500, tmp_path) == (path, None)


@pytest.mark.skipif(not HAS_CALIBRATION, reason="flywheel.evals.calibration_synthetic is not there yet")
def test_calibration_part_equals_the_direct_call(first_run):
    from flywheel.evals.calibration_synthetic import calibrate_synthetic

    calibration = dict(first_run["calibration"])
    assert calibration.pop("seconds") >= 0
    assert calibration == calibrate_synthetic(seed=0)


def test_skips_and_bad_sizes(cache_dir):
    result = run_bench(cache_dir, "--skip-sampling", "--skip-calibration")
    assert result["sampling"] == {"skipped": "--skip-sampling"}
    assert result["targets_met"]["sampling_seconds"] is None
    bad = CliRunner().invoke(main, ["bench", "review", "--items", "1", "--json"])
    assert bad.exit_code == 2 and "--items" in bad.output

"""`flywheel bench review`: agreement statistics, review-queue sampling and judge calibration, timed.

- agreement: `--items` × `--annotators` simulated binary verdicts (each annotator flips the true label with its
  own rate, 5 % to 30 %), `flywheel.feedback.agreement.agreement_report` with 1,000 bootstrap resamples; the
  time is the median of 3 runs of the report alone (the labels are built before); `cpu_seconds` is this
  process's CPU time (all threads), a steadier figure than wall time on a shared machine.
- sampling: a SQLite store of `--traces` synthetic traces (random hex ids, 3 apps, 2 tenants, one trace every
  0.5 s; 2.5 % of traces get one feedback row — about 1.3 % thumbs down, 1 % thumbs up, 0.2 % judge scores
  0.0–0.9 —, 0.2 % a blocked guard span, and the last 0.1 % of inputs new words: every strategy has
  candidates), filled with one INSERT … SELECT over a recursive CTE (see `synthetic_store`). The file is kept
  in `--cache-dir` (default ~/.cache/flywheel/bench-review/traces-<N>-v<DATA_VERSION>.db) and reused by later
  runs. Timed: `sample_traces(store, n=50, strategy="random", seed=1)` and the same with
  the default "mixed" strategy, each on a freshly opened store (cold statement cache, warm OS file cache).
- calibration: `flywheel.evals.calibration_synthetic.calibrate_synthetic(seed=0)` (a judge with a known bias,
  in process): Cohen's κ with the human verdicts on the held-out split before and after calibration.
A part whose module is missing reports {"skipped": reason}.
"""

from __future__ import annotations

import importlib
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

DATA_VERSION = 2  # bump when the synthetic store's contents change, so cached files are rebuilt
FLIP_RATES = (0.05, 0.10, 0.15, 0.20, 0.30)
DEFAULT_CACHE = Path.home() / ".cache" / "flywheel" / "bench-review"
TARGETS = {"agreement_seconds": 1.0, "sampling_seconds": 2.0}
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the first synthetic trace


def simulated_labels(items: int, annotators: int, *, seed: int = 0, p_pass: float = 0.6
                     ) -> list[tuple[str, str, str]]:
    """(item_id, annotator, verdict) for every item and annotator: annotator j gives the true verdict, flipped
    with probability FLIP_RATES[j % 5]."""
    rng = np.random.default_rng(seed)
    truth = rng.random(items) < p_pass
    flips = np.array([FLIP_RATES[j % len(FLIP_RATES)] for j in range(annotators)])
    verdicts = truth[:, None] ^ (rng.random((items, annotators)) < flips)
    names = [f"annotator-{j + 1}" for j in range(annotators)]
    return [(f"item-{i}", names[j], "pass" if v else "fail")
            for i, row in enumerate(verdicts.tolist()) for j, v in enumerate(row)]


def _agreement(items: int, annotators: int, n_boot: int) -> dict[str, Any]:
    from flywheel.feedback.agreement import agreement_report

    labels = simulated_labels(items, annotators)
    times, cpu, report = [], [], None
    for _ in range(3):
        start, start_cpu = time.perf_counter(), time.process_time()
        report = agreement_report(labels, n_boot=n_boot, seed=0)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    assert report is not None
    return {"items": items, "annotators": annotators, "labels": report["n_labels"], "n_boot": n_boot,
            "seconds": round(statistics.median(times), 4), "runs_seconds": [round(t, 4) for t in times],
            "cpu_seconds": round(statistics.median(cpu), 4),
            "fleiss_kappa": report["fleiss_kappa"], "fleiss_ci95": report["fleiss_ci95"],
            "krippendorff_alpha": report["krippendorff_alpha"], "krippendorff_ci95": report["krippendorff_ci95"],
            "pairs": report["pairs"], "disagreements": len(report["disagreements"]), "reasons": report["reasons"]}


# ----------------------------------------------------------------------------- the synthetic store

_FILL = """
WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < :n)
INSERT INTO traces (trace_id, name, kind, started_at, ended_at, latency_ms, status, error, input_preview,
                    output_preview, output_state, tenant, app, model, prompt_version, span_count, error_count,
                    input_tokens, output_tokens, cost_usd, session_id, user_id)
SELECT trace_id, 'docs_qa', 'app', :t0 + j * 0.5, :t0 + j * 0.5 + 0.8, 800 + (j % 700),
       CASE WHEN j % 50 = 0 THEN 'error' ELSE 'ok' END, CASE WHEN j % 50 = 0 THEN 'TimeoutError' END,
       CASE WHEN j >= :n - :novel THEN 'How do I enable novelfeature' || (j % 40) || ' for teamspace' || (j % 7)
            ELSE 'How do I configure topic' || (j % 300) || ' with option' || (j % 17) END,
       'Open settings and choose the option [1].', 'ok', 'tenant-' || (j % 2), 'app-' || (j % 3),
       'gpt-4o-mini-2024-07-18', 'v' || (1 + j % 4), 3, CASE WHEN j % 50 = 0 THEN 1 ELSE 0 END,
       120 + j % 400, 40 + j % 200, 0.0001, 'session-' || (j / 4), 'user-' || (j % 5000)
FROM (SELECT printf('%08x', (i * 4294967296) / :n) || lower(hex(randomblob(12))) AS trace_id, (i * :p) % :n AS j
      FROM seq)
"""

# Which traces get feedback or a guard span: a fixed hash of the row number (random() would be evaluated anew
# at every mention once SQLite flattens the subquery).
_FEEDBACK = """
INSERT INTO feedback (trace_id, source, name, value, actor, tenant, created_at)
SELECT trace_id,
       CASE WHEN r % 10 = 5 THEN 'judge' ELSE 'user' END,
       CASE WHEN r % 10 = 5 THEN 'label' ELSE 'thumbs' END,
       CASE WHEN r % 10 = 5 THEN CAST(((r / 1000) % 10) / 10.0 AS TEXT) WHEN r % 2 = 0 THEN '0' ELSE '1' END,
       CASE WHEN r % 10 = 5 THEN 'judge:helpful' ELSE 'user-' || (r % 5000) END,
       tenant, ended_at + 30
FROM (SELECT trace_id, tenant, ended_at, (rowid * 2654435761) % 1000003 AS r FROM traces)
WHERE r % 1000 < 25
"""

_GUARD_SPANS = """
INSERT INTO spans (span_id, trace_id, name, kind, start_ns, end_ns, latency_ms, output_state, attributes,
                   tenant, app)
SELECT substr(trace_id, 17), trace_id, 'guard.input', 'guard', CAST(started_at * 1e9 AS INTEGER),
       CAST(started_at * 1e9 AS INTEGER) + 2000000, 2.0, 'ok', '{"flywheel.guard.action": "block"}', tenant, app
FROM traces WHERE (rowid * 40503) % 1000 < 2
"""


def synthetic_store(traces: int, cache_dir: Path) -> tuple[Path, float | None]:
    """(path of the SQLite store with `traces` synthetic traces, seconds it took to build or None if cached).

    The schema comes from `Store.open` (migrations); the rows go in through plain sqlite3 with the journal off,
    in primary-key order (ids are an evenly spaced 8-hex prefix + 24 random hex: uniform over the id space, as
    the sampler's random strategy assumes), with the traces indexes dropped during the insert and rebuilt after
    it (a sort instead of 1M random B-tree inserts). Time, app, tenant … follow a permutation of the row number,
    so they do not line up with id order. Built under a temporary name and renamed when complete, so an
    interrupted build leaves nothing."""
    import sqlite3

    from flywheel.store import Store

    path = cache_dir / f"traces-{traces}-v{DATA_VERSION}.db"
    if path.exists():
        return path, None
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache_dir / f".building-{os.getpid()}-{path.name}"
    start = time.perf_counter()
    try:
        Store.open(f"sqlite:///{partial}").close()
        conn = sqlite3.connect(partial, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA cache_size=-200000")
            indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                                   "AND tbl_name = 'traces' AND sql IS NOT NULL").fetchall()
            conn.execute("BEGIN")
            for name, _sql in indexes:
                conn.execute(f'DROP INDEX "{name}"')
            step = int(traces * 0.6180339887)  # golden-ratio stride: i → i·step mod n scatters, and permutes
            while math.gcd(step, traces) != 1:  # when step and n are coprime
                step += 1
            conn.execute(_FILL, {"n": traces, "t0": T0, "novel": max(1, traces // 1000), "p": step})
            for _name, sql in indexes:
                conn.execute(sql)
            conn.execute(_FEEDBACK)
            conn.execute(_GUARD_SPANS)
            conn.execute("COMMIT")
            conn.execute("ANALYZE")
            conn.execute("PRAGMA journal_mode=WAL")
        finally:
            conn.close()
    except BaseException:
        for leftover in cache_dir.glob(f"{partial.name}*"):
            leftover.unlink(missing_ok=True)
        raise
    os.replace(partial, path)
    return path, round(time.perf_counter() - start, 2)


def _timed_sample(path: Path, strategy: str) -> tuple[float, list[str]]:
    from flywheel.feedback.sampling import sample_traces
    from flywheel.store import Store

    store = Store.open(f"sqlite:///{path}")
    try:
        start = time.perf_counter()
        ids = sample_traces(store, n=50, strategy=strategy, seed=1)
        return round(time.perf_counter() - start, 4), ids
    finally:
        store.close()


def _sampling(traces: int, cache_dir: Path) -> dict[str, Any]:
    try:
        importlib.import_module("flywheel.feedback.sampling")
    except ModuleNotFoundError as exc:
        return {"skipped": f"flywheel.feedback.sampling is not available ({exc.name})"}
    path, build_s = synthetic_store(traces, cache_dir)
    random_s, random_ids = _timed_sample(path, "random")
    mixed_s, mixed_ids = _timed_sample(path, "mixed")
    strata: dict[str, int] = {}
    sample_strata = getattr(importlib.import_module("flywheel.feedback.sampling"), "sample_strata", None)
    if sample_strata is not None:  # which strategy picked each trace of the mixed sample
        from flywheel.store import Store

        store = Store.open(f"sqlite:///{path}")
        try:
            for _tid, strategy in sample_strata(store, n=50, strategy="mixed", seed=1):
                strata[strategy] = strata.get(strategy, 0) + 1
        finally:
            store.close()
    return {"traces": traces, "seconds": max(random_s, mixed_s), "random_seconds": random_s,
            "mixed_seconds": mixed_s, "sampled": {"random": len(random_ids), "mixed": len(mixed_ids)},
            "mixed_strata": dict(sorted(strata.items())), "store": str(path), "build_seconds": build_s,
            "cached": build_s is None}


def _calibration() -> dict[str, Any]:
    try:
        module = importlib.import_module("flywheel.evals.calibration_synthetic")
    except ModuleNotFoundError as exc:
        return {"skipped": f"flywheel.evals.calibration_synthetic is not available ({exc.name})"}
    start = time.perf_counter()
    result = dict(module.calibrate_synthetic(seed=0))
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result


def _met(result: dict[str, Any]) -> dict[str, bool | None]:
    agreement, sampling = result["agreement"], result["sampling"]
    return {
        "agreement_seconds": agreement["seconds"] <= TARGETS["agreement_seconds"],
        "sampling_seconds": None if "skipped" in sampling else sampling["seconds"] <= TARGETS["sampling_seconds"],
    }


@click.command()
@click.option("--items", default=10_000, show_default=True, type=click.IntRange(2),
              help="Items of the simulated annotation set.")
@click.option("--annotators", default=5, show_default=True, type=click.IntRange(2),
              help="Annotators labelling every item.")
@click.option("--n-boot", default=1000, show_default=True, type=click.IntRange(0), help="Bootstrap resamples.")
@click.option("--traces", default=1_000_000, show_default=True, type=click.IntRange(100),
              help="Traces in the synthetic SQLite store the sampler reads.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the synthetic store is kept between runs [default: ~/.cache/flywheel/bench-review].")
@click.option("--skip-sampling", is_flag=True, help="Leave out the sampling part.")
@click.option("--skip-calibration", is_flag=True, help="Leave out the judge-calibration part.")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON result.")
def command(items: int, annotators: int, n_boot: int, traces: int, cache_dir: Path | None, skip_sampling: bool,
            skip_calibration: bool, as_json: bool) -> None:
    """Agreement statistics, review-queue sampling over 1M traces and judge calibration, timed."""
    from flywheel.cli import emit_json

    def say(message: str) -> None:
        if not as_json:
            click.echo(message, err=True)

    say(f"agreement: {items} items × {annotators} annotators, {n_boot} bootstrap resamples …")
    result: dict[str, Any] = {"agreement": _agreement(items, annotators, n_boot)}
    if skip_sampling:
        result["sampling"] = {"skipped": "--skip-sampling"}
    else:
        folder = cache_dir or DEFAULT_CACHE
        if not (folder / f"traces-{traces}-v{DATA_VERSION}.db").exists():
            say(f"building a store of {traces} synthetic traces in {folder} (once) …")
        result["sampling"] = _sampling(traces, folder)
    say("judge calibration on the synthetic set …")
    result["calibration"] = {"skipped": "--skip-calibration"} if skip_calibration else _calibration()
    result["targets"] = TARGETS
    result["targets_met"] = _met(result)
    result["python"] = sys.version.split()[0]
    emit_json(result)



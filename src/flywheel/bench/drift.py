"""`flywheel bench drift`: drifts injected at known windows of a synthetic trace stream, scored by flywheel and
by Evidently side by side.

The stream is built from real question text (`../shared/data`): English ML questions from ask-fsdl and news
sentences from MRPC turned into questions, answered by MRPC sentences; Chinese CMRC 2018 questions answered by
their passage; a fifth of the answers are JSON (a JSON route). A reference period (--reference-windows) is
followed by --windows windows of --per-window traces. Five drifts are injected, each for three windows: a topic
shift (40% of questions about life advice), an output-length shift (answers four times longer), broken JSON
(most JSON answers cut off), a language shift (Chinese from 5% to 45% of the questions) and a refusal spike
(3% → 35% of answers decline). The traces are written to a temporary SQLite store, their vectors computed
with the local embedder and stored, then `flywheel drift` runs over the store (timed: `seconds_per_10k_traces`).

Evidently scores the same windows against the same reference on the same stored MiniLM vectors (input and
output) with its EmbeddingsDrift default, the domain classifier `ModelDriftMethod` (bootstrap when the reference
has < 1,000 rows, exactly as its metric decides); its per-window time is measured on one full
`Report([EmbeddingsDrift…])` run as shipped (which adds a t-SNE for the plot) and extrapolated.

A drift is detected when its first or second window alarms (delay ≤ 1 window); an alarm in a window outside
every injected interval is a false alarm.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import click
import numpy as np

from flywheel.bench import data_root, dataset_dir
from flywheel.errors import UserError
from flywheel.text.install import pip_install

DRIFTS = ("topic", "length", "json", "language", "refusal")
INSTALL_EVIDENTLY = "pip install evidently 'pandas<3'"
REFUSALS_EN = ["I don't know. The sources do not cover this question.",
               "I'm sorry, but I cannot answer that from the provided documents."]
REFUSALS_ZH = ["资料中没有提及这个问题，无法回答。", "抱歉，我无法根据提供的资料回答这个问题。"]
START = 1_790_812_800.0  # 2026-10-01T00:00:00Z
WINDOW_S = 3600.0


def load_sources(root: Path | None) -> dict[str, list[tuple[str, str]]]:
    """topic → (question, answer) pairs from ask-fsdl, MRPC and CMRC 2018."""
    ask = dataset_dir(root, "askfsdl-scope", "drift")
    mrpc = dataset_dir(root, "mrpc", "drift")
    cmrc = dataset_dir(root, "cmrc2018-dev", "drift")
    rows = [json.loads(line) for line in (ask / "queries.jsonl").read_text(encoding="utf-8").splitlines() if line]
    pairs = []
    for line in (mrpc / "msr_paraphrase_train.txt").read_text(encoding="utf-8-sig").splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) == 5:
            pairs.append((parts[3].strip(), parts[4].strip()))
    answers = [b for _, b in pairs]
    rnd = random.Random(7)
    ml = [(r["query"], rnd.choice(answers)) for r in rows if r["relevance"]]
    life = [(r["query"], rnd.choice(answers)) for r in rows if not r["relevance"]]
    news = [(f"Is it true that {a[0].lower()}{a[1:].rstrip('.')}?", b) for a, b in pairs[:3000]]
    passages = {}
    for line in (cmrc / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        if line:
            d = json.loads(line)
            passages[d["_id"]] = d["text"]
    zh = []
    for line in (cmrc / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        if line:
            d = json.loads(line)
            pid = d["_id"].rsplit("_QUERY_", 1)[0]
            zh.append((d["text"], passages.get(pid, "")[:120]))
    return {"ml": ml, "news": news, "life": life, "zh": zh}


def injection_plan(windows: int) -> dict[str, tuple[int, int]]:
    """drift → (first window, last window + 1): three windows each, evenly spread after a stationary start."""
    span = max(4, windows // (len(DRIFTS) + 1))
    return {d: (span * (i + 1) - 2, span * (i + 1) + 1) for i, d in enumerate(DRIFTS)
            if span * (i + 1) + 1 <= windows}


def record(sources: dict[str, list[tuple[str, str]]], active: str | None, rnd: random.Random) -> dict[str, Any]:
    mix = {"ml": 0.45, "news": 0.50, "zh": 0.05}
    if active == "topic":
        mix = {"ml": 0.27, "news": 0.30, "zh": 0.03, "life": 0.40}
    elif active == "language":
        mix = {"ml": 0.26, "news": 0.29, "zh": 0.45}
    topic = rnd.choices(list(mix), weights=list(mix.values()))[0]
    question, answer = rnd.choice(sources[topic])
    zh = topic == "zh"
    if active == "length" and rnd.random() < 0.7:
        extra = [rnd.choice(sources["zh" if zh else "news"])[1] for _ in range(3)]
        answer = " ".join([answer, *extra])
    if rnd.random() < (0.35 if active == "refusal" else 0.03):
        answer = rnd.choice(REFUSALS_ZH if zh else REFUSALS_EN)
    elif rnd.random() < 0.2:
        answer = json.dumps({"answer": answer, "sources": [1]}, ensure_ascii=False)
        if active == "json" and rnd.random() < 0.8:
            answer = answer[: len(answer) // 2]
    return {"question": question, "answer": answer, "topic": topic}


def generate(sources: dict[str, list[tuple[str, str]]], *, windows: int, per_window: int, reference_windows: int,
             inject: bool = True, seed: int = 0) -> tuple[list[dict[str, Any]], dict[str, tuple[int, int]]]:
    """Records with `started_at` (reference first, then the windows) and the injection plan."""
    rnd = random.Random(seed)
    plan = injection_plan(windows) if inject else {}
    out = []
    for w in range(-reference_windows, windows):
        active = next((d for d, (a, b) in plan.items() if a <= w < b), None)
        for i in range(per_window):
            r = record(sources, active, rnd)
            r["started_at"] = START + (w + reference_windows) * WINDOW_S + (i + 0.5) * WINDOW_S / per_window
            r["trace_id"] = uuid.UUID(int=rnd.getrandbits(128)).hex
            out.append(r)
    return out, plan


def write_traces(store: Any, records: list[dict[str, Any]]) -> None:
    """Each record as a trace with one root span (inputs {question}, outputs {answer})."""
    from flywheel.store.schema import spans, traces

    t_rows, s_rows = [], []
    for r in records:
        t_rows.append({"trace_id": r["trace_id"], "name": "docs_qa", "kind": "app", "started_at": r["started_at"],
                       "ended_at": r["started_at"] + 0.5, "latency_ms": 500.0, "status": "ok",
                       "input_preview": r["question"][:200], "output_preview": r["answer"][:200],
                       "output_state": "ok", "app": "docs_qa", "model": "small", "span_count": 1})
        s_rows.append({"span_id": r["trace_id"][:16], "trace_id": r["trace_id"], "parent_id": None,
                       "name": "docs_qa", "kind": "app", "start_ns": int(r["started_at"] * 1e9),
                       "end_ns": int((r["started_at"] + 0.5) * 1e9), "latency_ms": 500.0,
                       "inputs": {"question": r["question"]}, "outputs": {"answer": r["answer"]},
                       "output_state": "ok", "app": "docs_qa", "model": "small"})
    with store.begin() as conn:
        for i in range(0, len(t_rows), 1000):
            conn.execute(traces.insert(), t_rows[i:i + 1000])
            conn.execute(spans.insert(), s_rows[i:i + 1000])


def score(alarms: list[bool], plan: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """detected (first or second window of each drift alarms), false alarms outside injected windows, delays."""
    injected: set[int] = set()
    delays, detected = {}, 0
    for drift, (a, b) in plan.items():
        injected.update(range(a, b))
        hit = next((w - a for w in range(a, b) if alarms[w]), None)
        delays[drift] = hit
        detected += hit is not None and hit <= 1
    found = [d for d in delays.values() if d is not None and d <= 1]
    return {"detected": detected, "injected": len(plan),
            "false_alarms": sum(1 for w, a in enumerate(alarms) if a and w not in injected),
            "windows": len(alarms), "mean_delay_windows": round(float(np.mean(found)), 3) if found else None,
            "delays": delays,
            **({} if found else {"mean_delay_windows_reason": "nothing injected" if not plan else
                                 "no injected drift was detected within 1 window"})}


def evidently_scores(ref: Any, windows: list[Any], time_one: bool = True) -> dict[str, Any]:
    """Evidently's EmbeddingsDrift decision per window (input or output drifted), on the same vectors."""
    try:
        import pandas as pd
        from evidently.legacy.metrics.data_drift.embedding_drift_methods import model
    except ImportError as exc:
        return {"skipped": f"evidently is not importable ({exc}); {INSTALL_EVIDENTLY}"}
    cols: dict[str, list[str]] = {}

    def frame(vecs: np.ndarray, side: str) -> Any:
        cols[side] = [f"{side}_{i}" for i in range(vecs.shape[1])]
        return pd.DataFrame(vecs, columns=cols[side])

    refs = {s: frame(ref.vectors[s], s) for s in ("input", "output")}
    method = model(bootstrap=len(ref) < 1000)  # what EmbeddingsDrift picks when drift_method is None
    alarms, started = [], time.perf_counter()
    for w in windows:
        flags = [bool(method(frame(w.rows.vectors[s], s), refs[s].copy())[1]) for s in ("input", "output")]
        alarms.append(any(flags))
    direct = time.perf_counter() - started
    out: dict[str, Any] = {"alarms": alarms, "seconds_direct": direct}
    if time_one and windows:
        from evidently import DataDefinition, Dataset, Report
        from evidently.metrics import EmbeddingsDrift

        dd = DataDefinition(embeddings={s: cols[s] for s in ("input", "output")})
        both = pd.concat([refs["input"], refs["output"]], axis=1)
        w = windows[0].rows
        cur = pd.concat([frame(w.vectors["input"], "input"), frame(w.vectors["output"], "output")], axis=1)
        t0 = time.perf_counter()
        Report([EmbeddingsDrift(embeddings_name="input"), EmbeddingsDrift(embeddings_name="output")]).run(
            Dataset.from_pandas(cur, data_definition=dd), Dataset.from_pandas(both, data_definition=dd))
        out["seconds_report_one_window"] = time.perf_counter() - t0
    return out


def run(*, windows: int = 50, per_window: int = 200, reference_windows: int = 5, seed: int = 0,
        data: str | None = None, evidently: bool = True, inject: bool = True, embed: bool = True
        ) -> dict[str, Any]:
    from flywheel.monitor.drift import drift_report
    from flywheel.monitor.vectors import load_rows, store_vectors
    from flywheel.retrieval.embedders import local_available, local_embedder
    from flywheel.store import Store

    sources = load_sources(data_root(data))
    records, plan = generate(sources, windows=windows, per_window=per_window, reference_windows=reference_windows,
                             inject=inject, seed=seed)
    embedder = local_embedder() if embed and local_available() else None
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-drift-") as tmp:
        store = Store.open(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            write_traces(store, records)
            t0 = time.perf_counter()
            store_vectors(store, embedder)
            embed_s = time.perf_counter() - t0
            ref_end = START + reference_windows * WINDOW_S
            until = ref_end + windows * WINDOW_S
            t0 = time.perf_counter()
            report = drift_report(store, embedder, reference=f"window:{START}..{ref_end}", since=ref_end,
                                  until=until, window="1h", seed=seed)
            seconds = time.perf_counter() - t0
            alarms = [bool(w.get("drifted")) for w in report["windows"]]
            n = sum(w["n"] for w in report["windows"]) + report["reference"]["n"]
            out: dict[str, Any] = score(alarms, plan)
            out["seconds_per_10k_traces"] = round(seconds * 10_000 / max(1, n), 3)
            out["alert_kinds"] = _kinds(report, plan)
            if evidently and embedder is not None:
                from flywheel.monitor.drift import split_windows

                name = embedder.name
                ref = load_rows(store, name, since=START, until=ref_end)
                cur = split_windows(load_rows(store, name, since=ref_end, until=until), "time", WINDOW_S, ref_end,
                                    until)
                ev = evidently_scores(ref, cur)
                if "skipped" in ev:
                    out["evidently"] = ev
                else:
                    e = score(ev["alarms"], plan)
                    per_window_s = ev.get("seconds_report_one_window")
                    e["seconds_per_10k_traces"] = round(per_window_s * len(cur) * 10_000 / max(1, n), 1) \
                        if per_window_s else None
                    e["seconds_per_10k_traces_without_plot"] = round(ev["seconds_direct"] * 10_000 / max(1, n), 2)
                    e["method"] = "EmbeddingsDrift default (ModelDriftMethod, domain classifier), input or output"
                    out["evidently"] = e
            elif evidently:
                out["evidently"] = {"skipped": f"the local embedder is not installed ({pip_install('local')})"}
        finally:
            store.close()
    out.update(traces=n, per_window=per_window, embed_seconds=round(embed_s, 1),
               embedder=embedder.name if embedder else "none (keywords only)", plan=plan)
    return out


def _kinds(report: dict[str, Any], plan: dict[str, tuple[int, int]]) -> dict[str, list[str]]:
    """Per injected drift, the alert kinds raised in its windows (which test caught it)."""
    out = {}
    for drift, (a, b) in plan.items():
        kinds = {al["kind"] for w in report["windows"][a:b] for al in report["alerts"]
                 if al["start"] == w["start"]}
        out[drift] = sorted(kinds)
    return out


@click.command()
@click.option("--windows", default=50, show_default=True, type=click.IntRange(min=6), help="Windows scored.")
@click.option("--per-window", default=200, show_default=True, type=click.IntRange(min=10), help="Traces per window.")
@click.option("--reference-windows", default=5, show_default=True, type=click.IntRange(min=1),
              help="Windows of traffic before the stream that form the reference.")
@click.option("--no-evidently", is_flag=True, help="Score with flywheel only.")
@click.option("--stationary", is_flag=True, help="Inject nothing (every alarm is a false alarm).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--data", type=click.Path(file_okay=False), help="Benchmark data folder "
              "[$FLYWHEEL_BENCH_DATA, else ../shared/data].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON only.")
def command(windows: int, per_window: int, reference_windows: int, no_evidently: bool, stationary: bool, seed: int,
            data: str | None, as_json: bool) -> None:
    """Injected drifts detected, false alarms and delay, flywheel vs Evidently on the same stream."""
    try:
        out = run(windows=windows, per_window=per_window, reference_windows=reference_windows, seed=seed,
                  data=data, evidently=not no_evidently, inject=not stationary)
    except FileNotFoundError as exc:
        raise UserError(f"benchmark data missing: {exc}", hint="pass --data DIR") from None
    click.echo(json.dumps(out, ensure_ascii=False, indent=None if as_json else 2))

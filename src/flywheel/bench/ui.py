"""`flywheel bench ui`: how fast the dashboard's trace pages answer on a big store, over real HTTP.

Setup: a synthetic SQLite store — `--traces` traces of `--spans-per-trace` spans each (default 100,000 × 10 = 1M
spans, written directly in bulk, cached by size under `--cache-dir`), plus one trace of `--big-spans` spans with
2 KB bodies and thumbs feedback on 2% of the traces — served by `flywheel serve`'s app with the dashboard mounted
(uvicorn in its own process, 127.0.0.1). One client measures, after warm-up, `--runs` sequential requests each:

- trace_list_p50_ms: GET /ui/traces (the first page, 50 rows; facets load in a second request, `facets_p50_ms`)
- trace_list_filtered_p50_ms: GET /ui/traces?model=model-3&status=error&latency_min=200
- big_trace_first_byte_ms (p50) and big_trace_html_kb: GET /ui/traces/{the big trace}

Targets: lists ≤ 150 ms p50; the big trace's first response ≤ 300 ms and ≤ 200 KB.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from flywheel.bench.gateway import percentile

BIG_TRACE = "b1" * 16
FILTERED = "model=model-3&status=error&latency_min=200"
SCHEMA_VERSION = 1  # bump when the synthetic rows change: cached stores are rebuilt


def bench_app() -> Any:
    """The uvicorn factory run in the server process: `flywheel serve`'s app with the dashboard mounted."""
    from flywheel import web
    from flywheel.server import create_app

    app = create_app(os.environ["FLYWHEEL_PROJECT"], host="127.0.0.1")
    web.mount(app, app.state.flywheel)
    return app


def build_store(path: Path, traces: int, spans_per_trace: int, big_spans: int) -> None:
    """Write the synthetic store to `path` (through a temporary file: never a half-built cache)."""
    from flywheel.store import Store

    tmp = path.with_suffix(".building")
    tmp.unlink(missing_ok=True)
    Store.open(f"sqlite:///{tmp}").close()  # the schema, by the migrations
    rng = random.Random(7)
    now = time.time()
    conn = sqlite3.connect(tmp)
    conn.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
    span_sql = ("INSERT INTO spans (span_id, trace_id, parent_id, name, kind, start_ns, end_ns, latency_ms, inputs, "
                "outputs, output_state, attributes, model, input_tokens, output_tokens, cost_usd, tenant, app) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
    trace_sql = ("INSERT INTO traces (trace_id, name, kind, started_at, ended_at, latency_ms, status, input_preview, "
                 "output_preview, output_state, tenant, app, model, prompt_version, span_count, error_count, "
                 "input_tokens, output_tokens, cost_usd, session_id, user_id) "
                 "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
    kinds = ["guard", "cache", "retrieval", "llm", "tool"]
    batch_t: list[tuple[Any, ...]] = []
    batch_s: list[tuple[Any, ...]] = []
    feedback: list[tuple[Any, ...]] = []
    for i in range(traces):
        tid = f"{i:032x}"
        start = now - (traces - i) * 2.0
        latency = rng.uniform(50, 3000)
        model = f"model-{i % 5}"
        status = "error" if rng.random() < 0.05 else "ok"
        question = f"question {i}: how do I {rng.choice(['reset', 'refund', 'ship', 'cancel'])} my order?"
        batch_t.append((tid, "support", "app", start, start + latency / 1000, latency, status, question,
                        "an answer of a few words", "ok", f"tenant-{i % 3}", "support", model, f"v{i % 4}",
                        spans_per_trace, int(status == "error"), 300, 40, 0.002, f"s{i // 4}", f"u{i % 1000}"))
        root = f"{i:012x}0000"
        t0 = int(start * 1e9)
        batch_s.append((root, tid, None, "support", "app", t0, t0 + int(latency * 1e6), latency,
                        json.dumps({"question": question}), '"an answer"', "ok", None, model, None, None, None,
                        f"tenant-{i % 3}", "support"))
        for k in range(1, spans_per_trace):
            kind = kinds[(k - 1) % len(kinds)]
            attrs = json.dumps({"flywheel.guard.action": "pass"} if kind == "guard" else
                               {"flywheel.cache.hit": i % 7 == 0} if kind == "cache" else {})
            batch_s.append((f"{i:012x}{k:04x}", tid, root, f"{kind} {k}", kind, t0 + k * 1000, t0 + k * 2000, 1.0,
                            '{"q": 1}', '{"a": 1}', "ok", attrs, model if kind == "llm" else None,
                            100 if kind == "llm" else None, 20 if kind == "llm" else None, None, None, None))
        if i % 50 == 0:
            feedback.append((tid, "user", "thumbs", "0" if i % 100 else "1", start + 1))
        if len(batch_s) >= 50_000:
            conn.executemany(trace_sql, batch_t)
            conn.executemany(span_sql, batch_s)
            batch_t, batch_s = [], []
    conn.executemany(trace_sql, batch_t)
    conn.executemany(span_sql, batch_s)
    conn.executemany("INSERT INTO feedback (trace_id, source, name, value, created_at) VALUES (?,?,?,?,?)", feedback)
    _big_trace(conn, big_spans, now - 60)
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    tmp.replace(path)


def _big_trace(conn: sqlite3.Connection, n: int, start: float) -> None:
    t0 = int(start * 1e9)
    root = "b1" * 8
    body = json.dumps({"text": "x" * 2000})
    rows: list[tuple[Any, ...]] = [(root, BIG_TRACE, None, "agent", "app", t0, t0 + 5_000_000_000, 5000.0, '{"q": "plan"}', '"done"', "ok",
             None, None, None, None, None, "tenant-0", "agent")]
    steps = [f"b2{k:014x}" for k in range(10)]
    rows += [(s, BIG_TRACE, root, f"step {k}", "chain", t0 + k * 400_000_000, t0 + (k + 1) * 400_000_000, 400.0,
              None, None, "ok", None, None, None, None, None, None, None) for k, s in enumerate(steps)]
    rows += [(f"b3{j:014x}", BIG_TRACE, steps[j % 10], f"tool {j}", "tool", t0 + j * 900_000, t0 + j * 900_000 + 800_000,
              0.8, body, body, "ok", None, None, None, None, None, None, None) for j in range(max(0, n - 11))]
    conn.executemany("INSERT INTO spans (span_id, trace_id, parent_id, name, kind, start_ns, end_ns, latency_ms, "
                     "inputs, outputs, output_state, attributes, model, input_tokens, output_tokens, cost_usd, "
                     "tenant, app) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    conn.execute("INSERT INTO traces (trace_id, name, kind, started_at, ended_at, latency_ms, status, input_preview, "
                 "output_preview, tenant, app, span_count) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                 (BIG_TRACE, "agent", "app", start, start + 5, 5000.0, "ok", "plan", "done", "tenant-0", "agent", n))


def _serve(project: Path) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "FLYWHEEL_PROJECT": str(project), "FLYWHEEL_HOST": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "flywheel.bench.ui:bench_app",
                             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
                            env=env)
    return proc, f"http://127.0.0.1:{port}"


def _timed(client: Any, url: str, runs: int) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        with client.stream("GET", url) as response:
            first = None
            body = b""
            for chunk in response.iter_bytes():
                if first is None:
                    first = time.perf_counter()
                body += chunk
            if response.status_code != 200:
                raise click.ClickException(f"GET {url} answered {response.status_code}: {body[:300]!r}")
        times.append(((first or time.perf_counter()) - start) * 1000)
        size = len(body)
    return times, size


def run(store_path: Path, runs: int) -> dict[str, Any]:
    import httpx

    with tempfile.TemporaryDirectory(prefix="flywheel-bench-ui-") as tmp:
        project = Path(tmp)
        (project / "flywheel.yaml").write_text(f"store: sqlite:///{store_path}\nmodels: {{}}\n", encoding="utf-8")
        proc, base = _serve(project)
        try:
            with httpx.Client(base_url=base, timeout=120) as client:
                deadline = time.monotonic() + 180
                while True:
                    try:
                        if client.get("/ui/traces.json?limit=1").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise click.ClickException("the dashboard server did not start")
                    time.sleep(0.2)
                out: dict[str, Any] = {}
                for key, url in (("trace_list", "/ui/traces"), ("trace_list_filtered", f"/ui/traces?{FILTERED}"),
                                 ("facets", "/ui/traces/facets"), ("big_trace", f"/ui/traces/{BIG_TRACE}")):
                    _timed(client, url, 3)  # warm-up
                    times, size = _timed(client, url, runs)
                    out[key] = (percentile(times, 50), size)
        finally:
            proc.terminate()
            proc.wait(30)
    return {"trace_list_p50_ms": round(out["trace_list"][0], 1),
            "trace_list_filtered_p50_ms": round(out["trace_list_filtered"][0], 1),
            "big_trace_first_byte_ms": round(out["big_trace"][0], 1),
            "big_trace_html_kb": round(out["big_trace"][1] / 1024, 1),
            "facets_p50_ms": round(out["facets"][0], 1)}


@click.command()
@click.option("--traces", default=100_000, show_default=True, type=click.IntRange(10, 10_000_000),
              help="Synthetic traces in the store.")
@click.option("--spans-per-trace", default=10, show_default=True, type=click.IntRange(1, 100),
              help="Spans of each synthetic trace.")
@click.option("--big-spans", default=5000, show_default=True, type=click.IntRange(20, 100_000),
              help="Spans of the one big trace.")
@click.option("--runs", default=30, show_default=True, type=click.IntRange(1, 10_000), help="Requests per page.")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Where the synthetic store is kept between runs (default: ~/.cache/flywheel/bench-ui).")
@click.option("--json", "as_json", is_flag=True, help="One line of JSON.")
def command(traces: int, spans_per_trace: int, big_spans: int, runs: int, cache_dir: Path | None,
            as_json: bool) -> None:
    """Dashboard trace pages on a big synthetic store (1M spans): list, filtered list, a 5,000-span trace."""
    cache = cache_dir or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flywheel" / "bench-ui"
    cache.mkdir(parents=True, exist_ok=True)
    store_path = cache / f"ui-v{SCHEMA_VERSION}-{traces}x{spans_per_trace}-big{big_spans}.db"
    built_s = None
    if not store_path.exists():
        start = time.perf_counter()
        build_store(store_path, traces, spans_per_trace, big_spans)
        built_s = round(time.perf_counter() - start, 1)
    out = run(store_path, runs)
    out.update({"traces": traces, "spans": traces * spans_per_trace + big_spans, "runs": runs,
                "store_built_s": built_s})
    click.echo(json.dumps(out, indent=None if as_json else 2))

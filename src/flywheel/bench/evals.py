"""`flywheel bench evals`: 1,000 cases × 3 deterministic checks against a fake LLM answering after 50 ms.

Ours and promptfoo's runs are measured the same way, each as a whole child process (start-up included)
waited for with `os.wait4`, so `peak_rss_mb` is that process's own peak (the fake LLM runs in this parent).
`run_wall_s` is the suite run alone, as `flywheel eval` reports it (start-up and imports excluded).
Ours is `flywheel eval` on a model-alias suite with concurrency 32, results written to a fresh SQLite store;
promptfoo (npm `promptfoo`, installed on first use into ~/.cache/flywheel/promptfoo) runs the same cases and
assertions (contains, icontains, regex) at `--max-concurrency 32 --no-cache`, against the same server.
The floor is cases / 32 × 50 ms (1.6 s for 1,000 cases).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

PROMPTFOO_VERSION = "0.121"  # the newest line that still runs on Node 20
PROMPTFOO_DIR = Path.home() / ".cache" / "flywheel" / "promptfoo"
CONCURRENCY = 32
LATENCY_S = 0.05
REPLY = "The answer is 42: Paris is the capital of France."
CHECKS = [{"contains": "Paris"}, {"icontains": "THE ANSWER"}, {"regex": r"\d+"}]
PROMPTFOO_ASSERTS = [
    {"type": "contains", "value": "Paris"},
    {"type": "icontains", "value": "THE ANSWER"},
    {"type": "regex", "value": r"\d+"},
]


def _questions(n: int) -> list[str]:
    return [f"Question number {i}: what is the capital of France?" for i in range(n)]


def write_project(folder: Path, base_url: str, cases: int) -> Path:
    """A project whose model alias points at the fake LLM, and a suite of `cases` cases."""
    (folder / "flywheel.yaml").write_text(
        "models:\n"
        f"  bench: {{provider: openai_compat, base_url: '{base_url}', model: fake-model, max_retries: 0}}\n"
        "tracing: {enabled: false}\n",
        encoding="utf-8",
    )
    suite = {
        "name": "bench",
        "target": "model:bench",
        "prompt": "{{question}}",
        "threshold": 1.0,
        "cases": [
            {"id": f"q{i}", "vars": {"question": q}, "checks": CHECKS}
            for i, q in enumerate(_questions(cases))
        ],
    }
    path = folder / "bench_suite.yaml"
    path.write_text(json.dumps(suite), encoding="utf-8")  # JSON is YAML
    return path


def write_promptfoo_config(folder: Path, base_url: str, cases: int) -> Path:
    config = {
        "description": "flywheel bench evals",
        "prompts": ["{{question}}"],
        "providers": [
            {"id": "openai:chat:fake-model", "config": {"apiBaseUrl": base_url, "apiKey": "sk-bench"}}
        ],
        "tests": [{"vars": {"question": q}, "assert": PROMPTFOO_ASSERTS} for q in _questions(cases)],
    }
    path = folder / "promptfooconfig.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def measure(cmd: list[str], folder: Path, name: str, *, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `cmd` to completion: wall seconds, its own peak RSS (MB), exit code, stdout and stderr."""
    out_path, err_path = folder / f"{name}.out", folder / f"{name}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=folder)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C or `kill` of the bench: promptfoo must not go on calling a dead server
            proc.kill()
            proc.wait()
            raise
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "wall_s": round(wall, 3),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "rc": proc.returncode,
        "stdout": out_path.read_text("utf-8", "replace"),
        "stderr": err_path.read_text("utf-8", "replace"),
    }


def ensure_promptfoo() -> Path | None:
    """The promptfoo entry script, installing it with npm on first use; None when npm/node are missing."""
    entry = PROMPTFOO_DIR / "node_modules" / "promptfoo" / "dist" / "src" / "entrypoint.js"
    if entry.is_file():
        return entry
    if shutil.which("npm") is None or shutil.which("node") is None:
        return None
    PROMPTFOO_DIR.mkdir(parents=True, exist_ok=True)
    click.echo(f"installing promptfoo@{PROMPTFOO_VERSION} into {PROMPTFOO_DIR} (first run only)…", err=True)
    subprocess.run(
        [
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--prefix",
            str(PROMPTFOO_DIR),
            f"promptfoo@{PROMPTFOO_VERSION}",
        ],
        check=False,
        stdout=subprocess.DEVNULL,
    )
    return entry if entry.is_file() else None


def run_promptfoo(entry: Path, folder: Path, base_url: str, cases: int) -> dict[str, Any]:
    config = write_promptfoo_config(folder, base_url, cases)
    env = {
        **os.environ,
        "PROMPTFOO_DISABLE_TELEMETRY": "1",
        "PROMPTFOO_DISABLE_UPDATE": "1",
        "PROMPTFOO_DISABLE_SHARING": "1",
        "PROMPTFOO_CONFIG_DIR": str(folder / "promptfoo-home"),
        "OPENAI_API_KEY": "sk-bench",
        "NO_COLOR": "1",
    }
    return measure(
        [
            "node",
            str(entry),
            "eval",
            "-c",
            str(config),
            "--no-cache",
            "--max-concurrency",
            str(CONCURRENCY),
            "--no-progress-bar",
            "--no-table",
            "--no-share",
            "-o",
            str(folder / "promptfoo-out.json"),
        ],
        folder,
        "promptfoo",
        env=env,
    )


def promptfoo_passes(folder: Path) -> int | None:
    try:
        data = json.loads((folder / "promptfoo-out.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    stats = data.get("results", {}).get("stats", {})
    return stats.get("successes")


@click.command()
@click.option("--cases", default=1000, show_default=True, type=click.IntRange(1), help="Number of cases.")
@click.option("--skip-promptfoo", is_flag=True, help="Measure only flywheel.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON only (the output is JSON either way).")
def command(cases: int, skip_promptfoo: bool, as_json: bool) -> None:
    """1,000 cases × 3 deterministic checks vs promptfoo on one fake LLM (50 ms answers), concurrency 32."""
    from flywheel.testing.fake_llm import FakeLLM

    with (
        tempfile.TemporaryDirectory(prefix="flywheel-bench-evals-") as tmp,
        FakeLLM(latency=LATENCY_S) as llm,
    ):
        folder = Path(tmp)
        llm.default = REPLY
        suite = write_project(folder, llm.base_url, cases)
        ours = measure(
            [
                sys.executable,
                "-m",
                "flywheel",
                "--project",
                str(folder),
                "eval",
                str(suite),
                "--concurrency",
                str(CONCURRENCY),
                "--json",
                "--no-progress",
            ],
            folder,
            "flywheel",
        )
        if ours["rc"] != 0:
            raise click.ClickException(f"flywheel eval failed (exit {ours['rc']}):\n{ours['stderr'][-2000:]}")
        summary = json.loads(ours["stdout"])["suites"][0]
        result: dict[str, Any] = {
            "cases": cases,
            "wall_s": ours["wall_s"],
            "peak_rss_mb": ours["peak_rss_mb"],
            "run_wall_s": summary.get("wall_s"),
            "pass_rate": summary.get("pass_rate"),
            "floor_s": round(cases / CONCURRENCY * LATENCY_S, 3),
        }
        if not skip_promptfoo:
            entry = ensure_promptfoo()
            if entry is None:
                from flywheel.bench import missing_peer

                result["promptfoo"] = missing_peer("promptfoo", "npm install -g promptfoo (needs node and npm)",
                                                   "node/npm not found or promptfoo could not be installed")
            else:
                llm_requests = len(llm.requests)
                theirs = run_promptfoo(entry, folder, llm.base_url, cases)
                result["promptfoo_wall_s"] = theirs["wall_s"]
                result["promptfoo_peak_rss_mb"] = theirs["peak_rss_mb"]
                result["promptfoo_passes"] = promptfoo_passes(folder)
                result["promptfoo_requests"] = len(llm.requests) - llm_requests
                if result["promptfoo_passes"] is None:
                    result["promptfoo_error"] = f"exit {theirs['rc']}: {theirs['stderr'][-500:]}"
    click.echo(json.dumps(result, indent=None if as_json else 2))

"""`flywheel bench …`: each benchmark is a module in flywheel.bench exposing a click `command`."""

from __future__ import annotations

import importlib

from flywheel.cli import _terminate_as_interrupt, main

BENCHMARKS = ["gateway", "retrieval", "evals", "guards", "cache", "answers", "serve", "review", "drift", "ui", "scale"]


@main.group()
def bench() -> None:
    """Benchmarks that print JSON, measured side by side against a peer in the same run."""
    # a plain `kill` (or `timeout`) stops a benchmark as Ctrl-C does: the servers it started and its temp
    # folders are removed on the way out instead of being left behind
    _terminate_as_interrupt()


for _name in BENCHMARKS:
    try:
        bench.add_command(importlib.import_module(f"flywheel.bench.{_name}").command, _name)
    except ModuleNotFoundError as _exc:
        if _exc.name != f"flywheel.bench.{_name}":
            raise

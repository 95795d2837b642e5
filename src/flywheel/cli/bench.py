"""`flywheel bench …`: each benchmark is a module in flywheel.bench exposing a click `command`."""

from __future__ import annotations

import importlib

from flywheel.cli import main

BENCHMARKS = ["gateway", "retrieval", "evals", "guards", "cache", "answers", "serve", "review", "drift", "ui", "scale"]


@main.group()
def bench() -> None:
    """Benchmarks that print JSON, measured side by side against a peer in the same run."""


for _name in BENCHMARKS:
    try:
        bench.add_command(importlib.import_module(f"flywheel.bench.{_name}").command, _name)
    except ModuleNotFoundError as _exc:
        if _exc.name != f"flywheel.bench.{_name}":
            raise

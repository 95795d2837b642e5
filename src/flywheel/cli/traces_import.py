"""`flywheel traces import FILE.jsonl`: past request/response logs in as traces, with their original times."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from flywheel.cli import emit_json
from flywheel.cli.traces import traces

PROGRESS_EVERY_S = 2.0


@traces.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", default="flywheel", show_default=True,
              type=click.Choice(["flywheel", "openai-log", "langfuse", "otlp", "phoenix", "langsmith"]),
              help="flywheel: {timestamp, app, model, input, output, tenant?, session_id?, user_id?, metadata?, "
                   "latency_ms?, usage?} per line; openai-log: {request, response} per line; langfuse: traces from "
                   "its API (GET /api/public/traces/{id}, or a list page) or the UI's trace download, every "
                   "observation a span; otlp: OTLP/JSON ({resourceSpans}) per line, as the OpenTelemetry "
                   "Collector's file exporter writes; phoenix: Phoenix's span JSON (its REST API, UI download "
                   "or get_spans_dataframe().to_json(orient='records', lines=True)); langsmith: LangSmith's runs "
                   "(runs.jsonl, each run of client.list_runs as JSON), every run a span.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@click.pass_obj
def import_traces(state: Any, file: str, fmt: str, as_json: bool) -> None:
    """Import past request/response logs (JSON lines, or one JSON array) as traces with their original
    timestamps. Re-importing the same file adds nothing twice; a bad line stops the import before anything is
    written."""
    from flywheel.apps.runtime import Runtime, pii_masker
    from flywheel.tracing.importer import import_file
    from flywheel.tracing.redact import Redactor

    config = state.project.config
    masker = pii_masker(config.tracing.redact_pii, state.project.where("tracing", "redact_pii"))
    redactor = Redactor.from_config(config.tracing, config.models, masker=masker)
    last = [0.0]

    def progress(phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S or done == total:
            last[0] = now
            click.echo(f"import: {phase} {done}" + (f"/{total}" if total else ""), err=True)

    with Runtime(state.project, tracing=False) as rt:
        result = import_file(rt.store, file, fmt, redactor=redactor, models=config.models,
                             progress=progress if sys.stderr.isatty() or not as_json else None)
    if as_json:
        emit_json(result.to_json())
        return
    click.echo(f"imported {result.imported} trace(s) from {result.lines} line(s)"
               + (f"; {result.already} already in the store" if result.already else ""))

"""`flywheel fake-llm`: run the fake OpenAI/Anthropic-wire LLM server until Ctrl-C."""

from __future__ import annotations

import threading
from pathlib import Path

import click

from flywheel.cli import main
from flywheel.errors import UserError


@main.command("fake-llm")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--latency", "latency_ms", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Milliseconds to wait before every answer.")
@click.option("--script", "script", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML rules: a list of {match: REGEX, reply: TEXT, model?, latency_ms?}, or a mapping with "
                   "rules:, default:, latency_ms: and faults:.")
def fake_llm(port: int, host: str, latency_ms: float, script: Path | None) -> None:
    """Serve scripted answers on the OpenAI (/v1/chat/completions, /v1/embeddings, /v1/models) and
    Anthropic (/v1/messages) wire protocols, for testing apps without a real model."""
    from flywheel.testing.fake_llm import FakeLLM

    llm = FakeLLM(host=host, port=port, latency=latency_ms / 1000)
    if script is not None:
        if not script.is_file():
            raise UserError(f"script {script} does not exist", hint="pass the path of a YAML rules file")
        llm.load_script(script)
    try:
        llm.start()
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                        hint="pick another --port (0 picks a free one) or stop what is using it") from None
    rules = len(llm.rules)
    click.echo(f"fake LLM serving at {llm.base_url}  (Anthropic SDK base_url: {llm.anthropic_base_url}; "
               f"{rules} rule{'s' if rules != 1 else ''}; Ctrl-C to stop)", err=True)
    click.echo(llm.base_url)
    try:
        threading.Event().wait()
    finally:
        llm.stop()

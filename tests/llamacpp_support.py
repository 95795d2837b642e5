"""A real llama.cpp server (`llama-cpp-python[server]`) on the tiny random-weights GGUF of
`flywheel.testing.tiny_gguf`, for the live llama.cpp test modules: `llama_server()` is a context manager that
yields its base URL (…/v1) and stops it on exit.

The server runs from the interpreter in FLYWHEEL_LLAMA_CPP_PYTHON (CI builds llama-cpp-python in a virtualenv of
its own: its FastAPI pins must not move ours), else from this one when it has `llama_cpp`. Without either the
caller skips, and fails under FLYWHEEL_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path

import httpx
import openai
from conftest import need
from services_fixtures import _free_port, stop_process

from flywheel.testing.tiny_gguf import write_tiny_gguf


def llama_python() -> str | None:
    given = os.environ.get("FLYWHEEL_LLAMA_CPP_PYTHON")
    if given:
        return given if Path(given).exists() else None
    return sys.executable if find_spec("llama_cpp") is not None else None


def default_models(chat: Path, pooled: Path) -> list[dict]:
    """`tiny` (chat), `tiny-embed` (embeddings, mean pooling), `tiny-tokens` (embeddings without pooling) and
    `tiny-tools` (chatml-function-calling: a forced tool choice writes the arguments under the schema's grammar)."""
    return [{"model": str(chat), "model_alias": "tiny"},
            {"model": str(pooled), "model_alias": "tiny-embed", "embedding": True},
            {"model": str(chat), "model_alias": "tiny-tokens", "embedding": True},
            {"model": str(chat), "model_alias": "tiny-tools", "chat_format": "chatml-function-calling"}]


@contextmanager
def llama_server(models: list[dict] | None = None, n_ctx: int = 2048) -> Iterator[str]:
    """Base URL (…/v1) of a llama.cpp server with `models` (default: `default_models`), each entry a
    llama-cpp-python model setting; the tiny GGUF files are `{workdir}/tiny.gguf` and `{workdir}/embed.gguf`,
    which `models` entries may name as `"$chat"` / `"$pooled"`."""
    python = llama_python()
    need(python is not None, "llama-cpp-python[server] is not installed (pip install 'llama-cpp-python[server]', "
                             "or FLYWHEEL_LLAMA_CPP_PYTHON=<its python>)")
    assert python is not None
    workdir = Path(tempfile.mkdtemp(prefix="fw-llamacpp-"))
    chat, pooled = write_tiny_gguf(workdir / "tiny.gguf"), write_tiny_gguf(workdir / "embed.gguf", pooling="mean")
    files = {"$chat": str(chat), "$pooled": str(pooled)}
    entries = default_models(chat, pooled) if models is None else [
        m | {"model": files.get(m["model"], m["model"])} for m in models]
    port = _free_port()
    common = {"n_ctx": n_ctx, "n_threads": 1, "n_batch": 512, "verbose": False, "seed": 0}
    config = {"host": "127.0.0.1", "port": port, "models": [common | m for m in entries]}
    (workdir / "config.json").write_text(json.dumps(config), encoding="utf-8")
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 - open for the server's lifetime
    proc = subprocess.Popen([python, "-m", "llama_cpp.server", "--config_file", str(workdir / "config.json")],
                            stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(base + "/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            text = (workdir / "server.log").read_text(errors="replace")[-800:]
            need(False, f"the llama.cpp server did not start: {text}")
        yield base
    finally:
        stop_process(proc, timeout=10)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def direct_client(base: str) -> openai.OpenAI:
    """The openai SDK straight at the llama.cpp server: the expectation of every test."""
    return openai.OpenAI(base_url=base, api_key="unused", max_retries=0)

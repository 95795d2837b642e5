"""`flywheel bench serve`: what `flywheel serve` adds on top of calling the model directly, next to LiteLLM.

Setup: `flywheel fake-llm` (no latency) in its own process; `flywheel serve --workers N` in front of it with
tracing to SQLite on (a temp project); when the `litellm` command is found, the LiteLLM proxy (`litellm[proxy]`)
with the same worker count, the same upstream and no database. One asyncio load generator (a minimal keep-alive
HTTP/1.1 client: httpx's async client costs milliseconds of CPU per call and capped the measured rates) drives
all of them, in the same run.

LiteLLM is a bench-only dependency whose pins clash with ours, so it usually lives in a virtualenv of its own:
the command is `$FLYWHEEL_LITELLM_BIN`, else `litellm` on PATH, else `.venv-litellm/bin/litellm` next to the
running virtualenv or in the current folder (`python -m venv .venv-litellm && .venv-litellm/bin/pip install
'litellm[proxy]'`). It runs with a random master key (it refuses to start without one) and
`LITELLM_LOCAL_MODEL_COST_MAP=True` (no download at start-up).

- Latency (`overhead_p50_ms`, `overhead_p99_ms`): `--requests` sequential calls per target, interleaved target
  by target so machine noise hits them alike; overhead pX = pX(through the proxy) − pX(direct).
- Throughput (`rps`, `litellm_rps`): `--requests` calls per target at `--concurrency` in flight, in 5
  rounds interleaved target by target.
- `failed`: non-200 answers through our proxy, over both phases.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from flywheel.bench.gateway import percentile

_ROUNDS = 5
BODY = {"model": "bench", "messages": [{"role": "user", "content": "What does the proxy add?"}]}


def _spawn(args: list[str], **kw: Any) -> subprocess.Popen:
    return subprocess.Popen(args, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}, **kw)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_ready(url: str, proc: subprocess.Popen, limit_s: float = 180.0) -> None:
    import httpx

    deadline = time.monotonic() + limit_s
    while True:  # readiness poll
        if proc.poll() is not None:
            raise click.ClickException(f"{url} exited during start-up (status {proc.returncode})")
        if time.monotonic() > deadline:
            raise click.ClickException(f"{url} did not answer within {limit_s:.0f} s")
        try:
            if httpx.get(url, timeout=5).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.05)


def litellm_bin() -> str | None:
    """The LiteLLM proxy command (see the module doc), or None."""
    env = os.environ.get("FLYWHEEL_LITELLM_BIN")
    if env:
        return env if Path(env).exists() or shutil.which(env) else None
    found = shutil.which("litellm")
    if found:
        return found
    for root in (Path(sys.prefix).parent, Path.cwd()):
        candidate = root / ".venv-litellm" / "bin" / "litellm"
        if candidate.exists():
            return str(candidate)
    return None


@contextlib.contextmanager
def _services(workers: int, litellm: str | None, status: dict[str, str]) -> Iterator[dict[str, tuple[str, str]]]:
    """{target: (URL, API key)} for direct, proxy and (when `litellm` is a command that starts) litellm;
    `status["litellm"]` says "measured" or why the proxy could not start (the run goes on without it)."""
    procs: list[subprocess.Popen] = []
    tmp = Path(tempfile.mkdtemp(prefix="fw-bench-serve-"))
    try:
        fake = _spawn([sys.executable, "-m", "flywheel", "fake-llm", "--port", "0"], stdout=subprocess.PIPE,
                      stderr=subprocess.DEVNULL)
        procs.append(fake)
        base = (fake.stdout.readline() if fake.stdout else "").strip()
        if not base.startswith("http"):
            raise click.ClickException("fake-llm did not start")
        (tmp / "flywheel.yaml").write_text(
            f"models:\n  bench: {{provider: openai_compat, base_url: \"{base}\", model: fake-model, max_retries: 0}}\n"
            "cache: {exact: false}\n", encoding="utf-8")
        serve = _spawn([sys.executable, "-m", "flywheel", "--project", str(tmp), "serve", "--port", "0",
                        "--workers", str(workers), "--no-access-log"], stderr=subprocess.PIPE)
        procs.append(serve)
        port = None
        for line in serve.stderr or []:
            if m := re.search(r"at http://127\.0\.0\.1:(\d+)", line):
                port = m.group(1)
                break
        if port is None:
            raise click.ClickException("flywheel serve did not start")
        threading_drain(serve)
        urls = {"direct": (base + "/chat/completions", "x"),
                "proxy": (f"http://127.0.0.1:{port}/v1/chat/completions", "x")}
        _wait_ready(f"http://127.0.0.1:{port}/readyz", serve)
        if litellm:
            master = f"sk-bench-{secrets.token_hex(16)}"
            (tmp / "litellm.yaml").write_text(
                "model_list:\n  - model_name: bench\n    litellm_params: {model: openai/fake-model, "
                f"api_base: \"{base}\", api_key: x}}\n"
                f"general_settings: {{master_key: {master}}}\nlitellm_settings: {{telemetry: false}}\n",
                encoding="utf-8")
            lport = _free_port()
            with (tmp / "litellm.log").open("w", encoding="utf-8") as log:
                lite = subprocess.Popen([litellm, "--config", str(tmp / "litellm.yaml"), "--host", "127.0.0.1",
                                         "--port", str(lport), "--num_workers", str(workers)],
                                        stdout=subprocess.DEVNULL, stderr=log,
                                        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                                             "LITELLM_LOG": "ERROR"})
            procs.append(lite)
            try:
                _wait_ready(f"http://127.0.0.1:{lport}/health/liveliness", lite)
            except click.ClickException as exc:  # a broken peer install must not cost flywheel's figures
                _stop(lite)
                lines = [ln.strip() for ln in (tmp / "litellm.log").read_text(errors="replace").splitlines()]
                last = next((ln for ln in reversed(lines) if ln), "")
                status["litellm"] = f"failed: {litellm} {exc.format_message()}" + (f": {last}" if last else "")
            else:
                urls["litellm"] = (f"http://127.0.0.1:{lport}/chat/completions", master)
                status["litellm"] = "measured"
        yield urls
    finally:
        for proc in reversed(procs):
            _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def threading_drain(proc: subprocess.Popen) -> None:
    """Keep reading the server's stderr so a full pipe never blocks it."""
    import threading

    if proc.stderr is not None:
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # type: ignore[union-attr]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Client:
    """The load generator's HTTP/1.1 client: keep-alive connections per host, Content-Length or chunked bodies.
    The same for every target, and cheap enough that the servers, not the client, set the rates."""

    def __init__(self) -> None:
        self.idle: dict[tuple[str, int], list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        u = urlsplit(url)
        host, port = u.hostname or "127.0.0.1", u.port or 80
        pool = self.idle.setdefault((host, port), [])
        reader, writer = pool.pop() if pool else await asyncio.open_connection(host, port)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(f"POST {u.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n{head}\r\n".encode() + body)
        try:
            status, keep = await self._response(reader)
        except BaseException:
            writer.close()
            raise
        if keep:
            pool.append((reader, writer))
        else:
            writer.close()
        return status

    @staticmethod
    async def _response(reader: asyncio.StreamReader) -> tuple[int, bool]:
        status = int((await reader.readline()).split()[1])
        length, chunked, keep = None, False, True
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value
            elif name == "connection":
                keep = value != "close"
        if chunked:
            while (size := int((await reader.readline()).split(b";")[0], 16)) > 0:
                await reader.readexactly(size + 2)
            await reader.readline()
        elif length is not None:
            await reader.readexactly(length)
        else:
            await reader.read()
            keep = False
        return status, keep

    def close(self) -> None:
        for pool in self.idle.values():
            for _, writer in pool:
                writer.close()


async def _measure(urls: dict[str, tuple[str, str]], requests: int, concurrency: int) -> dict[str, Any]:
    lat: dict[str, list[float]] = {name: [] for name in urls}
    failed = {name: 0 for name in urls}
    body = json.dumps(BODY).encode()
    client = _Client()

    async def one(name: str) -> float:
        url, key = urls[name]
        start = time.perf_counter()
        try:
            status = await client.post(url, body, {"Authorization": f"Bearer {key}"})
            failed[name] += status != 200
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            failed[name] += 1
        return (time.perf_counter() - start) * 1000

    try:
        for name in urls:  # warm-up
            for _ in range(20):
                await one(name)
        for _ in range(requests):
            for name in urls:
                lat[name].append(await one(name))
        # throughput in interleaved rounds (target by target), so a burst of machine noise is shared out
        spent = {name: 0.0 for name in urls}
        rounds = [requests // _ROUNDS + (i < requests % _ROUNDS) for i in range(_ROUNDS)]
        for size in rounds:
            for name in urls:
                sem = asyncio.Semaphore(concurrency)

                async def bounded(target: str = name, gate: asyncio.Semaphore = sem) -> None:
                    async with gate:
                        await one(target)

                start = time.perf_counter()
                await asyncio.gather(*(bounded() for _ in range(size)))
                spent[name] += time.perf_counter() - start
    finally:
        client.close()
    rps = {name: requests / spent[name] for name in urls}
    return {"lat": lat, "rps": rps, "failed": failed}


@click.command()
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Server workers.")
@click.option("--requests", default=2000, show_default=True, type=click.IntRange(10),
              help="Calls per target in each phase.")
@click.option("--concurrency", default=32, show_default=True, type=click.IntRange(1, 1024),
              help="Calls in flight in the throughput phase.")
@click.option("--no-litellm", is_flag=True, help="Skip the LiteLLM proxy even when it is found.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON only.")
def command(workers: int, requests: int, concurrency: int, no_litellm: bool, as_json: bool) -> None:
    """`flywheel serve` overhead and throughput in front of fake_llm, next to the LiteLLM proxy."""
    litellm = None if no_litellm else litellm_bin()
    status = {"litellm": "skipped: --no-litellm" if no_litellm else
              "skipped: no `litellm` command (set FLYWHEEL_LITELLM_BIN, or install 'litellm[proxy]' into "
              ".venv-litellm)"}
    with _services(workers, litellm, status) as urls:
        got = asyncio.run(_measure(urls, requests, concurrency))
    lat, rps = got["lat"], got["rps"]

    def over(name: str, q: float) -> float | None:
        return round(percentile(lat[name], q) - percentile(lat["direct"], q), 3) if name in lat else None

    out = {"workers": workers, "requests": requests, "concurrency": concurrency,
           "direct_p50_ms": round(percentile(lat["direct"], 50), 3),
           "overhead_p50_ms": over("proxy", 50), "overhead_p99_ms": over("proxy", 99),
           "rps": round(rps["proxy"], 1), "direct_rps": round(rps["direct"], 1), "failed": got["failed"]["proxy"],
           "litellm_overhead_p50_ms": over("litellm", 50), "litellm_overhead_p99_ms": over("litellm", 99),
           "litellm_rps": round(rps["litellm"], 1) if "litellm" in rps else None,
           "litellm_failed": got["failed"].get("litellm"),
           "litellm": status["litellm"]}
    import json

    click.echo(json.dumps(out, indent=None if as_json else 2))

"""`flywheel serve` as a user runs it: a real process, a clean SIGTERM that flushes the traces, and one-line
errors (exit 2) for a port in use, a bad config, or a public address without keys."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
from click.testing import CliRunner

from flywheel.cli import main


def test_serve_answers_then_drains_and_flushes_traces_on_sigterm(tmp_path):
    (tmp_path / "flywheel.yaml").write_text("cache: {exact: false}\n", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "flywheel", "--project", str(tmp_path), "serve", "--port", "0"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        port = None
        for line in proc.stderr:  # the banner names the bound port
            if m := re.search(r"at http://127\.0\.0\.1:(\d+)", line):
                port = int(m.group(1))
                break
        assert port, "no start-up banner"
        url = f"http://127.0.0.1:{port}"
        while True:  # readiness poll
            try:
                if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        resp = httpx.post(url + "/v1/chat/completions", timeout=30,
                          json={"model": "default", "messages": [{"role": "user", "content": "hello there"}]})
        assert resp.status_code == 200
        trace_id = resp.headers["x-flywheel-trace-id"]
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    # uvicorn re-raises the signal after a clean shutdown, so the exit status is the signal's
    assert proc.returncode in (0, -signal.SIGTERM) and "Application shutdown complete" in rest, rest
    assert '"path": "/v1/chat/completions"' in rest  # the JSON access log line
    from flywheel.config import Project
    from flywheel.store import Store
    from flywheel.tracing import get_trace

    with Store.open(Project.load(tmp_path).store_url) as store:
        trace = get_trace(store, trace_id)
    assert trace is not None and trace["status"] == "ok"


def test_serve_prints_its_ready_line_and_answers_healthz_before_the_app_is_built(tmp_path):
    (tmp_path / "flywheel.yaml").write_text("cache: {exact: false}\nserver: {max_body_mb: 0.01}\n", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "flywheel", "--project", str(tmp_path), "serve", "--port", "0",
                             "--no-access-log"], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        banner = proc.stderr.readline()
        m = re.search(r"^flywheel serving .* at http://127\.0\.0\.1:(\d+) ", banner)
        assert m, banner
        url = f"http://127.0.0.1:{m.group(1)}"
        while True:  # readiness poll: /healthz answers as soon as the server runs
            try:
                health = httpx.get(url + "/healthz", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.02)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        while (ready := httpx.get(url + "/readyz", timeout=5)).status_code == 503:
            assert ready.json() == {"status": "starting"}
            time.sleep(0.02)
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        big = httpx.post(url + "/v1/chat/completions", content=b"x" * 20_000, timeout=30)
        assert big.status_code == 413  # `server.max_body_mb` from flywheel.yaml
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    assert "no API keys: the server is OPEN" in rest  # looked up beside the start-up, still said


def test_lazy_app_is_live_at_once_and_requests_wait_for_the_build(tmp_path):
    import asyncio
    import threading

    from flywheel.server import create_app
    from flywheel.server.app import LazyApp

    release = threading.Event()

    def build():
        release.wait(30)
        return create_app(tmp_path)

    lazy = LazyApp(build)

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=lazy), base_url="http://127.0.0.1") as client:
            assert (await client.get("/healthz")).status_code == 200
            starting = await client.get("/readyz")
            assert starting.status_code == 503 and starting.json() == {"status": "starting"}
            models = asyncio.ensure_future(client.get("/v1/models"))
            await asyncio.sleep(0.2)
            assert not models.done()  # waits for the app, is not refused
            release.set()
            assert (await models).status_code == 200
            assert (await client.get("/readyz")).status_code == 200

    try:
        asyncio.run(scenario())
    finally:
        release.set()
        if lazy.app is not None:
            lazy.app.state.flywheel.close()


def test_port_in_use_is_one_line_exit_2(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["--project", str(tmp_path), "serve", "--port", str(port)])
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.output and "Traceback" not in result.output


def test_public_address_without_keys_is_refused(tmp_path):
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "serve", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 2 and "without API keys" in result.output


def test_bad_config_is_exit_2(tmp_path):
    (tmp_path / "flywheel.yaml").write_text("models: [oops\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "serve", "--port", "0"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_a_cors_origin_that_can_never_match_is_exit_2(tmp_path):
    """A trailing slash, a path or no scheme never equals a browser's Origin header: refused, with the fix."""
    for origin in ("https://app.example.com/", "app.example.com"):
        result = CliRunner().invoke(main, ["--project", str(tmp_path), "serve", "--port", "0", "--cors", origin])
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert "can never match" in result.output and "'https://app.example.com'" in result.output
    (tmp_path / "flywheel.yaml").write_text("server:\n  cors_origins: [https://app.example.com/x]\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "serve", "--port", "0"])
    assert result.exit_code == 2 and "flywheel.yaml:2" in result.output and "can never match" in result.output


def test_a_bad_guard_found_while_the_app_builds_stops_the_server_with_exit_2(tmp_path):
    (tmp_path / "flywheel.yaml").write_text("apps:\n  support:\n    kind: chat\n    guards:\n      input:\n"
                                            "        - {check: no_such_check, on_fail: block}\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "flywheel", "--project", str(tmp_path), "serve", "--port", "0",
                           "--no-access-log"], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "flywheel.yaml:6: unknown check 'no_such_check'" in proc.stderr and "Traceback" not in proc.stderr


def test_listening_socket_is_tcp_so_responses_are_not_delayed(tmp_path):
    from flywheel.cli.serve import bind

    sock = bind("127.0.0.1", 0)
    try:  # asyncio sets TCP_NODELAY on accepted connections only when the listener's proto is IPPROTO_TCP
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_cors_preflight_when_configured(tmp_path):
    import asyncio

    from flywheel.server import create_app

    app = create_app(tmp_path, cors_origins=["https://app.example.com"])

    async def preflight():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            return await client.options("/v1/feedback", headers={
                "origin": "https://app.example.com", "access-control-request-method": "POST"})

    try:
        resp = asyncio.run(preflight())
    finally:
        app.state.flywheel.close()
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] == "https://app.example.com"

"""Deployment mistakes `flywheel serve` meets at start: one line (plus its hint), exit 2, no traceback, and no
server left running. Several workers behave like one: a worker whose app cannot be built stops the whole server
(it used to leave N workers answering 503 forever)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from flywheel.cli import main


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def _serve(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `flywheel serve` to its end; one that keeps running fails the test and is killed with its workers."""
    cmd = [sys.executable, "-m", "flywheel", "--project", str(root), "serve", "--port", "0", "--no-access-log", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"`flywheel serve` kept running with a broken deployment:\n{err[-2000:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_two_workers_with_a_bad_guard_stop_with_the_one_line_error(tmp_path):
    (tmp_path / "flywheel.yaml").write_text("apps:\n  support:\n    kind: chat\n    guards:\n      input:\n"
                                            "        - {check: no_such_check, on_fail: block}\n", encoding="utf-8")
    proc = _serve(tmp_path, "--workers", "2")
    assert proc.returncode == 2, proc.stderr
    assert "flywheel.yaml:6: unknown check 'no_such_check'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_two_workers_on_an_unreachable_postgresql_stop_with_exit_2(tmp_path):
    port = _closed_port()
    (tmp_path / "flywheel.yaml").write_text(f"store: postgresql://fly:s3cret@127.0.0.1:{port}/flywheel\n",
                                            encoding="utf-8")
    proc = _serve(tmp_path, "--workers", "2")
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot connect to the PostgreSQL store" in errors[0]
    assert "s3cret" not in proc.stderr and "Traceback" not in proc.stderr
    assert "could not look up API keys" not in proc.stderr  # said once, by the error line


def test_an_unreachable_redis_for_the_counters_is_exit_2_before_binding(tmp_path):
    port = _closed_port()
    (tmp_path / "flywheel.yaml").write_text(f"server:\n  redis: redis://:pw123@127.0.0.1:{port}/0\n",
                                            encoding="utf-8")
    for workers in ("1", "2"):
        proc = _serve(tmp_path, "--workers", workers)
        assert proc.returncode == 2, proc.stderr
        assert f"the Redis counters at redis://:***@127.0.0.1:{port}/0 do not answer" in proc.stderr
        assert "pw123" not in proc.stderr and "Traceback" not in proc.stderr
        assert "flywheel serving" not in proc.stderr  # refused before the port was bound


def test_zero_workers_is_refused(tmp_path):
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "serve", "--workers", "0"])
    assert result.exit_code == 2 and "'--workers'" in result.output and "Traceback" not in result.output


def test_off_loopback_with_only_the_admin_key_starts_closed(tmp_path):
    """docs/server.md's docker-compose example: a fresh project, FLYWHEEL_ADMIN_KEY set, no key created yet. The
    server is not open (every route needs a key), so it starts, and the admin key creates the first key."""
    env = {**os.environ, "FLYWHEEL_ADMIN_KEY": "fw-admin-" + "x7" * 12, "FLYWHEEL_SECRET": "s3" * 16}
    proc = subprocess.Popen([sys.executable, "-m", "flywheel", "--project", str(tmp_path), "serve", "--host", "0.0.0.0",
                             "--port", "0", "--workers", "2", "--no-access-log"], stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()
        match = re.search(r"http://[^:]+:(\d+)", banner)
        assert match, banner + proc.stderr.read()  # before the fix: "refusing to serve on 0.0.0.0 without API keys"
        port = int(match.group(1))
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=60) as client:
            for _ in range(600):  # the workers listen on the bound socket once they have started
                try:
                    if client.get(f"{url}/readyz").status_code == 200:
                        break
                except httpx.ConnectError:
                    pass
                time.sleep(0.1)
            assert client.get(f"{url}/v1/models").status_code == 401
            admin = {"authorization": "Bearer " + env["FLYWHEEL_ADMIN_KEY"]}
            made = client.post(f"{url}/v1/keys", json={"name": "web", "tenant": "acme"}, headers=admin)
            assert made.status_code in (200, 201), made.text
            assert client.get(f"{url}/v1/models", headers={"authorization": f"Bearer {made.json()['key']}"}
                              ).status_code == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


@pytest.mark.parametrize("name", ["FLYWHEEL_SECRET", "FLYWHEEL_ADMIN_KEY"])
def test_a_guessable_secret_or_admin_key_is_refused_before_serving(tmp_path, monkeypatch, name):
    """The docs' docker-compose example had FLYWHEEL_SECRET: change-me: anyone who read the docs could sign a
    dashboard session or feedback token, or log in as admin with change-me-too."""
    monkeypatch.setenv(name, "change-me")
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "serve", "--port", "0"])
    assert result.exit_code == 2 and f"{name} is 9 characters long" in result.output
    assert "change-me" not in result.output and "Traceback" not in result.output

"""Chat sessions' redaction vaults shared through the store when there is no Redis (apps/session_vaults.py,
StoreSessionVaults): a value masked by one worker comes back in a later turn another worker serves; the store
holds it only sealed; placeholder numbers are taken once across workers; another key leaves it masked; vaults
expire and are forgotten with the session; and two real `flywheel serve --workers 2` processes on one SQLite store
continue each other's sessions."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from test_guards_session_vault import ANN, BOB, YAML, app_with_vaults, script, sent, store_text, write_project

from flywheel.apps.runtime import Runtime
from flywheel.apps.session_vaults import KEY_ENV, StoreSessionVaults, share_vaults_with_workers, vaults_for
from flywheel.checks.pii import PLACEHOLDER
from flywheel.store import schema_diff

KEY = secrets.token_bytes(32)


@pytest.fixture
def rt(tmp_path: Path, llm):
    script(llm)
    with Runtime(write_project(tmp_path, llm.base_url)) as runtime:
        yield runtime


def test_a_turn_on_another_worker_restores_the_value_and_the_store_holds_it_sealed(rt, llm) -> None:
    assert schema_diff(rt.store, ["session_vaults", "session_vault_values"]) == []
    worker_a = app_with_vaults(rt, StoreSessionVaults(key=KEY))
    worker_b = app_with_vaults(rt, StoreSessionVaults(key=KEY))
    worker_a.run(f"Hi, my email is {ANN}.", session_id="s-1")
    first_sent = sent(llm)[-1][-1]["content"]
    assert ANN not in first_sent and "<EMAIL_ADDRESS_1_" in first_sent
    assert worker_b.run("What is my email?", session_id="s-1").text == f"Your email is {ANN}."
    # the same value keeps its placeholder on the other worker; a new one gets the next number
    worker_b.run(f"echo write to {ANN} or {BOB}", session_id="s-1")
    issued = {m.group(0) for m in PLACEHOLDER.finditer(first_sent)}
    later = [m.group(0) for m in PLACEHOLDER.finditer(sent(llm)[-1][-1]["content"])]
    assert later[0] in issued and later[1] == later[0].replace("_1_", "_2_")
    assert worker_a.run("What is my email?", session_id="s-1").text == f"Your email is {ANN}."
    text = store_text(rt)
    assert ANN not in text and BOB not in text and "ann.lee" not in text
    # another tenant's session of the same id is another vault
    other = worker_b.run("What is my email?", tenant="other", session_id="s-1").text
    assert ANN not in other


@pytest.fixture
def store(store_url):
    from flywheel.store import Store

    with Store.open(store_url) as opened:
        yield opened


def test_workers_issuing_at_once_never_share_a_number(store) -> None:
    assert schema_diff(store, ["session_vaults", "session_vault_values"]) == []
    workers = [StoreSessionVaults(key=KEY).on_store(store) for _ in range(4)]
    vaults = [w.get("store", "default", "support", "s-busy") for w in workers]
    emails = [f"user{i}@example.com" for i in range(12)]
    issued: dict[str, str] = {}

    def issue(i: int) -> None:
        issued[emails[i]] = vaults[i % 4].placeholder_for("EMAIL_ADDRESS", emails[i])

    threads = [threading.Thread(target=issue, args=(i,)) for i in range(len(emails))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(issued.values())) == len(emails)
    again = workers[0].get("store", "default", "support", "s-busy")  # a later turn reads them all back
    assert {v: k for k, v in again.items()} == issued
    assert again.placeholder_for("EMAIL_ADDRESS", emails[5]) == issued[emails[5]]


def test_another_key_leaves_the_value_masked(rt) -> None:
    app_with_vaults(rt, StoreSessionVaults(key=KEY)).run(f"Hi, my email is {ANN}.", session_id="s-2")
    stranger = app_with_vaults(rt, StoreSessionVaults(key=secrets.token_bytes(32)))
    answer = stranger.run("What is my email?", session_id="s-2").text
    assert ANN not in answer and "<EMAIL_ADDRESS_1_" in answer


def test_vaults_expire_and_are_forgotten_with_the_session(rt, clock) -> None:
    app = app_with_vaults(rt, StoreSessionVaults(key=KEY, ttl_s=60, clock=clock))
    app.run(f"Hi, my email is {ANN}.", session_id="s-3")
    clock.advance(30)
    assert app.run("What is my email?", session_id="s-3").text == f"Your email is {ANN}."  # used: kept 60 s more
    clock.advance(59)
    assert app.run("What is my email?", session_id="s-3").text == f"Your email is {ANN}."
    clock.advance(61)
    expired = app.run("What is my email?", session_id="s-3").text
    assert ANN not in expired and "<EMAIL_ADDRESS_1_" in expired

    app.run(f"Hi, my email is {BOB}.", session_id="s-4")
    app.memory.clear("default", "support", "s-4")
    assert ANN not in store_text(rt)
    forgotten = app.run("What is my email?", session_id="s-4").text
    assert BOB not in forgotten
    clock.advance(3600)  # every session idle past the TTL: the next use sweeps their rows away
    app.memory.vault("default", "support", "s-5")
    with rt.store.connect() as conn:
        keys = conn.exec_driver_sql("SELECT count(*) FROM session_vault_values").scalar()
    assert keys == 0


def test_the_store_is_used_only_with_a_vault_key_and_no_redis(monkeypatch, rt) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    assert vaults_for(rt.config) is None  # one process, no key: the in-memory vaults
    monkeypatch.setenv(KEY_ENV, KEY.hex())
    assert isinstance(vaults_for(rt.config), StoreSessionVaults)


def test_serve_gives_its_workers_one_key_before_they_start(monkeypatch, rt) -> None:
    from flywheel.apps import session_vaults
    from flywheel.errors import UserError

    monkeypatch.delenv(KEY_ENV, raising=False)
    assert share_vaults_with_workers(None, 1) is None and KEY_ENV not in os.environ  # one process: in memory
    assert share_vaults_with_workers(None, 2) is None
    drawn = os.environ[KEY_ENV]  # inherited by the workers, which then share the vaults in the store
    assert len(bytes.fromhex(drawn)) == 32 and share_vaults_with_workers(None, 2) is None
    assert os.environ[KEY_ENV] == drawn
    monkeypatch.setenv(KEY_ENV, "not-a-key")
    with pytest.raises(UserError, match=KEY_ENV):
        share_vaults_with_workers(None, 2)
    # without the cipher: a warning at start-up, and each worker keeps its own vaults (no failing turn)
    monkeypatch.setenv(KEY_ENV, KEY.hex())
    monkeypatch.setattr(session_vaults, "_has_cipher", lambda: False)
    warning = share_vaults_with_workers(None, 2)
    assert warning and "cryptography" in warning and "pip install" in warning
    assert vaults_for(rt.config) is None


def _serve_workers(root: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str, list[int]]:
    """`flywheel serve --workers 2`; the pids of the access log lines, in order, are appended to the list."""
    proc = subprocess.Popen([sys.executable, "-m", "flywheel", "--project", str(root), "serve", "--port", "0",
                             "--workers", "2"], stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    port = None
    for line in proc.stderr:
        if m := re.search(r"at http://127\.0\.0\.1:(\d+)", line):
            port = int(m.group(1))
            break
    assert port, "the server did not start"
    pids: list[int] = []

    def read_log() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith('{"ts"'):
                record = json.loads(line)
                if record.get("path") == "/v1/chat/completions":
                    pids.append(int(record["pid"]))

    threading.Thread(target=read_log, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # readiness poll
        try:
            if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                return proc, url, pids
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the server did not get ready")


@pytest.mark.parametrize("key", ["given", "drawn by serve"])
def test_two_serve_workers_continue_one_session_without_redis(tmp_path: Path, llm, key: str) -> None:
    script(llm)
    (tmp_path / "flywheel.yaml").write_text(YAML.format(base=llm.base_url), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    if key == "given":
        env[KEY_ENV] = secrets.token_hex(32)
    proc, url, pids = _serve_workers(tmp_path, env)
    try:
        def turn(text: str) -> tuple[str, int]:
            seen = len(pids)
            with httpx.Client(timeout=60) as client:  # a new connection each time: the kernel picks the worker
                reply = client.post(url + "/v1/chat/completions", json={
                    "model": "app:support", "messages": [{"role": "user", "content": text}],
                    "metadata": {"session_id": "web-1"}})
            assert reply.status_code == 200, reply.text
            deadline = time.monotonic() + 30
            while len(pids) <= seen:  # the access log line of this request
                assert time.monotonic() < deadline, "no access log line"
                time.sleep(0.01)
            return reply.json()["choices"][0]["message"]["content"], pids[seen]

        _, first = turn(f"Hi, my email is {ANN}.")
        served = {first}
        for _ in range(100):  # until another worker than the first has answered a turn of the session
            answer, pid = turn("What is my email?")
            assert answer == f"Your email is {ANN}.", (pid, first)
            served.add(pid)
            if len(served) == 2:
                break
        assert len(served) == 2, "one worker answered every turn"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()

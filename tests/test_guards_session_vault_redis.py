"""Chat sessions' redaction vaults shared in Redis (apps/session_vaults.py): a value masked by one worker comes back
in a later turn another worker serves; Redis never holds the value in the clear; placeholder numbers are taken
once across workers; another key (another machine not given FLYWHEEL_VAULT_KEY) leaves the value masked; vaults
expire and are forgotten with the session; two `flywheel serve` apps on one Redis continue each other's sessions.
A real redis-server (services_fixtures.redis_url)."""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

import httpx
import pytest
import redis
from test_guards_session_vault import ANN, BOB, YAML, app_with_vaults, script, sent, write_project

from flywheel.apps.runtime import Runtime
from flywheel.apps.session_vaults import KEY_ENV, RedisSessionVaults, vault_key
from flywheel.checks.pii import PLACEHOLDER
from flywheel.errors import UserError

KEY = secrets.token_bytes(32)


@pytest.fixture
def client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    for key in client.scan_iter("flywheel:vault:*"):
        client.delete(key)


@pytest.fixture
def rt(tmp_path: Path, llm):
    script(llm)
    with Runtime(write_project(tmp_path, llm.base_url)) as runtime:
        yield runtime


def everything_in_redis(client: redis.Redis) -> bytes:
    out = b""
    for key in client.scan_iter("flywheel:vault:*"):
        out += key + b"".join(k + v for k, v in client.hgetall(key).items())
    return out


def test_a_turn_on_another_worker_restores_the_value_and_redis_never_holds_it(rt, llm, redis_url, client) -> None:
    worker_a = app_with_vaults(rt, RedisSessionVaults(redis_url, key=KEY))
    worker_b = app_with_vaults(rt, RedisSessionVaults(redis_url, key=KEY))
    worker_a.run(f"Hi, my email is {ANN}.", session_id="s-1")
    first_sent = sent(llm)[-1][-1]["content"]
    assert ANN not in first_sent and "<EMAIL_ADDRESS_1_" in first_sent
    assert worker_b.run("What is my email?", session_id="s-1").text == f"Your email is {ANN}."
    # the same value keeps its placeholder on the other worker; a new one gets the next number
    worker_b.run(f"echo write to {ANN} or {BOB}", session_id="s-1")
    issued = {m.group(0) for m in PLACEHOLDER.finditer(first_sent)}
    later = [m.group(0) for m in PLACEHOLDER.finditer(sent(llm)[-1][-1]["content"])]
    assert later[0] in issued and later[1] == later[0].replace("_1_", "_2_")
    stored = everything_in_redis(client)
    assert stored and ANN.encode() not in stored and BOB.encode() not in stored
    assert all(0 < client.ttl(k) <= 24 * 3600 for k in client.scan_iter("flywheel:vault:*"))


def test_workers_issuing_at_once_never_share_a_number(redis_url, client) -> None:
    workers = [RedisSessionVaults(redis_url, key=KEY) for _ in range(4)]
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


def test_another_key_leaves_the_value_masked(rt, redis_url, client) -> None:
    app_with_vaults(rt, RedisSessionVaults(redis_url, key=KEY)).run(f"Hi, my email is {ANN}.", session_id="s-2")
    stranger = app_with_vaults(rt, RedisSessionVaults(redis_url, key=secrets.token_bytes(32)))
    answer = stranger.run("What is my email?", session_id="s-2").text
    assert ANN not in answer and "<EMAIL_ADDRESS_1_" in answer


def test_forgetting_a_session_deletes_its_vault(redis_url, client) -> None:
    vaults = RedisSessionVaults(redis_url, key=KEY)
    vaults.get("store", "t", "app", "s-3").placeholder_for("EMAIL_ADDRESS", ANN)
    assert list(client.scan_iter("flywheel:vault:*"))
    vaults.forget("store", "t", "app", "s-3")
    assert not list(client.scan_iter("flywheel:vault:*"))
    assert dict(vaults.get("store", "t", "app", "s-3")) == {}


def test_the_vault_key_is_checked(monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, "not a key")
    with pytest.raises(UserError, match=KEY_ENV):
        vault_key()
    monkeypatch.setenv(KEY_ENV, KEY.hex())
    assert vault_key() == KEY
    monkeypatch.delenv(KEY_ENV)
    drawn = vault_key()  # drawn once and kept in the environment, so workers started later share it
    assert len(drawn) == 32 and vault_key() == drawn


def test_two_servers_on_one_redis_continue_each_others_sessions(tmp_path: Path, llm, redis_url, client,
                                                                 monkeypatch) -> None:
    from server_support import serve_project

    monkeypatch.setenv(KEY_ENV, KEY.hex())
    script(llm)
    project = YAML.format(base=llm.base_url) + f"server: {{redis: \"{redis_url}\"}}\n"
    (tmp_path / "a").mkdir()
    first = serve_project(tmp_path / "a", project)
    second = serve_project(tmp_path / "a", project)
    try:
        for server, text in ((first, f"Hi, my email is {ANN}."), (second, "What is my email?")):
            reply = httpx.post(f"{server.url}/v1/chat/completions", timeout=30, json={
                "model": "app:support", "messages": [{"role": "user", "content": text}],
                "metadata": {"session_id": "web-1"}})
            assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"] == f"Your email is {ANN}."
        # kept in Redis, not in the process (both servers here share one process's in-memory vaults too)
        assert list(client.scan_iter("flywheel:vault:*")) and ANN.encode() not in everything_in_redis(client)
    finally:
        first.stop()
        second.stop()

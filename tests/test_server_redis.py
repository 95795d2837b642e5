"""Budget and rate counters in Redis (server/counters.py): exact under concurrency, spend kept in the store so a
Redis restart does not reset it, Retry-After on 429, fail-closed 503 when Redis is down, and which back-end a
project's config selects."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from flywheel.config import Project
from flywheel.server.counters import (
    CountersDown,
    LimitExceeded,
    RedisCounters,
    StoreCounters,
    build_counters,
    redis_url_of,
)
from flywheel.server.keys import KeyStore

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_keys(redis_url, store, clock):
    """A KeyStore whose counters live in Redis under a prefix of its own."""
    counters = RedisCounters(f"{redis_url}?prefix=t-{uuid.uuid4().hex[:8]}:", store)
    yield KeyStore(store, clock, counters=counters)
    counters.close()


def _principal(keys: KeyStore, key: str):
    principal = keys.verify(key)
    assert principal is not None and principal.limited
    return principal


def test_budget_is_exact_under_concurrency_and_spend_is_recorded_in_the_store(redis_keys):
    key, _ = redis_keys.create("spender", budget_usd=1.0)
    principal = _principal(redis_keys, key)

    def one(_: int) -> bool:
        try:
            admission = redis_keys.admit(principal, 0.25)
        except LimitExceeded as exc:
            assert exc.code == "budget_exceeded" and exc.retry_after and exc.retry_after > 0
            return False
        redis_keys.settle(admission, 0.25, 2)
        return True

    with ThreadPoolExecutor(8) as pool:
        admitted = list(pool.map(one, range(20)))
    assert admitted.count(True) == 4  # $1.00 at $0.25 a call, reservations included: never a fifth
    row = next(r for r in redis_keys.list() if r["name"] == "spender")
    assert row["spent_usd"] == 1.0 and row["reserved_usd"] == 0.0  # the store is the record
    with pytest.raises(LimitExceeded):
        redis_keys.admit(principal, 0.0)


def test_a_redis_restart_does_not_reset_the_spend(redis_keys):
    key, _ = redis_keys.create("survivor", budget_usd=0.75)
    principal = _principal(redis_keys, key)
    for _ in range(2):
        redis_keys.settle(redis_keys.admit(principal, 0.25), 0.25, 0)
    counters = redis_keys.counters
    assert isinstance(counters, RedisCounters)
    counters.client.flushdb()  # what a Redis restart without persistence leaves
    redis_keys.settle(redis_keys.admit(principal, 0.25), 0.25, 0)  # re-seeded from the store: $0.50 spent
    with pytest.raises(LimitExceeded) as refused:
        redis_keys.admit(principal, 0.25)
    assert refused.value.code == "budget_exceeded"


def test_reservation_counts_until_settled_and_overspend_is_refused(redis_keys):
    key, _ = redis_keys.create("reserver", budget_usd=0.5)
    principal = _principal(redis_keys, key)
    first = redis_keys.admit(principal, 0.4)
    with pytest.raises(LimitExceeded):
        redis_keys.admit(principal, 0.2)  # 0.4 reserved + 0.2 > 0.5
    redis_keys.settle(first, 0.1, 0)  # it cost less than estimated: the rest is released
    redis_keys.admit(principal, 0.2)


def test_rate_limits_with_retry_after_then_next_minute(redis_keys, clock):
    clock.now = 1_800_000_000.0 + 15  # 45 s before the next minute
    key, _ = redis_keys.create("limited", rpm=2, tpm=100)
    principal = _principal(redis_keys, key)
    for _ in range(2):
        redis_keys.settle(redis_keys.admit(principal), 0.0, 10)
    with pytest.raises(LimitExceeded) as refused:
        redis_keys.admit(principal)
    assert refused.value.code == "rate_limit_exceeded" and refused.value.retry_after == 45
    clock.advance(45)
    big = redis_keys.admit(principal)
    redis_keys.settle(big, 0.0, 150)  # over the tpm: the next request in this minute is refused
    with pytest.raises(LimitExceeded) as refused:
        redis_keys.admit(principal)
    assert refused.value.retry_after == 60


def test_redis_down_refuses_limited_keys_only(store, clock):
    dead = RedisCounters("redis://127.0.0.1:1/0", store)  # nothing listens on port 1
    keys = KeyStore(store, clock, counters=dead)
    limited = _principal(keys, keys.create("limited", rpm=5)[0])
    with pytest.raises(CountersDown):
        keys.admit(limited)
    free = keys.verify(keys.create("free")[0])
    assert free is not None and keys.admit(free).key_id is None  # no limits, no counters needed


def test_backend_is_chosen_by_server_redis_or_a_redis_cache(tmp_path, store):
    def project(yaml: str) -> Project:
        (tmp_path / "flywheel.yaml").write_text(yaml, encoding="utf-8")
        return Project.load(tmp_path)

    assert redis_url_of(project("models: {}\n").config) is None
    assert isinstance(build_counters(project("models: {}\n").config, store), StoreCounters)
    assert redis_url_of(project("server: {redis: 'redis://r:6379/1'}\n").config) == "redis://r:6379/1"
    assert redis_url_of(project("cache: {backend: 'redis://c:6379/0?prefix=x:'}\n").config) == "redis://c:6379/0"
    assert isinstance(build_counters(project("server: {redis: 'redis://r:6379/1'}\n").config, store), RedisCounters)


# ------------------------------------------------------------------------------- through a real server


@pytest.fixture(scope="module")
def redis_live(tmp_path_factory, server_llm, redis_url):
    from server_support import PROJECT_YAML, LiveServer

    from flywheel.server import create_app

    root = tmp_path_factory.mktemp("serve-redis")
    prefix = f"t-{uuid.uuid4().hex[:8]}:"
    (root / "flywheel.yaml").write_text(f"server: {{redis: '{redis_url}?prefix={prefix}'}}\n"
                                        + PROJECT_YAML.format(base=server_llm.base_url), encoding="utf-8")
    server = LiveServer(create_app(Project.load(root))).start()
    yield server
    server.stop()


def _chat(url: str, key: str, content: str = "budget call") -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", timeout=30, headers={"authorization": f"Bearer {key}"},
                      json={"model": "gpt", "max_tokens": 2, "messages": [{"role": "user", "content": content}]})


def test_server_budget_in_redis_is_exact_and_listed(redis_live, server_llm):
    server_llm.add(r"^budget", "Yes.")  # $0.25 a call
    keys = redis_live.state.keys
    assert isinstance(keys.counters, RedisCounters)
    key, _ = keys.create("http-spender", budget_usd=0.75)
    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda _: _chat(redis_live.url, key).status_code, range(8)))
    assert sorted(codes) == [200] * 3 + [429] * 5
    refused = _chat(redis_live.url, key)
    assert refused.json()["error"]["code"] == "budget_exceeded" and int(refused.headers["retry-after"]) > 0
    assert next(r for r in keys.list() if r["name"] == "http-spender")["spent_usd"] == 0.75


def test_server_answers_503_in_openai_shape_when_redis_is_down(redis_live, monkeypatch):
    keys = redis_live.state.keys
    key, _ = keys.create("while-down", rpm=100)
    dead = RedisCounters("redis://127.0.0.1:1/0", redis_live.state.store)
    monkeypatch.setattr(keys, "counters", dead)
    resp = _chat(redis_live.url, key, "hello")
    assert resp.status_code == 503 and resp.headers["retry-after"] == "5"
    err = resp.json()["error"]
    assert err["code"] == "counters_unavailable" and set(err) == {"message", "type", "param", "code"}


def test_a_real_redis_restart_fails_closed_then_keeps_the_months_spend(tmp_path, store, clock):
    """Kill the Redis the counters use: limited keys get CountersDown (→ 503); start it again (empty, no
    persistence): the month's spend comes back from the store, so the budget still ends where it should."""
    import shutil
    import subprocess
    import time

    from conftest import need
    from services_fixtures import _free_port, _redis_ping

    binary = shutil.which("redis-server")
    need(binary is not None, "redis-server is not installed (apt-get install redis-server)")
    assert binary is not None
    port = _free_port()

    def start() -> subprocess.Popen:
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                 "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not _redis_ping(port):  # readiness poll
            assert proc.poll() is None, "redis-server exited"
            time.sleep(0.02)
        return proc

    proc = start()
    counters = RedisCounters(f"redis://127.0.0.1:{port}/0", store)
    keys = KeyStore(store, clock, counters=counters)
    try:
        principal = _principal(keys, keys.create("restarted", budget_usd=1.0)[0])
        for _ in range(3):
            keys.settle(keys.admit(principal, 0.25), 0.25, 0)
        proc.terminate()
        proc.wait(10)
        with pytest.raises(CountersDown):
            keys.admit(principal, 0.25)
        proc = start()
        keys.settle(keys.admit(principal, 0.25), 0.25, 0)  # the fourth $0.25: re-seeded with $0.75 spent
        with pytest.raises(LimitExceeded):
            keys.admit(principal, 0.25)
        assert next(r for r in keys.list() if r["name"] == "restarted")["spent_usd"] == 1.0
    finally:
        counters.close()
        proc.terminate()
        proc.wait(10)

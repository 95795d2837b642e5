"""A cache backend that is down: uncached behaviour plus a warning span, never a failed request, and fast."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

from conftest import need

from flywheel.cache import Cache
from flywheel.cache.backends import Breaker
from flywheel.cache.backends.redis import RedisBackend
from flywheel.cache.embedding import HashingEmbedder
from flywheel.config import CacheConfig, SemanticCacheConfig
from flywheel.store import Store
from flywheel.types import ChatRequest

V = {"model_version": "m@1"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed




def q(text: str) -> ChatRequest:
    return ChatRequest.of(text, system="Support bot.")


def test_refused_connection_means_uncached_and_a_warning_span(spans, clock, monkeypatch) -> None:
    cfg = CacheConfig(backend=f"redis://127.0.0.1:{_closed_port()}/0", semantic=SemanticCacheConfig())
    cache = Cache.from_config(cfg, None, HashingEmbedder())
    cache.guarded.breaker.clock = clock  # no time passes: the breaker stays open after the first failure
    tries = {"n": 0}
    for op in ("get", "put", "search_semantic", "add_semantic"):
        if hasattr(cache.backend, op):
            real = getattr(cache.backend, op)

            def counted(*a, _real=real, **kw):
                tries["n"] += 1
                return _real(*a, **kw)

            monkeypatch.setattr(cache.backend, op, counted)
    for i in range(100):
        assert cache.lookup(q(f"question {i}"), **V) is None
        assert cache.save(q(f"question {i}"), "answer", **V) is None  # not stored, and no exception
    assert tries["n"] == 1, f"a dead Redis was dialled {tries['n']} times for 200 calls"  # cost: one timeout
    errors = [s for s in spans if s.name == "cache.error"]
    assert errors and all(s.kind == "cache" and s.error is None for s in errors)
    assert "refused" in errors[0].attributes["flywheel.cache.error"].lower() or \
        "connect" in errors[0].attributes["flywheel.cache.error"].lower()
    assert errors[0].outputs == errors[0].attributes["flywheel.cache.error"]  # `traces show` prints why
    lookups = [s for s in spans if s.name == "cache.lookup"]
    assert all(s.attributes["flywheel.cache.hit"] is False for s in lookups)
    assert all("flywheel.cache.error" in s.attributes for s in lookups)
    assert cache.status()["degraded"] is True


def test_breaker_skips_the_backend_while_open_and_retries_later(monkeypatch, clock) -> None:
    backend = RedisBackend(f"redis://127.0.0.1:{_closed_port()}/0")
    calls = {"n": 0}
    real_get = backend.get

    def counting_get(*a, **kw):
        calls["n"] += 1
        return real_get(*a, **kw)

    monkeypatch.setattr(backend, "get", counting_get)
    cache = Cache(backend, breaker=Breaker(base_s=0.2, max_s=1.0, clock=clock))
    for _ in range(20):
        assert cache.lookup(q("hello"), **V) is None
    assert calls["n"] == 1  # one real attempt; the other 19 were skipped without touching a socket
    clock.advance(0.19)
    cache.lookup(q("hello"), **V)
    assert calls["n"] == 1  # still backing off
    clock.advance(0.02)
    cache.lookup(q("hello"), **V)
    assert calls["n"] == 2  # half-open: one new try after the back-off


def test_redis_stopped_mid_flight_then_back(tmp_path, clock) -> None:
    binary = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server")
                                              else None)
    need(binary is not None, "redis-server is not installed")
    port = _closed_port()
    workdir = tempfile.mkdtemp(prefix="fw-redis-down-")

    def start() -> subprocess.Popen:
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", workdir], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return proc
            except OSError:
                time.sleep(0.02)
        proc.kill()
        need(False, "redis-server did not start")
        return proc

    proc = start()
    try:
        cache = Cache(RedisBackend(f"redis://127.0.0.1:{port}/0"),
                      breaker=Breaker(base_s=0.1, max_s=0.2, clock=clock))
        cache.save(q("What is the refund window?"), "30 days.", **V)
        assert cache.lookup(q("What is the refund window?"), **V).text == "30 days."
        proc.terminate()
        proc.wait(timeout=5)
        assert cache.lookup(q("What is the refund window?"), **V) is None  # no exception
        assert cache.save(q("Is shipping free?"), "Yes.", **V) is None  # breaker open: not even tried
        assert cache.status()["degraded"] is True
        proc = start()  # back (empty: no persistence)
        clock.advance(0.3)  # past the back-off: the next call tries Redis again
        cache.save(q("What is the refund window?"), "30 days.", **V)
        assert cache.lookup(q("What is the refund window?"), **V).text == "30 days."
        assert cache.status()["degraded"] is False
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_broken_store_never_fails_the_request(tmp_path, spans) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'flywheel.db'}")
    cache = Cache.from_config(CacheConfig(), store)
    cache.save(q("What is the refund window?"), "30 days.", **V)
    with store.begin() as conn:
        conn.exec_driver_sql("DROP TABLE cache_entries")  # a damaged database
    assert cache.lookup(q("What is the refund window?"), **V) is None
    assert cache.save(q("Is shipping free?"), "Yes.", **V) is None
    assert any(s.name == "cache.error" for s in spans)
    store.close()


def test_a_failing_embedder_is_a_miss_not_an_error(tmp_path, spans) -> None:
    class Broken:
        name = "broken"

        def embed(self, texts):
            raise RuntimeError("model file is corrupt")

    store = Store.open(f"sqlite:///{tmp_path / 'flywheel.db'}")
    cache = Cache.from_config(CacheConfig(exact=False, semantic=SemanticCacheConfig()), store, Broken())
    assert cache.save(q("What is the refund window?"), "30 days.", **V) is None
    assert cache.lookup(q("What is the refund window?"), **V) is None
    errors = [s.attributes["flywheel.cache.error"] for s in spans if s.name == "cache.error"]
    assert len(errors) == 2 and all("model file is corrupt" in e for e in errors)
    store.close()

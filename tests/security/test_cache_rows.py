"""Cache rows never hold a secret: every durable backend writes the scrubbed answer, question and hit-log
query (the Redis backend is checked against a recording client, so this runs without redis-server)."""

from __future__ import annotations

import json

import numpy as np

from flywheel.cache.backends.base import StoredAnswer
from flywheel.cache.backends.redis import RedisBackend
from flywheel.cache.backends.store import StoreBackend
from security.plants import found, secrets


class _Pipe:
    def __init__(self, log: list):
        self.log = log

    def __getattr__(self, name: str):
        return lambda *a, **k: self.log.append((name, a, k))

    def execute(self) -> list:
        return [1]


class _RecordingRedis:
    def __init__(self) -> None:
        self.log: list = []

    def set(self, *a, **k) -> None:
        self.log.append(("set", a, k))

    def incr(self, *a) -> int:
        return 1

    def pipeline(self, **_: object) -> _Pipe:
        return _Pipe(self.log)


def _write_everything(backend, text: str) -> None:
    backend.put(StoredAnswer("k1", f"the answer quotes {text}", 1.0))
    backend.put(StoredAnswer("k2", f"pinned: {text}", 1.0, pinned=True))
    backend.add_semantic("scope", f"question with {text}", f"answer with {text}", np.ones(4, np.float32),
                         created_at=1.0, expires_at=None, meta={})
    backend.log_hit({"created_at": 1.0, "kind": "semantic", "accepted": True, "tenant": "t", "model": "m",
                     "scope": "scope", "entry": "1", "similarity": 0.9, "verifier_p": 0.8,
                     "query": f"query with {text}", "cached_question": f"cached {text}", "trace_id": None})


def test_store_backend_rows_are_scrubbed(store):
    plants = secrets(5)
    text = "\n".join(p.sentence for p in plants)
    backend = StoreBackend(store)
    _write_everything(backend, text)
    store.writer.flush()
    rows = []
    with store.engine.connect() as conn:
        for table in ("cache_entries", "cache_semantic", "cache_hits"):
            rows += [str(tuple(r)) for r in conn.exec_driver_sql(f"SELECT * FROM {table}")]
    blob = "\n".join(rows)
    assert blob.count("[REDACTED]") >= 4 * len(plants)
    assert found(blob, plants) == []
    assert backend.get("k1", 0.0).text.startswith("the answer quotes")  # stored, just scrubbed


def test_redis_backend_writes_are_scrubbed():
    plants = secrets(6)
    text = "\n".join(p.sentence for p in plants)
    backend = RedisBackend("redis://127.0.0.1:1/0")
    backend.client = _RecordingRedis()
    _write_everything(backend, text)
    written = json.dumps([repr(entry) for entry in backend.client.log])
    assert "REDACTED" in written and len(backend.client.log) >= 4
    assert found(written, plants) == []

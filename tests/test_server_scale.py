"""Two `flywheel serve` worker processes on one PostgreSQL store behave as one server, with the budget and rate
counters in the store or in Redis: a budget is exhausted exactly at its limit, a rate limit holds with a
`Retry-After`, under concurrent requests spread over both workers, and both workers' traces land in one store."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from flywheel.config import Project
from flywheel.server.keys import KeyStore
from flywheel.store import Store

pytestmark = pytest.mark.postgres


@pytest.fixture(params=["store", pytest.param("redis", marks=pytest.mark.redis)])
def workers(request, tmp_path, pg_fresh_url, server_llm):
    from server_support import PROJECT_YAML

    head = f"store: {pg_fresh_url}\n"
    if request.param == "redis":
        redis_url = request.getfixturevalue("redis_url")
        head += f"server: {{redis: '{redis_url}?prefix=t-{uuid.uuid4().hex[:8]}:'}}\n"
    (tmp_path / "flywheel.yaml").write_text(head + PROJECT_YAML.format(base=server_llm.base_url), encoding="utf-8")
    project = Project.load(tmp_path)
    with Store.open(project.store_url) as store:  # migrated once here; keys made before the workers start
        keys = KeyStore(store)
        made = {"budget": keys.create("budget", budget_usd=1.0)[0], "rate": keys.create("rate", rpm=5)[0],
                "free": keys.create("free")[0]}
    proc = subprocess.Popen([sys.executable, "-m", "flywheel", "--project", str(tmp_path), "serve", "--port", "0",
                             "--workers", "2"], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    access: list[dict] = []  # the JSON access log lines of both workers
    try:
        port = None
        for line in proc.stderr:
            if m := re.search(r"at http://127\.0\.0\.1:(\d+)", line):
                port = int(m.group(1))
                break
        assert port

        def read_log() -> None:
            for line in proc.stderr:
                if line.startswith('{"ts"'):
                    access.append(json.loads(line))

        threading.Thread(target=read_log, daemon=True).start()
        url = f"http://127.0.0.1:{port}"
        while True:  # readiness poll
            try:
                if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url, made, project, access
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def _chat(url: str, key: str, content: str = "budget call") -> httpx.Response:
    with httpx.Client(timeout=60) as client:  # a new connection each time: spread over both workers
        return client.post(url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                           json={"model": "gpt", "max_tokens": 2, "messages": [{"role": "user", "content": content}]})


def test_budget_rate_limit_and_traces_across_two_workers(workers, server_llm):
    url, keys, project, access = workers
    server_llm.add(r"^budget", "Yes.")  # $0.25 a call (max_tokens 2 reserves exactly that); the budget is $1.00
    with ThreadPoolExecutor(8) as pool:
        codes = [r.status_code for r in pool.map(lambda _: _chat(url, keys["budget"]), range(12))]
    assert sorted(codes) == [200] * 4 + [429] * 8
    with Store.open(project.store_url) as store:
        row = next(r for r in KeyStore(store).list() if r["name"] == "budget")
    assert row["spent_usd"] == 1.0 and row["reserved_usd"] == 0.0  # `flywheel keys list` shows the spend

    if time.time() % 60 > 50:  # one minute's window for the rate phase (a wait, not a timing assertion)
        time.sleep(61 - time.time() % 60)
    minute = int(time.time() // 60)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _chat(url, keys["rate"], "hello"), range(9)))
    if int(time.time() // 60) == minute:
        assert [r.status_code for r in answers].count(200) == 5  # rpm 5, exactly, over both workers
    for refused in (r for r in answers if r.status_code == 429):
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert 1 <= int(refused.headers["retry-after"]) <= 60

    served: dict[str, int] = {}  # trace id → pid of the worker that answered
    for _ in range(200):  # until both workers have answered (the kernel picks the worker per connection)
        resp = _chat(url, keys["free"], "hello")
        assert resp.status_code == 200
        rid = resp.headers["x-request-id"]
        deadline = time.monotonic() + 30
        while not any(a["request_id"] == rid for a in access) and time.monotonic() < deadline:
            time.sleep(0.01)  # its access-log line
        served[resp.headers["x-flywheel-trace-id"]] = next(a["pid"] for a in access if a["request_id"] == rid)
        if len(set(served.values())) == 2:
            break
    assert len(set(served.values())) == 2
    from flywheel.tracing import get_trace

    with Store.open(project.store_url) as store:
        for trace_id in served:
            deadline = time.monotonic() + 30
            while get_trace(store, trace_id) is None and time.monotonic() < deadline:  # the writer flushes ~1 s
                time.sleep(0.1)
            assert get_trace(store, trace_id) is not None

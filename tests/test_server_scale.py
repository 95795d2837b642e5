"""Two `flywheel serve` worker processes on one PostgreSQL store behave as one server: a budget is exhausted
exactly at its limit and a rate limit holds, under concurrent requests spread over both workers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from flywheel.config import Project
from flywheel.server.keys import KeyStore
from flywheel.store import Store

pytestmark = pytest.mark.postgres


@pytest.fixture
def workers(tmp_path, pg_fresh_url, server_llm):
    from server_support import PROJECT_YAML

    (tmp_path / "flywheel.yaml").write_text(f"store: {pg_fresh_url}\n" + PROJECT_YAML.format(base=server_llm.base_url),
                                            encoding="utf-8")
    project = Project.load(tmp_path)
    with Store.open(project.store_url) as store:  # migrated once here; keys made before the workers start
        keys = KeyStore(store)
        made = {"budget": keys.create("budget", budget_usd=1.0)[0], "rate": keys.create("rate", rpm=5)[0]}
    proc = subprocess.Popen([sys.executable, "-m", "flywheel", "--project", str(tmp_path), "serve", "--port", "0",
                             "--workers", "2", "--no-access-log"], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        port = None
        for line in proc.stderr:
            if m := re.search(r"at http://127\.0\.0\.1:(\d+)", line):
                port = int(m.group(1))
                break
        assert port
        url = f"http://127.0.0.1:{port}"
        while True:  # readiness poll
            try:
                if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url, made, project
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def _chat(url: str, key: str) -> int:
    with httpx.Client(timeout=60) as client:  # a new connection each time: spread over both workers
        return client.post(url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                           json={"model": "gpt", "max_tokens": 2,
                                 "messages": [{"role": "user", "content": "budget call"}]}).status_code


def test_budget_and_rate_limit_are_exact_across_two_workers(workers, server_llm):
    url, keys, project = workers
    server_llm.add(r"^budget", "Yes.")  # $0.25 a call; the key's budget is $1.00
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: _chat(url, keys["budget"]), range(12)))
    assert sorted(codes) == [200] * 4 + [429] * 8
    with Store.open(project.store_url) as store:
        row = next(r for r in KeyStore(store).list() if r["name"] == "budget")
    assert row["spent_usd"] == 1.0 and row["reserved_usd"] == 0.0

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: _chat(url, keys["rate"]), range(9)))
    assert sorted(codes).count(200) <= 5 and codes.count(429) >= 4  # 5 a minute (a minute may turn mid-test)

"""A batch survives its server: `flywheel serve` (a real process) is killed with SIGKILL mid-batch and started
again; the new process takes the batch over and finishes it without sending any finished request again (counted
at fake_llm)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import httpx
from openai import OpenAI

from flywheel.testing.fake_llm import FakeLLM

YAML = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}", model: fake-model, max_retries: 0}}
cache: {{exact: false}}
retrieval: {{embedder: none}}
server: {{batch_concurrency: 1, online_evaluators: false, embed_worker: false}}
"""


def _serve(root) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "flywheel", "--project", str(root), "serve", "--port", "0"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stderr is not None
    port = None
    for line in proc.stderr:
        if m := re.search(r"at http://127\.0\.0\.1:(\d+)", line):
            port = int(m.group(1))
            break
    assert port, "the server did not start"
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # keep the pipe drained
    url = f"http://127.0.0.1:{port}"
    while True:  # readiness poll
        try:
            if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.05)


def test_killed_server_resumes_batch_without_repeating_requests(tmp_path):
    gate = threading.Event()

    def reply(body: dict) -> str:
        text = body["messages"][-1]["content"]
        if text == "q3" and not gate.is_set():
            gate.wait(60)  # in flight when the server is killed
        return f"answer to {text}"

    with FakeLLM() as llm:
        llm.add(r"^q\d$", reply)
        (tmp_path / "flywheel.yaml").write_text(YAML.format(base=llm.base_url), encoding="utf-8")
        lines = [{"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions",
                  "body": {"model": "gpt", "messages": [{"role": "user", "content": f"q{i}"}]}} for i in range(6)]
        proc, url = _serve(tmp_path)
        try:
            client = OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            f = client.files.create(file=("in.jsonl", "\n".join(json.dumps(x) for x in lines).encode()),
                                    purpose="batch")
            batch = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
            while not any(r["messages"][-1]["content"] == "q3" for r in llm.requests):
                time.sleep(0.02)
            assert client.batches.retrieve(batch.id).request_counts.completed == 3
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        gate.set()
        proc, url = _serve(tmp_path)
        try:
            client = OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            while (done := client.batches.retrieve(batch.id)).status not in ("completed", "failed"):
                time.sleep(0.05)
            out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    assert done.status == "completed" and done.request_counts.completed == 6
    assert [x["custom_id"] for x in out] == [f"c{i}" for i in range(6)]
    assert [x["response"]["body"]["choices"][0]["message"]["content"] for x in out] == \
        [f"answer to q{i}" for i in range(6)]
    sent = Counter(r["messages"][-1]["content"] for r in llm.requests)
    # finished before the kill: sent once; q3 was in flight when the process died, so it is sent again
    assert sent == {"q0": 1, "q1": 1, "q2": 1, "q3": 2, "q4": 1, "q5": 1}

"""Shared helpers for the workflow tests: a gateway on the fake LLM, the last user message of a request, and a
workflow the subprocess-kill test runs in a child process."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any


def gateway(llm: Any, **extra: Any) -> Any:
    from flywheel.config import ModelAlias
    from flywheel.gateway import Gateway

    models = {"default": ModelAlias(provider="openai_compat", base_url=llm.base_url, model="fake", max_retries=0,
                                    json_schema=False)}
    models.update(extra)
    return Gateway(models)


def last_user(body: dict) -> str:
    for m in reversed(body.get("messages") or []):
        if m.get("role") in ("user", "tool"):
            content = m.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def chat_requests(llm: Any) -> list[dict]:
    return [r for r in llm.requests if r.get("path", "").endswith("/chat/completions")]


# ------------------------------------------------------------------ the workflow the kill test runs

def _count(name: str) -> None:
    path = Path(os.environ["WF_COUNTS"])
    counts = json.loads(path.read_text()) if path.exists() else {}
    counts[name] = counts.get(name, 0) + 1
    path.write_text(json.dumps(counts))


def killable_workflow() -> Any:
    from flywheel.workflows import Workflow, step

    @step
    def fetch(topic: str) -> str:
        _count("fetch")
        return f"notes about {topic}"

    @step
    def expand(fetch: str) -> str:
        _count("expand")
        if os.environ.get("WF_KILL") == "1":
            from flywheel.tracing import tracer

            tracer.flush()  # the spans of the steps that finished reach the store (the root's never does)
            os.kill(os.getpid(), signal.SIGKILL)  # dies mid-run: no cleanup, no finally
        return fetch.upper()

    @step
    def finish(expand: str) -> str:
        _count("finish")
        return f"{expand}!"

    return Workflow(steps=[fetch, expand, finish], name="killable", inputs=["topic"])


def run_child() -> None:
    """`python -c "import workflows_support as w; w.run_child()" STORE_URL RUN_ID` (imported, not run as
    __main__, so the steps' functions have the same module name as in the test process)."""
    from flywheel.store import Store
    from flywheel.workflows import WorkflowServices

    store = Store.open(sys.argv[1])
    if os.environ.get("WF_TRACE") == "1":
        from flywheel.tracing import attach_store

        attach_store(store)
    killable_workflow().run({"topic": "tides"}, services=WorkflowServices(store=store), run_id=sys.argv[2])

"""Shared fixtures of the dashboard tests: ONE live server (a `flywheel serve` app with the dashboard mounted, on
127.0.0.1, with two tenants' keys and an admin key) over a demo-like store, and ONE Chromium per test session.

The store is filled directly (deterministic): tenant acme has 120 traces of the support app over 3 sessions and
4 users, with guard, cache, retrieval and model-call spans, thumbs up/down feedback and one 600-span trace;
tenant globex has 5 traces. Screenshots go to tests/artifacts/ (gitignored)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import need

ARTIFACTS = Path(__file__).parent / "artifacts"
ADMIN_KEY = "fw-admin-test-key-0123456789abcdef"
CHROMIUM = "/usr/bin/chromium"
T0 = 1_780_000_000.0  # a fixed start: rows are ordered by time, never by insertion
BIG_TRACE = "b" * 32
GLOBEX_TRACE = "c" * 31 + "1"


def trace_id(i: int) -> str:
    return f"{i:032x}"


def _span(tid: str, sid: str, parent: str | None, name: str, kind: str, start: float, ms: float, **extra: Any):
    row = {"span_id": sid, "trace_id": tid, "parent_id": parent, "name": name, "kind": kind,
           "start_ns": int(start * 1e9), "end_ns": int((start + ms / 1000) * 1e9), "latency_ms": ms,
           "inputs": None, "outputs": None, "output_state": "ok", "error": None, "attributes": None, "model": None,
           "provider": None, "input_tokens": None, "output_tokens": None, "cost_usd": None, "prompt_version": None,
           "tenant": None, "app": None}
    row.update(extra)
    return row


def demo_trace(i: int, tenant: str, *, question: str, answer: str, model: str = "gpt", status: str = "ok",
               guard_action: str = "pass", cache_hit: bool = False, session: str | None = None,
               user: str | None = None, tid: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    tid = tid or trace_id(i)
    start = T0 + i * 60
    root = f"{i:08x}00000000"
    spans = [
        _span(tid, root, None, "support", "app", start, 900, tenant=tenant, app="support", model=model,
              inputs={"question": question}, outputs=answer),
        _span(tid, f"{i:08x}00000001", root, "guard.injection", "guard", start + 0.01, 5,
              inputs={"stage": "input", "chars": len(question)}, outputs={"passed": guard_action == "pass"},
              attributes={"flywheel.guard.check": "injection", "flywheel.guard.action": guard_action}),
        _span(tid, f"{i:08x}00000002", root, "cache.lookup", "cache", start + 0.02, 2,
              attributes={"flywheel.cache.hit": cache_hit}),
        _span(tid, f"{i:08x}00000003", root, "retrieval.search", "retrieval", start + 0.03, 40,
              inputs={"query": question, "k": 2},
              outputs=[{"chunk_id": "c1", "source": "docs/refunds.md", "score": 0.91},
                       {"chunk_id": "c2", "source": "docs/shipping.md", "score": 0.42}]),
        _span(tid, f"{i:08x}00000004", root, "gateway.chat", "llm", start + 0.1, 700, model=model, provider="openai",
              input_tokens=120, output_tokens=30, cost_usd=0.0021,
              inputs={"messages": [{"role": "system", "content": "You are ACME support."},
                                   {"role": "user", "content": f"Context: refunds take 5 days.\n\n{question}"}],
                      "params": {"temperature": 0}},
              outputs=answer),
    ]
    row = {"trace_id": tid, "name": "support", "kind": "app", "started_at": start, "ended_at": start + 0.9,
           "latency_ms": 900.0 + i, "status": status, "error": "boom" if status == "error" else None,
           "input_preview": question, "output_preview": answer, "output_state": "ok", "tenant": tenant,
           "app": "support", "model": model, "prompt_version": "v2" if i % 2 else "v1", "span_count": len(spans),
           "error_count": 1 if status == "error" else 0, "input_tokens": 120, "output_tokens": 30,
           "cost_usd": 0.0021, "session_id": session, "user_id": user}
    return row, spans


def big_trace(tid: str, n: int, tenant: str, start: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A trace of `n` spans: a root, 10 steps, the rest tool calls under them with 2 KB bodies."""
    root = tid[:6] + "cc" + "0" * 8
    spans = [_span(tid, root, None, "agent", "app", start, 5000, tenant=tenant, inputs={"question": "plan a trip"},
                   outputs="done")]
    steps = [f"{tid[:6]}aa{k:08x}" for k in range(10)]
    spans += [_span(tid, s, root, f"step {k}", "chain", start + k * 0.4, 400) for k, s in enumerate(steps)]
    body = "x" * 2048
    for j in range(n - len(spans)):
        spans.append(_span(tid, f"{tid[:6]}bb{j:08x}", steps[j % 10], f"tool {j}", "tool", start + j * 0.0009, 0.8,
                           inputs={"arg": body, "j": j}, outputs={"result": body}))
    row = {"trace_id": tid, "name": "agent", "kind": "app", "started_at": start, "ended_at": start + 5,
           "latency_ms": 5000.0, "status": "ok", "error": None, "input_preview": "plan a trip",
           "output_preview": "done", "output_state": "ok", "tenant": tenant, "app": "agent", "model": None,
           "prompt_version": None, "span_count": n, "error_count": 0, "input_tokens": 0, "output_tokens": 0,
           "cost_usd": 0.0, "session_id": None, "user_id": None}
    return row, spans


def seed(store: Any) -> None:
    """The demo-like data set described in the module docstring."""
    from flywheel import feedback
    from flywheel.store.schema import spans, traces

    rows, all_spans = [], []
    for i in range(120):
        q = "How long do refunds take?" if i % 3 else f"Where is my parcel {i}?"
        row, sp = demo_trace(i, "acme", question=q, answer="Refunds take 5 days.",
                             model="gpt" if i % 4 else "other", status="error" if i % 10 == 7 else "ok",
                             guard_action="block" if i % 15 == 0 else "pass", cache_hit=i % 5 == 0,
                             session=f"sess-{i % 3}", user=f"user-{i % 4}")
        rows.append(row)
        all_spans += sp
    for k in range(5):
        row, sp = demo_trace(500 + k, "globex", question="globex secret question", answer="globex answer",
                             tid=GLOBEX_TRACE if k == 0 else None)
        rows.append(row)
        all_spans += sp
    row, sp = big_trace(BIG_TRACE, 600, "acme", T0 + 200 * 60)
    rows.append(row)
    all_spans += sp
    with store.engine.begin() as conn:
        conn.execute(traces.insert(), rows)
        conn.execute(spans.insert(), all_spans)
    for i in range(0, 120, 6):
        feedback.record(store, trace_id(i), "thumbs", "down" if i % 12 == 0 else "up", tenant="acme",
                        comment="wrong refund period" if i % 12 == 0 else None, actor="tester", created_at=T0 + i)


class WebServer:
    def __init__(self, live: Any, keys: dict[str, str], llm: Any = None):
        self.live, self.keys, self.llm = live, keys, llm
        self.url = live.url

    def wait_for_trace(self, trace_id: str, key: str) -> None:
        """Until the server's trace writer has stored `trace_id` (a readiness poll, not a timing assertion)."""
        import httpx

        for _ in range(500):
            r = httpx.get(f"{self.url}/ui/traces/{trace_id}.json", headers={"Authorization": f"Bearer {key}"})
            if r.status_code == 200:
                return
            time.sleep(0.02)
        raise AssertionError(f"trace {trace_id} was never stored")


def start_server(root: Path, base_url: str = "http://127.0.0.1:9/v1") -> WebServer:
    from server_support import LiveServer, write_project

    from flywheel import web
    from flywheel.server import create_app

    project = write_project(root, base_url)
    app = create_app(project)
    state = app.state.flywheel
    web.mount(app, state)
    seed(state.store)
    state.admin_key = ADMIN_KEY
    keys = {"acme": state.keys.create("acme-viewer", tenant="acme")[0],
            "globex": state.keys.create("globex-viewer", tenant="globex")[0], "admin": ADMIN_KEY}
    return WebServer(LiveServer(app).start(), keys)


@pytest.fixture(scope="session")
def web_server(tmp_path_factory):
    from flywheel.testing.fake_llm import FakeLLM

    with FakeLLM() as llm:
        server = start_server(tmp_path_factory.mktemp("web"), llm.base_url)
        server.llm = llm
        yield server
        server.live.stop()


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module. Not per session: Playwright's sync API keeps an event loop running in the
    main thread until it stops, and later tests that call asyncio.run() would fail."""
    need(os.path.exists(CHROMIUM), f"{CHROMIUM} (Debian package chromium) is not installed")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        need(False, "the playwright Python package is not installed")
        raise
    # how long expect() waits for a page to reach a state (not a speed check): 5 s by default, too short for a
    # form post that ingests or calls the model while a loaded 2-core machine runs other tests
    expect.set_options(timeout=20_000)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


class Watched:
    """A page that records console errors and uncaught exceptions."""

    def __init__(self, context: Any):
        self.context = context
        self.page = context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


def login(browser: Any, server: WebServer, who: str, locale: str = "en-US") -> Watched:
    """A fresh browser context logged in with `who`'s key (acme, globex or admin)."""
    w = Watched(browser.new_context(locale=locale, viewport={"width": 1400, "height": 900}))
    w.page.goto(f"{server.url}/ui/login")
    w.page.fill('input[name="key"]', server.keys[who])
    w.page.click("#login-submit")
    w.page.wait_for_url("**/ui/traces**")
    return w



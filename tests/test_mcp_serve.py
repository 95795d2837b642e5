"""`/mcp` inside a real `flywheel serve --workers 2` process on 127.0.0.1, driven by the official MCP client over
streamable HTTP: the tools it lists, `search` in English and Chinese, `ask` with citations, and the keys of /v1 —
a wrong key is a 401, a tenant's key sees only its tenant's documents, an app-limited key cannot ask another app,
a key over its budget cannot ask — with each call traced under the key's tenant."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("mcp", reason="the MCP tests need the `mcp` extra")

from flywheel.apps.runtime import Runtime
from flywheel.config import Project

YAML = """retrieval: {embedder: none}
cache: {exact: false}
apps:
  support: {kind: chat, model: default}
"""
PAGES = {
    "default": {
        "en/refund.md": "# Refund policy\n\nWithin 7 days of delivery, unused items in their original packaging can "
                        "be returned for a refund.\n",
        "zh/refund.md": "# 退款政策\n\n自签收之日起 7 天内，商品未使用且包装完好的，可以申请无理由退款。\n",
    },
    "acme": {"acme/pricing.md": "# Enterprise pricing\n\nThe enterprise plan costs 990 euros per seat and year.\n"},
}


@dataclass
class Served:
    root: Path
    url: str
    keys: dict[str, str]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    from flywheel.retrieval.ingest import ingest
    from flywheel.server.keys import KeyStore

    root = tmp_path_factory.mktemp("mcp_serve")
    (root / "flywheel.yaml").write_text(YAML, encoding="utf-8")
    project = Project.load(root)
    with Runtime(project) as rt:
        for tenant, pages in PAGES.items():
            folder = root / "docs" / tenant
            for name, text in pages.items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_text(text, encoding="utf-8")
            ingest([folder], rt.store, project.config, tenant=tenant, root=root)
        made = KeyStore(rt.store)
        keys = {"main": made.create("main")[0], "acme": made.create("acme", tenant="acme")[0],
                "qa_only": made.create("qa-only", apps=["docs_qa"])[0],
                "broke": made.create("broke", budget_usd=0.0)[0]}
    proc = subprocess.Popen([sys.executable, "-m", "flywheel", "--project", str(root), "serve", "--port", "0",
                             "--workers", "2", "--no-access-log"], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()
        match = re.search(r"at http://127\.0\.0\.1:(\d+)", banner)
        assert match, banner
        url = f"http://127.0.0.1:{match.group(1)}"
        while True:  # readiness poll: the workers listen once they have started
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        rest: list[str] = []
        threading.Thread(target=lambda: rest.extend(proc.stderr), daemon=True).start()  # never a full pipe
        yield Served(root, url, keys)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    log = "".join(rest)
    # the session manager's task group is left by the task that entered it, in every worker
    assert "Traceback" not in log and log.count("Application shutdown complete") == 2, log


@contextlib.asynccontextmanager
async def _transport(url: str, headers: dict[str, str]) -> AsyncIterator[Any]:
    from mcp.client import streamable_http as http

    if hasattr(http, "streamable_http_client"):  # mcp ≥ 1.24: headers go on the HTTP client
        from mcp.shared._httpx_utils import create_mcp_http_client

        async with create_mcp_http_client(headers=headers) as client, \
                http.streamable_http_client(url, http_client=client) as streams:
            yield streams
    else:  # mcp 1.x
        async with http.streamablehttp_client(url, headers=headers) as streams:  # type: ignore[attr-defined]
            yield streams


def session_run(served: Served, key: str, work: Any) -> Any:
    """Run `work(session)` with an MCP client session to the server's /mcp, authenticated by `key`."""
    from mcp import ClientSession

    async def go() -> Any:
        async with _transport(f"{served.url}/mcp", {"Authorization": f"Bearer {key}"}) as streams, \
                ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            return await work(session)

    return asyncio.run(go())


def wire(result: Any) -> dict[str, Any]:
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


def payload(result: Any) -> Any:
    data = wire(result)
    assert not data.get("isError"), data
    if data.get("structuredContent") is not None:
        return data["structuredContent"]
    return json.loads(data["content"][0]["text"])


def error_text(result: Any) -> str:
    data = wire(result)
    assert data.get("isError"), data
    return str(data["content"][0]["text"])


def stored_trace(root: Path, trace_id: str) -> dict[str, Any]:
    """The trace as the server stored it (its writer commits in the background: waited for, not timed)."""
    from flywheel.store import Store
    from flywheel.tracing import get_trace

    with Store.open(Project.load(root).store_url) as store:
        for _ in range(600):
            trace = get_trace(store, trace_id)
            if trace is not None and trace.get("status") != "incomplete":
                return trace
            time.sleep(0.05)
    raise AssertionError(f"trace {trace_id} was never stored")


def test_tools_search_in_english_and_chinese_and_ask(served):
    async def work(session: Any) -> dict[str, Any]:
        return {
            "tools": {t.name: t for t in (await session.list_tools()).tools},
            "en": await session.call_tool("search", {"query": "refund within 7 days of delivery", "k": 2}),
            "zh": await session.call_tool("search", {"query": "无理由退款", "k": 2}),
            "ask": await session.call_tool("ask", {"question": "How many days do I have to return an item?"}),
            "prompts": [p.name for p in (await session.list_prompts()).prompts],
        }

    out = session_run(served, served.keys["main"], work)
    assert {"search", "ask"} <= set(out["tools"])
    schema = wire(out["tools"]["search"])["inputSchema"]
    assert schema["required"] == ["query"] and "ctx" not in schema["properties"]

    en = payload(out["en"])
    assert en["passages"][0]["source"].endswith("en/refund.md") and "7 days" in en["passages"][0]["text"]
    zh = payload(out["zh"])
    assert zh["passages"][0]["source"].endswith("zh/refund.md") and "无理由退款" in zh["passages"][0]["text"]
    answer = payload(out["ask"])
    assert answer["refused"] is False and "[1]" in answer["answer"]
    assert answer["citations"][0]["source"].endswith("en/refund.md")
    assert answer["feedback"]["token"]  # for POST /v1/feedback, like /v1/apps

    search_trace = stored_trace(served.root, en["trace_id"])
    assert search_trace["tenant"] == "default"
    (root_span,) = search_trace["spans"]
    assert root_span["name"] == "mcp.search" and root_span["attributes"]["flywheel.key"] == "main"
    ask_trace = stored_trace(served.root, answer["trace_id"])
    assert ask_trace["tenant"] == "default"
    assert ask_trace["spans"][0]["attributes"]["flywheel.mcp.tool"] == "ask"


def test_a_wrong_key_is_401(served):
    wrong = "fw-000000000000-" + "x" * 40
    resp = httpx.post(f"{served.url}/mcp", headers={"Authorization": f"Bearer {wrong}",
                                                    "Accept": "application/json, text/event-stream"},
                      json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=30)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_api_key"
    assert resp.headers["www-authenticate"] == "Bearer"
    missing = httpx.post(f"{served.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=30)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"

    async def work(session: Any) -> Any:
        return await session.list_tools()

    with pytest.raises(BaseException) as failed:  # the SDK wraps the HTTP error in task groups
        session_run(served, wrong, work)
    leaf = failed.value
    while isinstance(leaf, BaseExceptionGroup) and leaf.exceptions:
        leaf = leaf.exceptions[0]
    # mcp 2.x: the server's error response; mcp 1.x: httpx's status error naming the 401
    assert "error response" in str(leaf) or "401" in str(leaf), repr(leaf)


def test_a_tenant_key_sees_only_its_tenants_documents(served):
    query = {"query": "enterprise plan price per seat"}

    async def work(session: Any) -> dict[str, Any]:
        return {"own": await session.call_tool("search", query),
                "other": await session.call_tool("search", {**query, "tenant": "default"}),
                "ask_other": await session.call_tool("ask", {"question": "What does the plan cost?",
                                                             "tenant": "default"})}

    acme = session_run(served, served.keys["acme"], work)
    own = payload(acme["own"])
    assert own["passages"] and own["passages"][0]["source"].endswith("acme/pricing.md")
    assert "cannot act for another tenant" in error_text(acme["other"])
    assert "cannot act for another tenant" in error_text(acme["ask_other"])
    assert stored_trace(served.root, own["trace_id"])["tenant"] == "acme"

    async def main_work(session: Any) -> Any:
        return await session.call_tool("search", query)

    seen = payload(session_run(served, served.keys["main"], main_work))["passages"]
    assert not any(p["source"].endswith("acme/pricing.md") for p in seen)


def test_an_app_limited_key_cannot_ask_another_app_and_budgets_apply(served):
    async def work(session: Any) -> dict[str, Any]:
        return {"allowed": await session.call_tool("ask", {"question": "How many days to return an item?"}),
                "other": await session.call_tool("ask", {"question": "hello", "app": "support"})}

    limited = session_run(served, served.keys["qa_only"], work)
    assert payload(limited["allowed"])["citations"]
    assert "may not use app `support`" in error_text(limited["other"])

    async def broke_work(session: Any) -> dict[str, Any]:
        return {"ask": await session.call_tool("ask", {"question": "How many days to return an item?"}),
                "search": await session.call_tool("search", {"query": "refund"})}

    broke = session_run(served, served.keys["broke"], broke_work)
    assert "budget" in error_text(broke["ask"])
    assert payload(broke["search"])["passages"]  # search has no cost to meter


def test_an_open_server_answers_local_pages_only(tmp_path):
    """Without keys, on 127.0.0.1, the server is open: a web page of another site (a DNS-rebinding attack) must
    not reach the documents through the browser."""
    from server_support import LiveServer

    from flywheel.server import create_app

    (tmp_path / "flywheel.yaml").write_text(YAML, encoding="utf-8")
    live = LiveServer(create_app(Project.load(tmp_path))).start()
    try:
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "t", "version": "1"}}}
        accept = {"Accept": "application/json, text/event-stream"}
        foreign = httpx.post(f"{live.url}/mcp", json=init, timeout=30,
                             headers={**accept, "Origin": "http://evil.example:8000"})
        assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "origin_not_allowed"
        local = httpx.post(f"{live.url}/mcp", json=init, timeout=30,
                           headers={**accept, "Origin": "http://localhost:6274"})
        assert local.status_code == 200 and local.json()["result"]["serverInfo"]["name"] == "flywheel"
        tool = httpx.post(f"{live.url}/mcp", timeout=30, headers={**accept, "Mcp-Protocol-Version": "2025-06-18"},
                          json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        assert tool.status_code == 200 and {"search", "ask"} <= {t["name"] for t in tool.json()["result"]["tools"]}
    finally:
        live.stop()


def test_a_prompt_file_that_does_not_load_is_a_503_saying_why_until_fixed(tmp_path):
    from server_support import LiveServer

    from flywheel.server import create_app

    (tmp_path / "flywheel.yaml").write_text(YAML, encoding="utf-8")
    (tmp_path / "prompts").mkdir()
    bad = tmp_path / "prompts" / "broken.yaml"
    bad.write_text("template: [not closed\n", encoding="utf-8")
    live = LiveServer(create_app(Project.load(tmp_path))).start()
    try:
        listing = {"jsonrpc": "2.0", "id": 1, "method": "prompts/list"}
        headers = {"Accept": "application/json, text/event-stream", "Mcp-Protocol-Version": "2025-06-18"}
        refused = httpx.post(f"{live.url}/mcp", json=listing, headers=headers, timeout=30)
        assert refused.status_code == 503 and "broken.yaml" in refused.json()["error"]["message"]
        bad.write_text("template: 'Answer {{question}}'\n", encoding="utf-8")
        fixed = httpx.post(f"{live.url}/mcp", json=listing, headers=headers, timeout=30)
        assert fixed.status_code == 200 and [p["name"] for p in fixed.json()["result"]["prompts"]] == ["broken"]
    finally:
        live.stop()


def test_a_tenant_without_documents_is_told_so_without_the_servers_paths(served):
    from flywheel.server.keys import KeyStore

    with Runtime(Project.load(served.root)) as rt:
        key = KeyStore(rt.store).create("newco", tenant="newco")[0]

    async def work(session: Any) -> dict[str, Any]:
        return {"search": await session.call_tool("search", {"query": "何时发货"}),
                "ask": await session.call_tool("ask", {"question": "When does it ship?"})}

    out = session_run(served, key, work)
    found, answer = payload(out["search"]), payload(out["ask"])
    assert found["passages"] == [] and answer["refusal"] == "no_passage"
    for note in (found["note"], answer["note"]):
        assert note == "tenant 'newco' has no documents yet: ingest some with `flywheel ingest PATH --tenant newco`"
    assert str(served.root) not in json.dumps([found, answer])  # a remote caller learns no path of the server

"""`flywheel mcp` with the official MCP clients, on what a user gets wrong: a project with nothing ingested (the
client is told so, instead of an empty list that looks like "nothing relevant"), out-of-range and empty
arguments, an unknown app, and `--http` on a port that is taken — plus the streamable-HTTP transport itself,
with English and Chinese questions."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the MCP tests need the `mcp` extra")

from test_mcp_server import payload, session_run, wire

from flywheel.apps.runtime import Runtime
from flywheel.config import Project
from flywheel.retrieval import gloss

DOCS = {"account.md": "# Account\n\nTo reset your password, open Settings, choose Security and click Reset password.\n",
        "zh.md": "# 账户\n\n要重置密码，请打开“设置”，选择“安全”，然后点击“重置密码”。\n"}


@pytest.fixture(scope="module")
def empty(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mcp_empty")
    (root / "flywheel.yaml").write_text("retrieval: {embedder: none}\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> Path:
    from flywheel.retrieval.ingest import ingest

    root = tmp_path_factory.mktemp("mcp_filled")
    (root / "flywheel.yaml").write_text("# the default local embedder: English, Chinese through glosses\n",
                                        encoding="utf-8")
    for name, text in DOCS.items():
        (root / "docs" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "docs" / name).write_text(text, encoding="utf-8")
    project = Project.load(root)
    with Runtime(project) as rt:
        ingest([root / "docs"], rt.store, project.config, root=root)
    return root


def test_a_project_with_nothing_ingested_says_so_in_english_and_chinese(empty):
    async def work(session: Any) -> dict[str, Any]:
        return {"en": await session.call_tool("search", {"query": "how do I reset my password"}),
                "zh": await session.call_tool("search", {"query": "如何重置密码"}),
                "other": await session.call_tool("search", {"query": "password", "tenant": "acme"}),
                "ask": await session.call_tool("ask", {"question": "如何重置密码？"})}

    out = session_run(empty, work)
    for key in ("en", "zh"):
        got = payload(out[key])
        assert got["passages"] == []
        assert "tenant 'default' has no documents yet" in got["note"] and str(empty) in got["note"]
        assert "`flywheel ingest PATH`" in got["note"]
    assert "`flywheel ingest PATH --tenant acme`" in payload(out["other"])["note"]
    answer = payload(out["ask"])
    assert answer["refused"] is True and answer["refusal"] == "no_passage"
    assert answer["answer"].startswith("我不知道") and "has no documents yet" in answer["note"]


def test_nothing_relevant_in_a_filled_project_carries_no_note(filled):
    async def work(session: Any) -> dict[str, Any]:
        return {"miss": await session.call_tool("search", {"query": "quarterly tax filing deadlines"}),
                "hit": await session.call_tool("search", {"query": "重置密码", "k": 1}),
                "ask": await session.call_tool("ask", {"question": "How do I reset my password?"})}

    out = session_run(filled, work)
    miss = payload(out["miss"])
    assert miss["passages"] == [] and "note" not in miss
    hit = payload(out["hit"])
    assert len(hit["passages"]) == 1 and hit["passages"][0]["source"].endswith("zh.md") and "note" not in hit
    answer = payload(out["ask"])
    assert answer["refused"] is False and "note" not in answer


def test_a_dense_search_in_a_language_the_embedder_lacks_says_why_it_found_nothing(filled):
    async def work(session: Any) -> dict[str, Any]:
        return {"ru": await session.call_tool("search", {"query": "Как сбросить пароль", "mode": "dense"}),
                "en": await session.call_tool("search", {"query": "reset my password", "mode": "dense"}),
                "zh": await session.call_tool("search", {"query": "如何重置密码", "mode": "dense"})}

    out = session_run(filled, work)
    ru = payload(out["ru"])
    assert ru["passages"] == [] and "does not cover Russian (ru)" in ru["note"] and "use mode hybrid or bm25" in ru["note"]
    en = payload(out["en"])
    assert en["passages"][0]["source"].endswith("account.md") and "note" not in en
    if gloss.available():  # the local MiniLM reads Chinese through dictionary glosses
        zh = payload(out["zh"])
        assert zh["passages"][0]["source"].endswith("zh.md") and "note" not in zh


def test_bad_arguments_are_the_tools_error_not_a_silent_default(filled):
    async def work(session: Any) -> dict[str, Any]:
        tools = {t.name: wire(t) for t in (await session.list_tools()).tools}
        calls = {name: await session.call_tool("search", args) for name, args in {
            "k0": {"query": "password", "k": 0}, "negative": {"query": "password", "k": -3},
            "huge": {"query": "password", "k": 10**6}, "blank": {"query": "  "}}.items()}
        calls["app"] = await session.call_tool("ask", {"question": "hi", "app": "suport"})
        return {"tools": tools, **calls}

    out = session_run(filled, work)
    k = out["tools"]["search"]["inputSchema"]["properties"]["k"]
    assert (k["minimum"], k["maximum"]) == (1, 1000)  # the client knows the bounds before it calls
    for name in ("k0", "negative", "huge"):
        bad = wire(out[name])
        assert bad["isError"] and "k" in bad["content"][0]["text"], bad
    blank = wire(out["blank"])
    assert blank["isError"] and "the query is empty" in blank["content"][0]["text"]
    app = wire(out["app"])
    # an MCP caller has no --app option: the message names the argument
    assert app["isError"] and app["content"][0]["text"].count("app 'suport': no such app") == 1
    assert "--app" not in app["content"][0]["text"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mcp(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "flywheel", "--project", str(root), "mcp", *args]


def test_http_on_a_port_in_use_is_one_clear_error(empty):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(_mcp(empty, "--http", str(port)), check=False, capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "pick another --port" in done.stderr
    assert "Traceback" not in done.stderr and "Started server process" not in done.stderr


def test_streamable_http_client_searches_and_asks(filled):
    from mcp import ClientSession

    try:
        from mcp.client.streamable_http import streamable_http_client as connect
    except ImportError:  # mcp 1.x
        from mcp.client.streamable_http import streamablehttp_client as connect  # type: ignore[no-redef]

    port = _free_port()
    proc = subprocess.Popen(_mcp(filled, "--http", str(port)), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:  # poll until it listens (starting the process imports the SDK and opens the project)
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "flywheel mcp --http did not start listening"
                time.sleep(0.2)

        async def go() -> dict[str, Any]:
            async with connect(f"http://127.0.0.1:{port}/mcp") as streams, \
                    ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                return {"zh": await session.call_tool("search", {"query": "如何重置密码", "k": 2}),
                        "ask": await session.call_tool("ask", {"question": "How do I reset my password?"})}

        out = asyncio.run(go())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    zh = payload(out["zh"])
    assert zh["passages"][0]["source"].endswith("zh.md") and "重置密码" in zh["passages"][0]["text"]
    answer = payload(out["ask"])
    assert answer["refused"] is False and answer["citations"][0]["source"].endswith("account.md")

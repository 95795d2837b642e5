"""`flywheel mcp` (cli/mcp.py) driven by the official MCP client over stdio: the tools it lists, `search` over a
small English and Chinese corpus, `ask` with citations, the project's prompt, bad arguments, and the traces."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the MCP tests need the `mcp` extra")

from flywheel.apps.runtime import Runtime
from flywheel.config import Project
from flywheel.prompts.registry import builtin_dir

PAGES = {
    "en/refund.md": "# Refund policy\n\nWithin 7 days of delivery, unused items in their original packaging can be "
                    "returned for a refund.\n",
    "en/invoice.md": "# Invoices\n\nAn electronic invoice can be requested on the order page once the order is "
                     "complete.\n",
    "zh/refund.md": "# 退款政策\n\n自签收之日起 7 天内，商品未使用且包装完好的，可以申请无理由退款。\n",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mcp_project")
    for name, text in PAGES.items():
        (root / "docs" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "docs" / name).write_text(text, encoding="utf-8")
    (root / "flywheel.yaml").write_text("retrieval: {embedder: none}\n", encoding="utf-8")
    (root / "prompts").mkdir()
    shutil.copy(builtin_dir() / "docs_qa.yaml", root / "prompts" / "docs_qa.yaml")
    from flywheel.retrieval.ingest import ingest

    project = Project.load(root)
    with Runtime(project) as rt:
        ingest([root / "docs"], rt.store, project.config, root=root)
    return root


def session_run(root: Path, work: Any) -> Any:
    """Start `flywheel mcp` for `root` and run `work(session)` with an initialized client session."""
    from mcp import ClientSession, StdioServerParameters, stdio_client

    async def go() -> Any:
        params = StdioServerParameters(command=sys.executable, args=["-m", "flywheel", "--project", str(root), "mcp"])
        async with stdio_client(params) as streams, ClientSession(streams[0], streams[1]) as session:
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


def test_search_ask_and_prompts_over_stdio(project):
    async def work(session: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"tools": {t.name: t for t in (await session.list_tools()).tools}}
        out["en"] = await session.call_tool("search", {"query": "refund within 7 days of delivery", "k": 2})
        out["zh"] = await session.call_tool("search", {"query": "无理由退款", "k": 2})
        out["filtered"] = await session.call_tool("search", {"query": "refund", "tenant": "other"})
        out["ask"] = await session.call_tool("ask", {"question": "How many days do I have to return an item?"})
        out["bad"] = await session.call_tool("search", {"query": "refund", "mode": "fuzzy"})
        out["bad_app"] = await session.call_tool("ask", {"question": "hi", "app": "no_such_app"})
        out["prompts"] = (await session.list_prompts()).prompts
        out["prompt"] = await session.get_prompt("docs_qa", {"question": "退款要几天?"})
        return out

    out = session_run(project, work)
    assert {"search", "ask"} <= set(out["tools"])
    schema = wire(out["tools"]["search"])["inputSchema"]
    assert schema["required"] == ["query"] and {"k", "tenant", "filters", "mode"} <= set(schema["properties"])

    en = payload(out["en"])
    assert en["passages"][0]["source"].endswith("en/refund.md") and "7 days" in en["passages"][0]["text"]
    assert en["trace_id"]
    zh = payload(out["zh"])
    assert zh["passages"][0]["source"].endswith("zh/refund.md") and "无理由退款" in zh["passages"][0]["text"]
    assert payload(out["filtered"])["passages"] == []  # another tenant has no documents

    answer = payload(out["ask"])
    assert answer["refused"] is False and answer["citations"] and answer["trace_id"]
    assert answer["citations"][0]["source"].endswith("en/refund.md") and "[1]" in answer["answer"]

    bad = wire(out["bad"])
    assert bad["isError"] and "mode" in bad["content"][0]["text"]
    bad_app = wire(out["bad_app"])
    assert bad_app["isError"] and "no_such_app" in bad_app["content"][0]["text"]  # the UserError's own words

    (prompt,) = [p for p in out["prompts"] if p.name == "docs_qa"]
    assert [a.name for a in prompt.arguments] == ["question", "tenant"]
    text = "\n".join(m["content"]["text"] for m in wire(out["prompt"])["messages"])
    assert "退款要几天?" in text and "无理由退款" in text  # the question, and the passage retrieved for it

    _assert_traced(project, [en["trace_id"], answer["trace_id"]])


def _assert_traced(root: Path, trace_ids: list[str]) -> None:
    """Each call was recorded in the project's store, like any other call."""
    from click.testing import CliRunner

    from flywheel.cli import main

    for trace_id in trace_ids:
        result = CliRunner().invoke(main, ["--project", str(root), "traces", "show", trace_id, "--json"])
        assert result.exit_code == 0, result.output
        assert trace_id in result.output

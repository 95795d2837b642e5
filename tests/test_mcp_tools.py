"""MCP client (gateway/mcp_tools.py): a real MCP server (tests/mcp_demo_server.py, official SDK) over stdio and
streamable HTTP, driven by the tool loop against fake_llm's scripted tool calls, and by workflow YAML files."""
# ruff: noqa: F811 - pytest fixtures imported from gateway_support are redefined as parameters

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("mcp", reason="the MCP tests need the `mcp` extra")

from gateway_support import llm, server  # noqa: F401 - fixtures

from flywheel.cli import main
from flywheel.config import ModelAlias
from flywheel.errors import UserError
from flywheel.gateway import Gateway
from flywheel.gateway.mcp_tools import McpToolError, McpTools
from flywheel.gateway.tool_loop import arun_tools, run_tools
from flywheel.testing.fake_llm import ToolCall
from flywheel.types import ChatRequest
from flywheel.workflows import WorkflowServices, load_workflow

SERVER = str(Path(__file__).with_name("mcp_demo_server.py"))
COMMAND = [sys.executable, SERVER]


@pytest.fixture(scope="module")
def demo():
    with McpTools(COMMAND, env={"DEMO_TOKEN": "tok-123"}, name="demo") as tools:
        yield tools


@pytest.fixture
def gw(llm):
    return Gateway({"oa": ModelAlias(provider="openai_compat", model="fake-model", base_url=llm.base_url,
                                     max_retries=0)})


def test_the_server_tools_are_listed_with_their_json_schemas(demo):
    assert {"get_weather", "shout", "fail", "env_value", "stall"} <= set(demo)
    spec = demo["get_weather"].spec()["function"]
    assert spec["description"] == "Current weather of a city."
    assert spec["parameters"]["required"] == ["city"] and spec["parameters"]["properties"]["city"]["type"] == "string"


def test_the_tool_loop_runs_mcp_tools_end_to_end(demo, gw, llm, spans):
    llm.add(r"weather in paris", ToolCall("get_weather", {"city": "Paris"}))
    llm.add(r'"temp": ?21', "It is 21 °C in Paris.")
    done = run_tools(gw, ChatRequest.of("What is the weather in Paris?", model="oa"), demo, max_steps=4)
    assert (done.text, done.stop_reason, done.steps) == ("It is 21 °C in Paris.", "final", 2)
    (call,) = done.calls
    assert call.error is None and json.loads(call.result) == {"city": "Paris", "temp": 21, "unit": "C"}
    offered = {t["function"]["name"] for t in llm.requests[-2]["tools"]}
    assert {"get_weather", "shout", "fail"} <= offered  # the server's tools, as the model sees them
    (span,) = [s for s in spans if s.kind == "tool"]
    assert span.name == "tool.get_weather" and span.inputs == {"city": "Paris"}
    assert json.loads(span.outputs) == {"city": "Paris", "temp": 21, "unit": "C"}
    assert span.attributes["flywheel.mcp.server"] == "demo" and span.attributes["flywheel.mcp.tool"] == "get_weather"


def test_a_tool_error_goes_back_to_the_model(demo, gw, llm):
    llm.add(r"please fail", ToolCall("fail", {"reason": "no stock"}))
    llm.add(r"error", "Sorry, that did not work.")
    done = run_tools(gw, ChatRequest.of("please fail", model="oa"), demo, max_steps=3)
    assert done.text == "Sorry, that did not work."
    (call,) = done.calls
    assert call.error and "McpToolError" in call.error and "fail" in call.error
    tool_turn = llm.requests[-1]["messages"][-1]
    assert tool_turn["role"] == "tool" and tool_turn["content"].startswith("error: ")


def test_async_loop_and_local_tools_mixed_in(demo, gw, llm):
    def local_note(text: str) -> str:
        return f"noted {text}"

    llm.add(r"shout hello", ToolCall("shout", {"text": "hello"}))
    llm.add(r"HELLO", "Done: HELLO")
    done = asyncio.run(arun_tools(gw, ChatRequest.of("shout hello", model="oa"),
                                  {**demo, "local_note": local_note}, max_steps=3))
    assert done.text == "Done: HELLO" and done.calls[0].result == "HELLO"


def test_env_reaches_the_server_and_unknown_tools_are_errors(demo):
    assert demo.call("env_value", {"name": "DEMO_TOKEN"}) == "tok-123"
    with pytest.raises(McpToolError, match="no_such_tool"):
        demo.call("no_such_tool", {})


def test_a_call_that_does_not_answer_times_out_and_the_session_goes_on():
    with McpTools(COMMAND, timeout_s=2) as slow:
        with pytest.raises(McpToolError, match="did not answer within 2 s"):
            slow.call("stall", {"seconds": 60})
        assert slow.call("shout", {"text": "still here"}) == "STILL HERE"
    assert not slow.alive
    with pytest.raises(McpToolError, match="not running"):
        slow.call("shout", {"text": "closed"})


def test_a_command_that_does_not_exist_is_a_user_error():
    with pytest.raises(UserError) as info:
        McpTools(["no-such-mcp-server-xyz", "--stdio"])
    assert "`no-such-mcp-server-xyz` was not found" in info.value.message


def test_a_server_that_dies_at_start_is_a_user_error_with_its_stderr():
    crash = [sys.executable, "-c", "import sys; print('missing config file', file=sys.stderr); sys.exit(3)"]
    with pytest.raises(UserError) as info:
        McpTools(crash, timeout_s=20)
    assert "did not start" in info.value.message and "missing config file" in info.value.message


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_streamable_http_server_by_url():
    port = _free_port()
    proc = subprocess.Popen([*COMMAND, "--http", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):  # until it listens (a readiness wait, not a timing assertion)
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        with McpTools(url=f"http://127.0.0.1:{port}/mcp", headers={"Authorization": "Bearer t"}) as remote:
            assert remote.name == f"http://127.0.0.1:{port}/mcp"
            assert remote.call("shout", {"text": "over http"}) == "OVER HTTP"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ------------------------------------------------------------------ workflows

def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def line_of(path: Path, text: str) -> str:
    lines = path.read_text(encoding="utf-8").splitlines()
    return f"{path}:{next(i for i, line in enumerate(lines, 1) if text in line)}"


SERVER_ENTRY = f"""
        tools:
          demo:
            mcp: {{command: [{json.dumps(sys.executable)}, {json.dumps(SERVER)}], env: {{DEMO_TOKEN: "${{H9_DEMO_TOKEN:-unset}}"}}}}
"""


def test_a_workflow_calls_mcp_tools_with_args_and_in_a_tool_loop(tmp_path, llm, monkeypatch):
    monkeypatch.setenv("H9_DEMO_TOKEN", "from-env")
    llm.add(r"^Weather for Lyon", ToolCall("get_weather", {"city": "Lyon"}))
    llm.add(r'"city": ?"Lyon"', "Lyon: 21 degrees.")
    path = write(tmp_path, SERVER_ENTRY + """
        inputs: [city]
        steps:
          - id: loud
            tool: shout
            args: {text: "{{inputs.city}}"}
          - id: token
            tool: env_value
            args: {name: DEMO_TOKEN}
          - id: chat
            tool: demo
            prompt: "Weather for {{inputs.city}}?"
            loop: true
        output: "{{steps.chat.output}}"
    """)
    wf = load_workflow(path)
    assert {"shout", "get_weather"} <= set(wf.tools)
    result = wf.run({"city": "Lyon"}, services=WorkflowServices(gateway=Gateway({"default": ModelAlias(
        provider="openai_compat", model="fake", base_url=llm.base_url, max_retries=0)})))
    assert result.status == "done", result.reason
    assert result.outputs["loud"] == "LYON" and result.outputs["token"] == "from-env"
    assert result.output == "Lyon: 21 degrees."


def test_an_unknown_mcp_tool_in_a_workflow_is_named_at_its_line(tmp_path):
    path = write(tmp_path, SERVER_ENTRY + """
        steps:
          - id: w
            tool: get_wether
            args: {city: Paris}
    """)
    with pytest.raises(UserError) as info:
        load_workflow(path)
    assert info.value.where == line_of(path, "tool: get_wether")
    assert "unknown tool 'get_wether' — did you mean 'get_weather'?" in info.value.message


def test_args_on_a_whole_server_is_an_error(tmp_path):
    path = write(tmp_path, SERVER_ENTRY + """
        steps:
          - id: w
            tool: demo
            args: {city: Paris}
    """)
    with pytest.raises(UserError) as info:
        load_workflow(path)
    assert info.value.where == line_of(path, "tool: demo") and "serves several tools" in info.value.message


def test_a_missing_server_command_exits_2_with_file_and_line(tmp_path):
    path = write(tmp_path, """
        tools:
          gone:
            mcp: {command: [no-such-mcp-server-xyz]}
        steps:
          - id: w
            tool: anything
            args: {}
    """)
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "workflow", "run", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}:3: MCP server command `no-such-mcp-server-xyz` was not found" in result.output
    assert "Traceback" not in result.output

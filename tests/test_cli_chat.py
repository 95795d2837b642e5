"""`flywheel chat` against a flywheel.yaml pointing at the fake LLM server."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.testing.fake_llm import Fault


@pytest.fixture
def project(server, tmp_path):
    server.reset()
    server.add("capital", "Paris is the capital of France.")
    (tmp_path / "flywheel.yaml").write_text(
        "models:\n"
        "  fake:\n"
        "    provider: openai_compat\n"
        "    model: fake-model\n"
        f"    base_url: {server.base_url}\n"
        "    price: {input: 1.0, output: 2.0}\n"
        "    max_retries: 0\n"
        "    fallbacks: [spare]\n"
        "  spare:\n"
        "    model: spare-model\n"
        f"    base_url: {server.base_url}\n", encoding="utf-8")
    return tmp_path


def run(project, *args):
    return CliRunner().invoke(main, ["--project", str(project), "chat", *args])


def test_chat_prints_answer_and_summary(project):
    result = run(project, "What is the capital of France?", "--model", "fake")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "Paris is the capital of France."
    summary = result.stderr
    assert "fake-model" in summary and "tokens" in summary and "$" in summary and "trace " in summary


def test_chat_json_and_trace_is_stored(project):
    result = run(project, "capital of France?", "--model", "fake", "--system", "Be brief.", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["text"] == "Paris is the capital of France."
    assert data["alias"] == "fake" and data["model"] == "fake-model"
    assert data["usage"]["input_tokens"] > 0 and data["cost_usd"] > 0 and data["trace_id"]
    from flywheel.config import Project
    from flywheel.store import Store
    from flywheel.tracing import get_trace

    with Store.open(Project.load(project).store_url) as store:
        trace = get_trace(store, data["trace_id"])
    assert trace is not None and trace["spans"][0]["name"] == "gateway.chat"
    assert trace["input_tokens"] == data["usage"]["input_tokens"]


def test_chat_stream(project):
    result = run(project, "capital of France?", "--model", "fake", "--stream")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Paris is the capital of France."
    assert "trace " in result.stderr


def test_chat_falls_back_and_says_so(project, server):
    server.fail(Fault.SERVER_ERROR, times=1, model="fake-model")
    result = run(project, "capital of France?", "--model", "fake", "--json")
    data = json.loads(result.stdout)
    assert data["model"] == "spare-model" and data["attempts"] == 2


def test_unknown_alias_is_a_clean_error(project):
    result = run(project, "hi", "--model", "nope")
    assert result.exit_code == 2
    assert "--model 'nope': no such model alias" in result.output and "fake" in result.output
    assert "Traceback" not in result.output


def test_all_models_failing_is_a_clean_error(project, server):
    server.fail(Fault.SERVER_ERROR, times=None, status=503)
    result = run(project, "capital?", "--model", "fake")
    assert result.exit_code == 3  # an upstream outage, not the user's mistake
    assert "fake-model" in result.output and "spare-model" in result.output and "HTTP 503" in result.output


def test_rejected_credentials_are_the_users_mistake(project, server):
    server.fail(Fault.SERVER_ERROR, times=None, status=401)
    result = run(project, "capital?", "--model", "fake")
    assert result.exit_code == 2, result.output
    assert "HTTP 401" in result.output and "Traceback" not in result.output

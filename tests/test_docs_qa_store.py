"""The docs-QA app over a real project: ingest into the SQLite store, ask through Runtime and the CLI,
tenants, config errors, and traces written to the store."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from flywheel.apps.runtime import Runtime
from flywheel.cli import main
from flywheel.config import Project
from flywheel.errors import ConfigError, UserError
from flywheel.testing.fake_llm import FakeLLM

PIN_PAGE = """# Models

## Pinning

To pin a model version, set `version:` on the alias. Every result then records the pinned version.

## Fallbacks

Fallbacks are tried in order when every retry of an alias failed.
"""
ZH_PAGE = """# 快速上手

flywheel 可以完全离线运行：不需要网络，也不需要 API 密钥。
"""
OTHER_PAGE = """# Billing

Invoices are sent on the first working day of each month.
"""


def make_project(tmp_path, extra_yaml: str = "") -> Project:
    docs = tmp_path / "docs"
    (docs / "zh").mkdir(parents=True)
    (docs / "models.md").write_text(PIN_PAGE, encoding="utf-8")
    (docs / "zh" / "quickstart.md").write_text(ZH_PAGE, encoding="utf-8")
    (tmp_path / "billing.md").write_text(OTHER_PAGE, encoding="utf-8")
    # BM25 only: these tests are about the app, not the embedder (test_demo runs the default embedder).
    (tmp_path / "flywheel.yaml").write_text("retrieval: {embedder: none}\n" + extra_yaml, encoding="utf-8")
    project = Project.load(tmp_path)
    from flywheel.retrieval.ingest import ingest

    with Runtime(project) as rt:
        ingest([docs], rt.store, project.config, tenant="acme")
        ingest([tmp_path / "billing.md"], rt.store, project.config, tenant="globex")
    return project


def test_answers_cite_the_ingested_chunks(tmp_path):
    project = make_project(tmp_path)
    with Runtime(project) as rt:
        answer = rt.app("docs_qa").run("How do I pin a model version?", tenant="acme")
        chunks = {h.chunk.id: h.chunk for h in rt.retriever.search("pin a model version", tenant="acme")}
    assert "To pin a model version, set `version:` on the alias." in answer.text
    assert answer.citations, answer.text
    for citation in answer.citations:
        assert f"[{citation.id}]" in answer.text
        assert citation.chunk_id in chunks and chunks[citation.chunk_id].text == citation.text
    first = answer.citations[0]
    assert first.source.endswith("models.md") and "To pin a model version" in first.text


def test_chinese_question_is_answered_from_the_chinese_page(tmp_path):
    project = make_project(tmp_path)
    with Runtime(project) as rt:
        answer = rt.app("docs_qa").run("flywheel 可以离线运行吗？", tenant="acme")
    assert answer.text.startswith("根据资料")
    assert answer.citations and answer.citations[0].source.endswith("quickstart.md")


def test_other_tenants_documents_are_never_used_and_no_model_is_called(tmp_path):
    with FakeLLM() as llm:
        llm.add(r".", "Invoices are sent monthly [1].")
        project = make_project(tmp_path, f"models:\n  gpt: {{provider: openai_compat, base_url: '{llm.base_url}', "
                                         "model: fake-model, max_retries: 0}\n"
                                         "apps:\n  docs_qa: {model: gpt, tenant: acme}\n")
        with Runtime(project) as rt:
            app = rt.app("docs_qa")
            assert app.run("When are invoices sent?").refused  # tenant acme has no billing page
            zh = app.run("发票什么时候寄出？")
            answered = app.run("When are invoices sent?", tenant="globex")
        assert zh.refused and zh.text.startswith("我不知道")
        assert len(llm.requests) == 1  # only the globex question reached the model
        assert answered.citations[0].source.endswith("billing.md")


def test_ask_json_from_the_cli(tmp_path):
    make_project(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["--project", str(tmp_path), "ask", "How do I pin a model version?",
                                  "--tenant", "acme", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) >= {"answer", "citations", "trace_id", "refused"}
    assert data["citations"][0]["id"] == 1 and data["citations"][0]["source"].endswith("models.md")
    assert "To pin a model version" in data["citations"][0]["text"]

    traces = runner.invoke(main, ["--project", str(tmp_path), "traces", "show", data["trace_id"], "--json"])
    assert traces.exit_code == 0, traces.output
    trace = json.loads(traces.output)
    assert trace["app"] == "docs_qa" and trace["tenant"] == "acme"
    names = [s["name"] for s in trace["spans"][0]["children"] if not s["name"].startswith("cache.")]
    assert names == ["retrieval.search", "prompt", "gateway.chat"]

    pretty = runner.invoke(main, ["--project", str(tmp_path), "ask", "How", "do", "I", "pin", "a", "model",
                                  "version?", "--tenant", "acme"])
    assert pretty.exit_code == 0
    assert "Sources" in pretty.output and "[1] docs/models.md" in pretty.output
    assert "traces show" in pretty.output

    bad = runner.invoke(main, ["--project", str(tmp_path), "ask", "hi", "--model", "nope"])
    assert bad.exit_code == 2 and "--model 'nope': no such model alias" in bad.output


@pytest.mark.parametrize("yaml_text,message,line", [
    ("apps:\n  docs_qa:\n    model: strong\n", "unknown model alias 'strong'", 3),
    ("apps:\n  docs_qa:\n    options: {k: 3, top_p: 1}\n", "unknown option(s) for app 'docs_qa': top_p", 3),
    ("apps:\n  docs_qa:\n    prompt: prompts/missing.yaml\n", "does not exist", 3),
    ("apps:\n  docs_qa:\n    kind: chatbot\n", "unknown kind 'chatbot'", 3),
    ("apps:\n  docs_qa:\n    guards:\n      output:\n        - {check: grounding, on_fail: explode}\n",
     "unknown on_fail action", 5),
])
def test_app_config_mistakes_name_file_and_line(tmp_path, yaml_text, message, line):
    (tmp_path / "flywheel.yaml").write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ConfigError) as err, Runtime(Project.load(tmp_path)) as rt:  # most at load time
        rt.app("docs_qa")
    assert message in err.value.message
    assert err.value.where == f"{tmp_path / 'flywheel.yaml'}:{line}"


def test_unknown_app_name(tmp_path):
    with Runtime(Project(tmp_path)) as rt, pytest.raises(UserError, match="unknown app 'support'"):
        rt.app("support")


def test_ask_in_an_empty_project_says_i_dont_know_and_how_to_ingest(tmp_path):
    (tmp_path / "flywheel.yaml").write_text("retrieval: {embedder: none}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "ask", "What is flywheel?", "--tenant", "acme"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("I don't know")
    assert "tenant 'acme' has no documents yet" in result.output and "ingest PATH --tenant acme" in result.output

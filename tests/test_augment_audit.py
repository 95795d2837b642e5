"""docs/retrieval-augment.md as a new user reads it: options that cannot work from flywheel.yaml are an error with
file:line when it loads (not a line without a location when the app is first built), and the trace of an answer
whose question was transformed by another model is the answering model's trace."""

from __future__ import annotations

import pytest

from flywheel.apps.docs_qa import DocsQA
from flywheel.config import DocsQAOptions, ModelAlias, Project
from flywheel.errors import ConfigError
from flywheel.gateway import Gateway
from flywheel.prompts import PromptRegistry
from flywheel.tracing import tracer
from flywheel.tracing.store_sink import span_row, trace_row
from flywheel.types import Chunk, Hit

HEAD = "models:\n  default: {provider: extractive}\napps:\n  docs_qa:\n    options:\n"


@pytest.mark.parametrize("rerank", ["{model: null}", "{}", "{top: 10}"])
def test_rerank_without_a_model_alias_is_a_config_error_at_its_line(tmp_path, rerank) -> None:
    (tmp_path / "flywheel.yaml").write_text(HEAD + f"      k: 3\n      rerank: {rerank}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        Project.load(tmp_path)
    assert err.value.where is not None and err.value.where.endswith("flywheel.yaml:7")
    assert "`options.rerank` names no model alias" in err.value.message
    assert "rerank: {model: ALIAS}" in (err.value.hint or "")


def test_rerank_with_a_model_alias_loads(tmp_path) -> None:
    (tmp_path / "flywheel.yaml").write_text(HEAD + "      rerank: {model: default, top: 10}\n", encoding="utf-8")
    assert Project.load(tmp_path).config.apps["docs_qa"].options["rerank"]["model"] == "default"


class OnePassage:
    def search(self, query, k=None, tenant="default", filters=None, mode="hybrid"):
        with tracer.span("retrieval.search", kind="retrieval", inputs={"query": query}):
            chunk = Chunk(id="c1", doc_id="d1", text="To pin a model version, set version on the alias.",
                          source="models.md")
            return [Hit(chunk=chunk, score=1.0)]


def test_the_trace_model_is_the_answering_model_not_the_transform_model(llm, spans) -> None:
    llm.add(r"^Question:", "pin model version alias")
    llm.add(r"^Sources:", "Set version on the alias [1].")
    models = {name: ModelAlias(provider="openai_compat", model=model, base_url=llm.base_url, max_retries=0)
              for name, model in (("default", "fake-answer"), ("small", "fake-small"))}
    opts = DocsQAOptions.model_validate({"query": {"rewrite": True, "model": "small"}})
    app = DocsQA(retriever=OnePassage(), gateway=Gateway(models), prompt=PromptRegistry().get("docs_qa"),
                 query=opts.query)
    answer = app.run("How do I pin a model version?")
    assert not answer.refused and answer.models == {"default": "fake-answer"}
    rows = [span_row(s) for s in spans if s.trace_id == answer.trace_id]
    assert any(r["model"] == "fake-small" for r in rows)  # the rewrite's call, made first
    root = next(r for r in rows if r["parent_id"] is None)
    assert trace_row(root, rows)["model"] == "fake-answer"

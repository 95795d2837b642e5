"""Prompt features reaching the apps and eval targets: the reasoning scaffold stripped from answers (run, stream,
trace, cache), prefill on providers that continue an assistant turn, n-shot examples in the model's messages,
and an eval suite over a prompt with examples."""

from __future__ import annotations

import dataclasses

import pytest
from test_docs_qa import PIN, ZH, ScriptedRetriever
from test_evals_support import write_project, write_suite

from flywheel.apps.docs_qa import DocsQA
from flywheel.apps.pipeline import settled_stream
from flywheel.apps.runtime import Runtime
from flywheel.cache import Cache
from flywheel.config import CacheConfig, ModelAlias
from flywheel.evals.runner import RunOptions, run_suite
from flywheel.evals.suite import load_suite
from flywheel.gateway import Gateway
from flywheel.guards import GuardPolicy
from flywheel.prompts import PromptRegistry
from flywheel.prompts.examples import Example
from flywheel.prompts.reasoning import Reasoning

THOUGHT = "The second source covers pinning; SECRET-PLAN."
ANSWER = "Set `version:` on the alias [2]."
REASONED = f"<thinking>{THOUGHT}</thinking>\n{ANSWER}"
PREFILL = "According to the sources,"
OTHER = "Every model alias may list fallbacks."  # retrieved second for the question below
GOOD = "“To pin a model version, set `version:` on the alias.” [1]"  # passes the grounding check
EXAMPLES = tuple(Example(input=f"example question {i}?", output=f"example answer {i} [1].") for i in range(5))


def gateway(llm) -> Gateway:
    return Gateway({"gpt": ModelAlias(provider="openai_compat", model="fake-model", base_url=llm.base_url,
                                      max_retries=0),
                    "claude": ModelAlias(provider="anthropic", model="claude-test", base_url=llm.anthropic_base_url,
                                         max_retries=0, params={"max_tokens": 300})})


def app(llm, model: str = "gpt", **prompt_fields) -> DocsQA:
    prompt = dataclasses.replace(PromptRegistry().get("docs_qa"), **prompt_fields)
    return DocsQA(retriever=ScriptedRetriever([PIN, OTHER, ZH]), gateway=gateway(llm), prompt=prompt,
                  model=model, cache=Cache.from_config(CacheConfig(backend="memory")))


def recording_saves(qa: DocsQA) -> list[str]:
    """The texts the app saves to its cache, from now on."""
    saved: list[str] = []
    save = qa.cache.save

    def record(request, result, **versions):
        saved.append(getattr(result, "text", result))
        return save(request, result, **versions)

    qa.cache.save = record
    return saved


def sent(llm, path: str = "/chat/completions") -> list[dict]:
    return [r for r in llm.requests if r["path"].endswith(path)]


def test_reasoning_is_stripped_from_the_answer_the_trace_and_the_cache(llm, spans):
    llm.default = REASONED
    qa = app(llm, reasoning=Reasoning())
    saved = recording_saves(qa)
    answer = qa.run("How do I pin a model version?")
    assert saved == [ANSWER]  # the model's numbering (renumbering is redone on every hit), no reasoning
    assert answer.text == "Set `version:` on the alias [1]." and [c.chunk_id for c in answer.citations] == ["c1"]
    system = sent(llm)[0]["messages"][0]["content"]
    assert system.startswith("You answer questions") and "inside <thinking></thinking> tags" in system
    root = next(s for s in spans if s.trace_id == answer.trace_id and s.parent_id is None)
    assert root.outputs["text"] == answer.text  # what the trace stores: no reasoning
    again = qa.run("How do I pin a model version?")  # a cache hit is shown as stored: so no reasoning was stored
    assert again.cache == "exact" and again.text == answer.text and len(sent(llm)) == 1
    stored = [s for s in spans if s.trace_id in {answer.trace_id, again.trace_id}]
    assert not any("SECRET-PLAN" in str(s.outputs) for s in stored if s.kind != "llm")


def test_a_stream_never_shows_the_reasoning_and_renumbers_citations_as_it_goes(llm):
    llm.default = REASONED
    qa = app(llm, reasoning=Reasoning())
    saved = recording_saves(qa)
    stream = qa.stream("How do I pin a model version?")
    pieces = list(stream)
    assert saved == [ANSWER]
    assert len(pieces) > 1 and "".join(pieces) == "Set `version:` on the alias [1]."
    assert not any("thinking" in p or "SECRET" in p for p in pieces)
    assert stream.answer is not None and stream.answer.text == "".join(pieces)
    assert [c.chunk_id for c in stream.answer.citations] == ["c1"]


def test_a_reask_on_a_reasoning_prompt_sees_only_the_answer(llm):
    llm.add(r"failed the `grounding` check", f"<thinking>retry SECRET-PLAN</thinking>{GOOD}")
    llm.add(r".", "<thinking>SECRET-PLAN</thinking>Pin it as described in [7].")
    policy = GuardPolicy.from_config({"output": [{"check": "grounding", "on_fail": "reask"}]})
    qa = app(llm, reasoning=Reasoning())
    qa.guards = policy
    answer = qa.run("How do I pin a model version?")
    assert answer.text == GOOD and [(a.check, a.action) for a in answer.guard_actions] == [
        ("grounding", "reask"), ("grounding", "pass")]
    reask = sent(llm)[-1]["messages"]
    assert [m["role"] for m in reask[-3:]] == ["user", "assistant", "user"]
    assert reask[-2]["content"] == "Pin it as described in [7]."  # the rejected answer, without its reasoning


def test_an_anthropic_alias_gets_the_prefill_as_a_trailing_assistant_turn(llm):
    llm.default = " pinning means setting `version:` [2]."
    answer = app(llm, model="claude", prefill=PREFILL).run("How do I pin a model version?")
    body = sent(llm, "/v1/messages")[-1]
    assert body["messages"][-1] == {"role": "assistant", "content": PREFILL}
    assert "<source id=" in body["messages"][0]["content"]  # Claude family: XML sources
    assert answer.text == f"{PREFILL} pinning means setting `version:` [1]."


def test_a_reask_keeps_the_prefill_last(llm):
    llm.add(r"failed the `grounding` check", f" {GOOD}")
    llm.add(r".", " see [7].")
    qa = app(llm, model="claude", prefill=PREFILL)
    qa.guards = GuardPolicy.from_config({"output": [{"check": "grounding", "on_fail": "reask"}]})
    answer = qa.run("How do I pin a model version?")
    reask = sent(llm, "/v1/messages")[-1]["messages"]
    assert [m["role"] for m in reask] == ["user", "assistant", "user", "assistant"]
    assert reask[1]["content"] == f"{PREFILL} see [7]." and reask[-1]["content"] == PREFILL
    assert answer.text == f"{PREFILL} {GOOD}"


def test_a_fallback_alias_is_cleaned_with_its_own_rendering(llm):
    llm.add(r".", "<thinking>SECRET-PLAN</thinking>I cannot say.", model="fake-model")
    llm.add(r".", "<thinking>SECRET-PLAN</thinking> set `version:` on the alias [1].", model="claude-test")
    qa = app(llm, prefill=PREFILL, reasoning=Reasoning())
    qa.guards = GuardPolicy.from_config({"output": [{"check": "contains", "value": "version", "on_fail": "fallback",
                                                     "fallback": "claude"}]})
    answer = qa.run("How do I pin a model version?")
    assert answer.text == f"{PREFILL} set `version:` on the alias [1]."  # claude's prefill, not gpt's instruction
    assert answer.models == {"gpt": "fake-model", "claude": "claude-test"}
    assert sent(llm, "/v1/messages")[-1]["messages"][-1] == {"role": "assistant", "content": PREFILL}


def test_an_openai_alias_is_asked_to_begin_with_the_prefill_instead(llm):
    llm.default = f"{PREFILL} set `version:` [2]."
    answer = app(llm, prefill=PREFILL).run("How do I pin a model version?")
    messages = sent(llm)[-1]["messages"]
    assert messages[-1]["role"] == "user" and f"Begin your answer with exactly: {PREFILL}" in messages[-1]["content"]
    assert answer.text == f"{PREFILL} set `version:` [1]."


def test_n_shot_examples_reach_the_model_as_turns_before_the_question(llm):
    llm.default = ANSWER
    app(llm, examples=EXAMPLES).run("How do I pin a model version?")
    roles = [(m["role"], m["content"]) for m in sent(llm)[-1]["messages"]]
    assert [r for r, _ in roles] == ["system", *["user", "assistant"] * 5, "user"]
    assert {c for r, c in roles if r == "user"} >= {f"example question {i}?" for i in range(5)}
    assert "How do I pin a model version?" in roles[-1][1]


def test_an_eval_suite_on_a_prompt_with_examples_and_reasoning_runs(tmp_path, llm):
    project = write_project(tmp_path, llm)
    shots = "\n".join(f"  - {{input: 'Capital of country {i}?', output: 'City {i}.'}}" for i in range(5))
    write_suite(tmp_path / "prompts" / "capitals.yaml",
                "system: Answer with the city only.\ntemplate: 'Q: {{question}}'\nreasoning: true\n"
                f"prefill: 'The capital is'\nexamples:\n{shots}\n")
    suite = load_suite(write_suite(tmp_path / "evals" / "s.yaml", """\
        target: model:small
        prompt: prompts/capitals.yaml
        cases:
          - id: france
            vars: {question: "Capital of France?"}
            checks: [{contains: Paris}, {not-contains: thinking}, {max_words: 8}]
        """), project)
    llm.add("Capital of France", "The capital is <thinking>France → Paris</thinking> Paris.")
    rt = Runtime(project, tracing=False)
    try:
        summary = run_suite(suite, rt, options=RunOptions(concurrency=1, progress=False))
    finally:
        rt.close()
    assert summary.errors == 0 and summary.passed == 1, summary.by_case
    messages = [r for r in llm.requests if r["path"].endswith("/chat/completions")][-1]["messages"]
    assert [m["role"] for m in messages] == ["system", *["user", "assistant"] * 5, "user"]
    assert "Begin your answer with exactly: The capital is" in messages[-1]["content"]


@pytest.mark.parametrize("pieces", [
    ["<thi", "nking>plan", " ahead</thin", "king>\nThe ", "answer <", "b>bold</b>."],
    ["<thinking>plan ahead</thinking>\nThe answer <b>bold</b>."],
    list("<thinking>plan ahead</thinking>\nThe answer <b>bold</b>."),
])
def test_a_settled_stream_holds_back_reasoning_and_half_tags(pieces):
    from flywheel.prompts import strip_reasoning

    out = list(settled_stream(iter(pieces), strip_reasoning, "<", "</thinking"))
    assert "".join(out) == "The answer <b>bold</b>."
    assert not any("plan" in p or "<thi" in p or p.endswith("<") for p in out)


def test_a_settled_stream_without_the_marker_releases_everything_at_the_end():
    out = list(settled_stream(iter(["no ", "reasoning ", "here."]), str.strip, "<", "</thinking"))
    assert out == ["no reasoning here."]

"""Workflows from Python: @step composition, prompt steps through the gateway, checks with on_fail retry / branch /
stop, branches, tools, spans, and runs that resume without repeating finished steps (a raised step, a killed
process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from workflows_support import chat_requests, gateway, killable_workflow, last_user

from flywheel.errors import UserError
from flywheel.workflows import (
    Workflow,
    WorkflowServices,
    branch_step,
    check_step,
    prompt_step,
    register_tool,
    step,
    tool_step,
)

TESTS = Path(__file__).parent


def test_steps_receive_inputs_and_earlier_outputs_by_parameter_name():
    @step
    def words(text):
        return text.split()

    @step
    def count(ctx, words, suffix="!"):
        assert ctx.step_id == "count"
        return f"{len(words)}{suffix}"

    result = Workflow(steps=[count, words]).run({"text": "a b c"})  # order comes from the edges, not the list
    assert result.status == "done"
    assert result.output == "3!"
    assert [s.id for s in result.steps] == ["words", "count"]


def test_prompt_steps_resolve_references_and_charge_every_call(llm):
    llm.add(r"^Name a colour", "teal")
    llm.add(r"^Describe teal", "a blue-green")
    wf = Workflow(name="chain", inputs=["thing"], steps=[
        prompt_step("colour", "Name a colour for {{inputs.thing}}"),
        prompt_step("describe", "Describe {{steps.colour.output}}"),
    ], output="{{steps.colour.output}} is {{steps.describe.output}}")
    result = wf.run({"thing": "the sea"}, services=WorkflowServices(gateway=gateway(llm)))
    assert result.output == "teal is a blue-green"
    assert [last_user(r) for r in chat_requests(llm)] == ["Name a colour for the sea", "Describe teal"]
    assert result.usage.total_tokens > 0
    assert result.models == {"default": "fake"}


def _drafts(llm, answers):
    calls = []

    def reply(body):
        calls.append(body)
        return answers[min(len(calls), len(answers)) - 1]

    llm.add(r"Answer:|did not pass", reply)
    return calls


def test_check_retry_reruns_the_step_with_the_checks_reason(llm):
    calls = _drafts(llm, ["no citation here", "see [1]"])
    wf = Workflow(name="cited", inputs=["q"], steps=[
        prompt_step("draft", "Answer: {{inputs.q}}"),
        check_step("cited", "{{steps.draft.output}}", check={"contains": "["}, on_fail="retry", max_retries=2),
    ], output="{{steps.draft.output}}")
    result = wf.run({"q": "why"}, services=WorkflowServices(gateway=gateway(llm)))
    assert result.status == "done" and result.output == "see [1]"
    assert len(calls) == 2
    retry = calls[1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": "no citation here"}
    assert "did not pass the check 'cited'" in retry[-1]["content"]


def test_check_retry_is_bounded_then_stops(llm):
    calls = _drafts(llm, ["never cited"])
    wf = Workflow(name="cited", inputs=["q"], steps=[
        prompt_step("draft", "Answer: {{inputs.q}}"),
        check_step("cited", "{{steps.draft.output}}", check={"contains": "["}, on_fail="retry", max_retries=2),
        prompt_step("after", "never reached"),
    ])
    result = wf.run({"q": "why"}, services=WorkflowServices(gateway=gateway(llm)))
    assert result.status == "stopped" and result.stopped_by == "cited"
    assert "after 2 retries" in result.reason
    assert len(calls) == 3  # the first answer and two retries, no more
    assert all("never reached" not in last_user(r) for r in chat_requests(llm))


def test_check_stop_ends_the_run_before_later_steps():
    ran = []

    @step
    def later(draft):
        ran.append(draft)
        return draft

    @step
    def draft():
        return "too long " * 50

    wf = Workflow(steps=[draft, check_step("short", "{{steps.draft.output}}", check={"max_words": 10},
                                           on_fail="stop"), later])
    wf.by_id["later"].needs.append("short")
    wf.validate()
    result = wf.run({})
    assert result.status == "stopped" and result.stopped_by == "short"
    assert ran == []


def test_check_branch_runs_the_fallback_only_when_the_check_fails():
    def build(answer):
        @step
        def draft():
            return answer

        @step
        def fallback():
            return "I don't know."

        return Workflow(steps=[draft, check_step("ok", "{{steps.draft.output}}", fn=lambda v: "[" in v,
                                                 on_fail="branch", goto="fallback"), fallback])

    passed = build("cited [1]").run({})
    assert passed.output == "cited [1]" or passed.outputs.get("fallback") is None
    assert {s.id: s.status for s in passed.steps}["fallback"] == "skipped"
    failed = build("uncited").run({})
    assert {s.id: s.status for s in failed.steps}["fallback"] == "done"
    assert failed.output == "I don't know."


def test_branch_runs_one_arm_and_a_join_reads_whichever_ran():
    @step
    def kind(question):
        return "sql" if "how many" in question.lower() else "docs"

    @step
    def sql():
        return "count from sql"

    @step
    def docs():
        return "answer from docs"

    @step
    def join(sql=None, docs=None):
        return sql or docs

    def run(q):
        wf = Workflow(steps=[kind, branch_step("route", {"value": "{{steps.kind.output}}", "equals": "sql"},
                                               then=["sql"], otherwise=["docs"]), sql, docs, join])
        return wf.run({"question": q})

    counted = run("How many orders?")
    assert counted.output == "count from sql"
    assert {s.id: s.status for s in counted.steps}["docs"] == "skipped"
    other = run("What is a refund?")
    assert other.output == "answer from docs"
    assert {s.id: s.status for s in other.steps}["sql"] == "skipped"


def test_each_step_is_a_span_under_the_workflow_span(spans):
    @step
    def one():
        return 1

    @step
    def two(one):
        return one + 1

    result = Workflow(steps=[one, two], name="spans").run({})
    by_name = {s.name: s for s in spans}
    root = by_name["workflow spans"]
    assert root.trace_id == result.trace_id and root.kind == "app"
    for sid in ("one", "two"):
        sp = by_name[f"step {sid}"]
        assert sp.parent_id == root.span_id
        assert sp.attributes["flywheel.step.id"] == sid


def test_tool_step_checks_arguments_against_the_schema():
    register_tool("add_numbers", lambda a, b: a + b, replace=True,
                  schema={"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                          "required": ["a", "b"]})
    ok = Workflow(steps=[tool_step("sum", "add_numbers", args={"a": 2, "b": "{{inputs.b}}"})]).run({"b": 3})
    assert ok.output == 5
    with pytest.raises(UserError, match="do not fit its schema"):
        Workflow(steps=[tool_step("sum", "add_numbers", args={"a": "two"})]).run({})


def test_a_tool_without_a_schema_cannot_be_used():
    register_tool("no_schema", lambda: 1, schema=None, replace=True)
    with pytest.raises(UserError, match="has no JSON schema"):
        Workflow(steps=[tool_step("t", "no_schema", args={})]).run({})


def test_tool_step_lets_the_model_pick_the_arguments(llm):
    from flywheel.testing.fake_llm import ToolCall

    seen = []
    register_tool("lookup_order", lambda order_id: seen.append(order_id) or {"status": "shipped"}, replace=True,
                  schema={"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]})
    llm.add(r"order", ToolCall("lookup_order", {"order_id": "A-17"}))
    wf = Workflow(steps=[tool_step("find", "lookup_order", prompt="Where is order A-17?")])
    result = wf.run({}, services=WorkflowServices(gateway=gateway(llm)))
    assert result.output == {"status": "shipped"} and seen == ["A-17"]
    body = chat_requests(llm)[0]
    assert body["tools"][0]["function"]["name"] == "lookup_order"


# ------------------------------------------------------------------ resumable runs

def test_a_run_that_raised_resumes_without_repeating_finished_steps(llm, store):
    llm.add(r"^Outline", "1. intro 2. body")
    llm.add(r"^Write", "the essay")
    state = {"fail": True, "polish": 0}

    @step
    def polish(write):
        state["polish"] += 1
        if state["fail"]:
            raise RuntimeError("disk full")
        return write.title()

    wf = Workflow(name="essay", inputs=["topic"], steps=[
        prompt_step("outline", "Outline {{inputs.topic}}"),
        prompt_step("write", "Write from {{steps.outline.output}}"),
        polish,
    ])
    services = WorkflowServices(gateway=gateway(llm), store=store)
    with pytest.raises(RuntimeError, match="disk full"):
        wf.run({"topic": "tides"}, services=services, run_id="run-essay-1")
    assert len(chat_requests(llm)) == 2
    from flywheel.workflows.records import RunRecords

    assert RunRecords(store).get_run("run-essay-1")["status"] == "failed"

    state["fail"] = False
    result = wf.run(services=services, run_id="run-essay-1", resume=True)  # inputs come from the stored run
    assert result.status == "done" and result.output == "The Essay"
    assert len(chat_requests(llm)) == 2  # outline and write were not asked again
    assert {s.id: s.status for s in result.steps} == {"outline": "reused", "write": "reused", "polish": "done"}
    assert state["polish"] == 2
    assert RunRecords(store).get_run("run-essay-1")["status"] == "done"


def test_a_killed_process_resumes_without_repeating_finished_steps(tmp_path):
    import json

    from flywheel.store import Store
    from flywheel.workflows import WorkflowServices

    url = f"sqlite:///{tmp_path / 'wf.db'}"
    counts = tmp_path / "counts.json"
    env = {**os.environ, "WF_COUNTS": str(counts), "WF_KILL": "1",
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    code = "import workflows_support as w; w.run_child()"
    child = subprocess.run([sys.executable, "-c", code, url, "run-kill-1"], env=env, capture_output=True, text=True,
                           timeout=120, check=False)
    assert child.returncode == -9, child.stderr  # SIGKILL inside step `expand`
    assert json.loads(counts.read_text()) == {"fetch": 1, "expand": 1}

    os.environ["WF_COUNTS"] = str(counts)
    try:
        with Store.open(url) as store:
            result = killable_workflow().run(services=WorkflowServices(store=store), run_id="run-kill-1",
                                             resume=True)
    finally:
        del os.environ["WF_COUNTS"]
    assert result.status == "done" and result.output == "NOTES ABOUT TIDES!"
    assert json.loads(counts.read_text()) == {"fetch": 1, "expand": 2, "finish": 1}  # fetch not run again
    assert {s.id: s.status for s in result.steps}["fetch"] == "reused"


def test_resume_needs_a_known_run_of_the_same_workflow(store):
    @step
    def one():
        return 1

    services = WorkflowServices(store=store)
    with pytest.raises(UserError, match="no workflow run 'nope'"):
        Workflow(steps=[one]).run(services=services, run_id="nope", resume=True)
    Workflow(steps=[one], name="a").run(services=services, run_id="r1")
    with pytest.raises(UserError, match="is a run of workflow 'a'"):
        Workflow(steps=[one], name="b").run(services=services, run_id="r1", resume=True)


def test_missing_inputs_are_named():
    with pytest.raises(UserError, match="needs input\\(s\\): question"):
        Workflow(steps=[prompt_step("p", "{{inputs.question}}")], inputs=["question"]).run({})


def test_workflow_tables_match_the_migration(store):
    from flywheel.store.db import schema_diff

    assert schema_diff(store, ["workflow_runs", "workflow_steps"]) == []


@pytest.mark.postgres
def test_runs_resume_on_postgres(pg_fresh_url):
    from flywheel.store import Store
    from flywheel.store.db import schema_diff

    calls = []

    @step
    def one():
        calls.append(1)
        return {"n": 1}

    @step
    def two(one):
        if len(calls) == 1:
            raise RuntimeError("down")
        return one

    with Store.open(pg_fresh_url) as store:
        assert schema_diff(store, ["workflow_runs", "workflow_steps"]) == []
        services = WorkflowServices(store=store)
        with pytest.raises(RuntimeError):
            Workflow(steps=[one, two], name="pg").run(services=services, run_id="pg-1")
        calls.append(0)  # `two` passes from now on
        again = Workflow(steps=[one, two], name="pg").run(services=services, run_id="pg-1", resume=True)
    assert again.output == {"n": 1} and calls == [1, 0]
    assert [s.status for s in again.steps] == ["reused", "done"]


def test_tool_step_with_loop_runs_the_gateways_bounded_tool_loop(llm):
    from flywheel.testing.fake_llm import ToolCall

    register_tool("city_weather", lambda city: {"temp": 21, "city": city}, replace=True,
                  schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    llm.add(r'"temp"', "It is 21 °C in Paris.")
    llm.add(r"weather", ToolCall("city_weather", {"city": "Paris"}))
    wf = Workflow(steps=[tool_step("ask", "city_weather", prompt="What is the weather in Paris?", loop=True)])
    result = wf.run({}, services=WorkflowServices(gateway=gateway(llm)))
    assert result.output == "It is 21 °C in Paris."
    assert len(chat_requests(llm)) == 2


def test_python_steps_call_models_through_ctx_and_are_charged(llm):
    llm.add(r"^Translate", "bonjour")

    @step
    def translate(ctx, word):
        return ctx.chat(f"Translate {word}", system="One word only.")

    result = Workflow(steps=[translate]).run({"word": "hello"}, services=WorkflowServices(gateway=gateway(llm)))
    assert result.output == "bonjour" and result.usage.total_tokens > 0
    assert result.steps[0].cost_usd == 0.0 and result.models == {"default": "fake"}
    with pytest.raises(UserError, match="has no gateway"):
        Workflow(steps=[translate]).run({"word": "hello"})

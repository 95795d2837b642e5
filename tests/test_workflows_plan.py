"""Plan-then-execute: the model's plan is validated against its JSON Schema (re-asked once, then refused), then runs
as a deterministic DAG of the allowed step kinds; a resumed run does not plan again."""

from __future__ import annotations

import json

from workflows_support import chat_requests, gateway, last_user

from flywheel.workflows import Workflow, WorkflowServices, plan_step, register_tool

GOOD_PLAN = {"steps": [
    {"id": "order", "kind": "tool", "tool": "order_status", "args": {"order_id": "A-17"}},
    {"id": "reply", "kind": "prompt", "prompt": "Tell the customer: {{steps.order.output}}"},
], "output": "{{steps.reply.output}}"}


def _workflow():
    register_tool("order_status", lambda order_id: {"order": order_id, "status": "shipped"}, replace=True,
                  schema={"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
                  description="Status of an order by id")
    return Workflow(name="support", inputs=["question"], steps=[
        plan_step("solve", "Help with: {{inputs.question}}", tools=["order_status"], max_steps=4),
    ])


def test_a_valid_plan_runs_as_a_dag(llm, store):
    llm.add(r"^Help with", json.dumps(GOOD_PLAN))
    llm.add(r"^Tell the customer", "Your order A-17 has shipped.")
    services = WorkflowServices(gateway=gateway(llm), store=store)
    result = _workflow().run({"question": "where is A-17?"}, services=services, run_id="plan-1")
    assert result.status == "done" and result.output == "Your order A-17 has shipped."
    assert [s.id for s in result.steps] == ["solve/order", "solve/reply", "solve"]
    planning = chat_requests(llm)[0]
    assert "order_status" in planning["messages"][0]["content"]  # the tools and their schemas are in the prompt
    assert '"shipped"' in last_user(chat_requests(llm)[1])

    again = _workflow().run({"question": "where is A-17?"}, services=services, run_id="plan-1")  # the same id
    assert again.output == result.output
    assert len(chat_requests(llm)) == 2  # neither the plan nor its steps were asked again


def test_a_plan_that_fails_its_schema_is_reasked_once_then_refused(llm):
    bad = {"steps": [{"id": "x", "kind": "shell", "command": "rm -rf /"}]}
    llm.add(r"^Help with|not valid", json.dumps(bad))
    result = _workflow().run({"question": "q"}, services=WorkflowServices(gateway=gateway(llm)))
    assert result.status == "refused" and result.stopped_by == "solve"
    assert "did not fit its schema after one re-ask" in result.reason
    requests = chat_requests(llm)
    assert len(requests) == 2  # the plan and one re-ask, nothing executed
    assert "Your answer was not valid" in last_user(requests[1])


def test_a_plan_fixed_on_the_reask_runs(llm):
    llm.add(r"^Help with", "I would look up the order.")
    llm.add(r"not valid", json.dumps(GOOD_PLAN))
    llm.add(r"^Tell the customer", "Shipped.")
    result = _workflow().run({"question": "q"}, services=WorkflowServices(gateway=gateway(llm)))
    assert result.status == "done" and result.output == "Shipped."


def test_a_plan_with_a_cycle_or_a_tool_it_was_not_given_is_refused(llm):
    cyclic = {"steps": [{"id": "a", "kind": "prompt", "prompt": "{{steps.b.output}}"},
                        {"id": "b", "kind": "prompt", "prompt": "{{steps.a.output}}"}]}
    llm.add(r"^Help with", json.dumps(cyclic))
    result = _workflow().run({"question": "q"}, services=WorkflowServices(gateway=gateway(llm)))
    assert result.status == "refused" and "not a valid workflow" in result.reason and "cycle" in result.reason
    assert len(chat_requests(llm)) == 1

    llm.reset()
    other = {"steps": [{"id": "a", "kind": "tool", "tool": "delete_account", "args": {}}]}
    llm.add(r"^Help with|not valid", json.dumps(other))
    result = _workflow().run({"question": "q"}, services=WorkflowServices(gateway=gateway(llm)))
    assert result.status == "refused"


def test_a_plan_calling_a_tool_with_bad_arguments_is_refused(llm):
    plan = {"steps": [{"id": "order", "kind": "tool", "tool": "order_status", "args": {"order": 17}}]}
    llm.add(r"^Help with", json.dumps(plan))
    result = _workflow().run({"question": "q"}, services=WorkflowServices(gateway=gateway(llm)))
    assert result.status == "refused" and "bad arguments" in result.reason

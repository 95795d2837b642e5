"""References as a new user writes them: names in Chinese resolve, text that looks like a reference but is not one
(`{{input.question}}`, `{{question}}`, `{{steps.a.outptu}}`, `{{item}}` outside a map) is an error at the step's
line before anything runs instead of literal braces sent to the model, and a check that a retry re-reads is not
reported as `reused` from an earlier run."""

from __future__ import annotations

import textwrap

import pytest
from workflows_support import chat_requests, gateway, last_user

from flywheel.errors import UserError
from flywheel.workflows import Workflow, WorkflowServices, load_workflow, prompt_step


def write(tmp_path, text):
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def test_chinese_input_and_step_names_are_references(tmp_path, llm):
    llm.add(r"请回答", "你好，世界")
    path = write(
        tmp_path,
        """
        name: 问答
        inputs: [问题]
        steps:
          - id: 草稿
            prompt: "请回答：{{inputs.问题}}"
          - id: 检查
            check: {contains: "你好"}
            input: "{{ steps.草稿.output }}"
        output: "{{steps.草稿.output}}"
    """,
    )
    wf = load_workflow(path)
    assert wf.order == ["草稿", "检查"] and wf.edges["检查"] == {"草稿"}
    result = wf.run({"问题": "怎么打招呼？"}, services=WorkflowServices(gateway=gateway(llm)))
    assert result.status == "done" and result.output == "你好，世界"
    assert last_user(chat_requests(llm)[0]) == "请回答：怎么打招呼？"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Q: {{ input.question }}",
            r"`\{\{input.question\}\}`, which is not a reference — did you mean \{\{inputs.question\}\}",
        ),
        ("Q: {{question}}", r"did you mean \{\{inputs.question\}\}"),
        ("Fix: {{docs}}", r"did you mean \{\{steps.docs.output\}\}"),
        ("Fix: {{steps.docs.outptu}}", r"did you mean \{\{steps.docs.output\}\}"),
        ("Fix: {{stpes.docs.output}}", r"did you mean \{\{steps.docs.output\}\}"),
        ("Fix: {{item}}", r"only in a map step"),
        ("Q: {{ 问题 }}", r"not a reference"),
    ],
)
def test_text_that_looks_like_a_reference_is_an_error_at_the_step(tmp_path, text, expected):
    path = write(
        tmp_path,
        f"""
        inputs: [question]
        steps:
          - id: docs
            prompt: "{{{{inputs.question}}}}"
          - id: draft
            prompt: "{text}"
    """,
    )
    with pytest.raises(UserError, match=expected) as info:
        load_workflow(path)
    assert info.value.where == f"{path}:5"  # the step's line


def test_item_and_its_fields_are_references_only_in_a_map(tmp_path, llm):
    for wrong, expected in (
        ("Summarise: {{items.text}}", r"\{\{items\}\} is the batch"),
        ("Summarise: {{item.text}}", r"\{\{item\}\} exists only in a map step"),
    ):
        path = write(
            tmp_path,
            f"""
            inputs: [docs]
            steps:
              - id: parts
                prompt: "{wrong}"
        """,
        )
        with pytest.raises(UserError, match=expected):
            load_workflow(path)
    llm.add(r"^Summarise", lambda body: "S:" + last_user(body).split(": ", 1)[1])
    llm.add(r"^Combine", lambda body: last_user(body))
    path = write(
        tmp_path,
        """
        inputs: [docs]
        steps:
          - id: parts
            map: "{{inputs.docs}}"
            prompt: "Summarise: {{item.text}} ({{item.source}})"
          - id: all
            reduce: "{{steps.parts.output}}"
            prompt: "Combine: {{items}}"
    """,
    )
    docs = [{"text": "潮汐由月球引起", "source": "a.md"}, {"text": "Tides follow the moon", "source": "b.md"}]
    result = load_workflow(path).run({"docs": docs}, services=WorkflowServices(gateway=gateway(llm)))
    assert result.outputs["parts"] == [
        "S:潮汐由月球引起 (a.md)",
        "S:Tides follow the moon (b.md)",
    ]  # was the JSON


def test_python_workflows_are_checked_too():
    with pytest.raises(UserError, match=r"did you mean \{\{inputs.q\}\}"):
        Workflow(inputs=["q"], steps=[prompt_step("draft", "Answer: {{input.q}}")])


def test_a_retried_check_is_not_reported_as_reused(tmp_path, llm, store):
    llm.add(r"^Answer|did not pass", "no citation here")
    path = write(
        tmp_path,
        """
        inputs: [question]
        steps:
          - id: draft
            prompt: "Answer: {{inputs.question}}"
          - id: cited
            check: {contains: "["}
            input: "{{steps.draft.output}}"
            on_fail: retry
            max_retries: 1
    """,
    )
    services = WorkflowServices(gateway=gateway(llm), store=store)
    first = load_workflow(path).run({"question": "q"}, services=services, run_id="r1")
    assert first.status == "stopped"
    assert {s.id: s.status for s in first.steps} == {"draft": "done", "cited": "done"}  # was `cited: reused`
    again = load_workflow(path).run({"question": "q"}, services=services, run_id="r1")  # the same id again
    assert {s.id: s.status for s in again.steps}["cited"] == "reused"  # stored by the first invocation


def test_without_output_the_answer_is_the_last_step_that_is_not_a_check(llm):
    from flywheel.workflows import check_step

    llm.add(r"^Answer", "Set `version:` [1]")
    wf = Workflow(
        name="cited",
        inputs=["q"],
        steps=[  # the docs' example, which names no `output`
            prompt_step("draft", "Answer: {{inputs.q}}"),
            check_step(
                "cited", "{{steps.draft.output}}", check={"contains": "["}, on_fail="retry", max_retries=2
            ),
        ],
    )
    result = wf.run({"q": "How do I pin a model?"}, services=WorkflowServices(gateway=gateway(llm)))
    assert result.status == "done" and result.output == "Set `version:` [1]"  # was the check's verdict


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("{{steps.drfat.output}}", r"`output:` references unknown step 'drfat' — did you mean 'draft'"),
        ("{{inputs.qestion}}", r"`output:` references unknown input 'qestion'"),
        ("Answer: {{input.question}}", r"`output:` has `\{\{input.question\}\}`, which is not a reference"),
    ],
)
def test_the_output_reference_is_checked_before_anything_runs(tmp_path, output, expected):
    path = write(
        tmp_path,
        f"""
        inputs: [question]
        steps:
          - id: draft
            prompt: "{{{{inputs.question}}}}"
        output: "{output}"
    """,
    )
    with pytest.raises(UserError, match=expected) as info:  # was an empty output (or literal braces), exit 0
        load_workflow(path)
    assert info.value.where == f"{path}:5"

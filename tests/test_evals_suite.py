"""Suite files: targets, defaults, case files, warnings, and file:line errors with the valid choices."""
# ruff: noqa: F811 - pytest fixtures imported from test_evals_support are redefined as parameters

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_evals_support import llm, project, write_suite  # noqa: F401 - fixtures

from flywheel.errors import UserError
from flywheel.evals.suite import discover, load_suite

GOOD = """\
name: smoke
target: model:small
prompt: "Answer briefly: {{question}}"
threshold: 0.5
defaults:
  vars: {tenant: acme}
  checks: [{max_words: 50}]
  judge: judge
cases:
  - id: one
    vars: {question: "What is it?"}
    reference: "A thing."
    checks: [{contains: thing}, {icontains: THING}]
  - vars: {question: "Second?"}
    checks: [is-json]
"""


def test_load_a_suite_with_defaults(project, tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path / "evals" / "s.yaml", GOOD), project)
    assert suite.name == "smoke" and suite.threshold == 0.5 and suite.judge == "judge"
    assert (
        str(suite.target) == "model:small" and suite.target.prompt.template == "Answer briefly: {{question}}"
    )
    one, two = suite.cases
    assert one.id == "one" and one.vars == {"tenant": "acme", "question": "What is it?"}
    assert [c.name for c in one.checks] == ["contains", "icontains", "max_words"]
    assert two.id == "case-2" and [c.name for c in two.checks] == ["is-json", "max_words"]
    assert one.where.endswith("s.yaml:10")
    # case two states two expectations: a warning naming its line
    assert len(suite.warnings) == 1 and "s.yaml:14" in suite.warnings[0] and "case-2" in suite.warnings[0]


def test_suite_hash_changes_with_what_is_asked(project, tmp_path: Path) -> None:
    a = load_suite(write_suite(tmp_path / "a.yaml", GOOD), project).hash
    assert a == load_suite(write_suite(tmp_path / "b.yaml", GOOD), project).hash
    changed = GOOD.replace("{contains: thing}", "{contains: other}")
    assert a != load_suite(write_suite(tmp_path / "c.yaml", changed), project).hash


@pytest.mark.parametrize(
    "text, line, needle, hint",
    [
        ("target: model:small\ncases:\n  - vars: {q: [1, 2}\n", 3, "YAML syntax", None),
        (
            "target: model:small\ncases:\n  - vars: {q: x}\n    checks:\n      - contians: x\n",
            5,
            "unknown check",
            "icontains",
        ),
        (
            (
                "target: model:small\ncases:\n  - vars: {q: x}\n    checks:\n      - contains: x\n"
                "      - max_words: -3\n"
            ),
            6,
            "max_words",
            None,
        ),
        ("target: model:small\ncases:\n  - vars: {q: x}\n    chekcs: []\n", 4, "unknown key", "checks"),
        ("target: model:nope\ncases: []\n", 1, "unknown model alias", "small"),
        ("target: app:docs_q\ncases: []\n", 1, "unknown app 'docs_q'", "did you mean 'docs_qa'"),
        ("target: wat\ncases: []\n", 1, "cannot read target", "app:NAME"),
        ("target: model:small\nthreshold: 2\ncases: []\n", 2, "threshold", None),
        (
            (
                "target: model:small\ncases:\n  - vars: {q: x}\n"
                "    checks: [{judge: {criterion: c, model: gpt9}}]\n"
            ),
            4,
            "unknown model alias",
            "judge",
        ),
        ("target: model:small\ncases:\n  - id: a\n  - id: a\n", 4, "duplicate case id", None),
        ("target: model:small\nprompt: '{{question'\ncases:\n  - id: a\n", 2, "malformed placeholder", None),
    ],
)
def test_mistakes_name_file_line_and_choices(
    project, tmp_path: Path, text: str, line: int, needle: str, hint: str | None
) -> None:
    path = write_suite(tmp_path / "bad.yaml", text)
    with pytest.raises(UserError) as err:
        load_suite(path, project)
    assert err.value.where == f"{path}:{line}", err.value.render()
    assert needle in err.value.message
    if hint:  # the valid choices, in the message or the hint
        assert hint in err.value.render()


def test_cases_from_jsonl_and_csv(project, tmp_path: Path) -> None:
    rows = [
        {"id": "j1", "question": "Q1?", "reference": "R1", "checks": [{"contains": "a"}]},
        {"id": "j2", "vars": {"question": "Q2?"}, "checks": ["is-json"]},
    ]
    (tmp_path / "cases.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    suite = load_suite(write_suite(tmp_path / "j.yaml", "target: model:small\ncases: cases.jsonl\n"), project)
    assert [(c.id, c.vars, c.reference) for c in suite.cases] == [
        ("j1", {"question": "Q1?"}, "R1"),
        ("j2", {"question": "Q2?"}, None),
    ]
    (tmp_path / "cases.csv").write_text(
        "id,question,reference,check:contains,checks\n"
        'c1,What?,It,It,"[{max_words: 5}, is-json]"\n'
        "c2,Why?,,,\n",
        encoding="utf-8",
    )
    suite = load_suite(write_suite(tmp_path / "c.yaml", "target: model:small\ncases: cases.csv\n"), project)
    c1, c2 = suite.cases
    assert c1.vars == {"question": "What?"} and c1.reference == "It"
    assert [c.name for c in c1.checks] == ["contains", "max_words", "is-json"]  # column order
    assert c2.checks == [] and c2.where.endswith("cases.csv:3")


def test_case_file_errors_name_their_line(project, tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"id": "a"}\n{"id": \n', encoding="utf-8")
    with pytest.raises(UserError) as err:
        load_suite(write_suite(tmp_path / "s.yaml", "target: model:small\ncases: bad.jsonl\n"), project)
    assert err.value.where.endswith("bad.jsonl:2")
    (tmp_path / "bad.csv").write_text("id,check:contaiins\na,x\n", encoding="utf-8")
    with pytest.raises(UserError) as err:
        load_suite(write_suite(tmp_path / "t.yaml", "target: model:small\ncases: bad.csv\n"), project)
    assert err.value.where.endswith("bad.csv:2") and "unknown check" in err.value.message


def test_python_target_and_discovery(project, tmp_path: Path) -> None:
    (tmp_path / "mytarget.py").write_text("def answer(question):\n    return question.upper()\n")
    suite = load_suite(
        write_suite(
            tmp_path / "evals" / "p.yaml", "target: mytarget:answer\ncases:\n  - vars: {question: hi}\n"
        ),
        project,
    )
    assert suite.target.kind == "python" and suite.target.function("hi") == "HI"
    with pytest.raises(UserError) as err:
        load_suite(
            write_suite(tmp_path / "evals" / "q.yaml", "target: mytarget:nothing\ncases: []\n"), project
        )
    assert "has no `nothing`" in err.value.message
    found = discover([], project)
    assert [p.name for p in found] == ["p.yaml", "q.yaml"]
    with pytest.raises(UserError):
        discover(["missing.yaml"], project)


def test_csv_check_cells_keep_the_text_the_user_wrote(project, tmp_path: Path) -> None:
    """YAML would read `Yes` as a bool and `version:` as a mapping; a check:NAME cell is one argument."""
    (tmp_path / "cells.csv").write_text(
        "id,question,check:starts-with,check:contains,check:max_words\na,hi,Yes,version:,50\n", encoding="utf-8")
    suite = load_suite(write_suite(tmp_path / "s.yaml", "target: model:small\ncases: cells.csv\n"), project)
    (case,) = suite.cases
    assert [c.arg for c in case.checks] == ["Yes", "version:", 50]
    assert [c.run("Yes, set version: 2").passed for c in case.checks] == [True, True, True]


@pytest.mark.parametrize(
    "text, line, needle, hint",
    [
        ("target: model:small\nthreshhold: 0.5\ncases: []\n", 2, "unknown key `threshhold`", "did you mean `threshold`"),
        ("target: model:small\nthreshold: '0.9'\ncases: []\n", 2, "`threshold` must be a number between 0 and 1",
         "threshold: 0.9"),
        ("target: model:small\nthreshold: yes\ncases: []\n", 2, "got True", None),
        ("target: model:small\nthreshold: -0.1\ncases: []\n", 2, "between 0 and 1", None),
        ("target: model:small\ncases: 5\n", 2, "`cases` must be a list", ".jsonl"),
        ("target: model:small\ncases:\n  a: {id: x}\n", 2, "`cases` must be a list", None),
        ("target: model:small\n", 1, "needs `cases:`", None),
        ("name: x\ncases: []\n", 1, "needs `target:`", "model:ALIAS"),
        ("target: [app]\ncases: []\n", 1, "`target` must be text", None),
        ("target: model:small\ncases:\n  - vars: {q: x}\n  - id:\n    vars: {q: y}\n", 4, "`id` is empty in case 2",
         "unique `id`"),
        ("target: model:small\ncases:\n  - id: {a: 1}\n", 3, "`id` in case 1 must be a text", None),
        ("target: model:small\ncases:\n  - id: a\n    vars: [q, x]\n", 4, "`vars` in case 1 must be a mapping", None),
        ("target: model:small\ncases:\n  - id: a\n    checks: {contains: x}\n", 4, "`checks` in case 1 must be a list",
         "checks: [{contains: x}"),
        ("target: model:small\ncases:\n  - id: a\n    reference: No\n", 4, "`reference` in case 1", "text"),
        ("target: model:small\ncases:\n  - just a question\n", 3, "case 1 must be a mapping", None),
        ("target: model:small\ndefaults:\n  timeout: 5\ncases: []\n", 3, "unknown key `timeout`", "timeout_s"),
        ("target: model:small\ndefaults: [1]\ncases: []\n", 2, "`defaults` must be a mapping", "timeout_s"),
        ("target: model:small\ndefaults:\n  timeout_s: 0\ncases: []\n", 3, "`defaults.timeout_s`", None),
        ("target: model:small\ndefaults:\n  tenant: ' acme'\ncases: []\n", 3, "`defaults.tenant`", "acme"),
        ("target: model:small\ndefaults:\n  judge: strng\ncases: []\n", 3, "unknown model alias", "strong"),
        ("target: model:small\nprompt: {template: x, sytem: y}\ncases: []\n", 2, "`prompt` must be", None),
        ("target: model:small\ncases:\n  - id: a\n    id: b\n", 4, "duplicate key `id`", None),
    ],
)
def test_schema_mistakes_fail_at_load_with_file_line(
    project, tmp_path: Path, text: str, line: int, needle: str, hint: str | None
) -> None:
    path = write_suite(tmp_path / "bad.yaml", text)
    with pytest.raises(UserError) as err:
        load_suite(path, project)
    assert err.value.where == f"{path}:{line}", err.value.render()
    assert needle in err.value.message, err.value.render()
    if hint:
        assert hint in err.value.render()


def test_the_first_schema_mistake_by_line_is_reported_with_a_count(project, tmp_path: Path) -> None:
    text = "threshold: 3\ndescription: [x]\ntarget: model:small\ncases: 5\nbogus: 1\n"
    path = write_suite(tmp_path / "bad.yaml", text)
    with pytest.raises(UserError) as err:
        load_suite(path, project)
    # pydantic lists `description` first (field order); the user reads the file top down
    assert err.value.where == f"{path}:1" and "`threshold` must be a number" in err.value.message
    assert "(+3 more)" in err.value.message


def test_case_file_rows_are_validated_by_the_same_schema(project, tmp_path: Path) -> None:
    (tmp_path / "c.jsonl").write_text('{"id": "a", "checks": []}\n{"id": "b", "vars": [1]}\n', encoding="utf-8")
    with pytest.raises(UserError) as err:
        load_suite(write_suite(tmp_path / "s.yaml", "target: model:small\ncases: c.jsonl\n"), project)
    assert err.value.where.endswith("c.jsonl:2") and "`vars` in case 2 must be a mapping" in err.value.message
    (tmp_path / "d.jsonl").write_text('{"id": "a", "vars": {"q": 1}, "refrence": "x"}\n', encoding="utf-8")
    with pytest.raises(UserError) as err:
        load_suite(write_suite(tmp_path / "t.yaml", "target: model:small\ncases: d.jsonl\n"), project)
    assert err.value.where.endswith("d.jsonl:1") and "did you mean `reference`" in err.value.message


def test_every_check_entry_form_and_scalar_ids_still_load(project, tmp_path: Path) -> None:
    text = """\
    target: model:small
    defaults: {timeout_s: 5, tenant: acme, checks: [is-json]}
    cases:
      - id: 7
        vars: {question: "Q?"}
        reference: 42
        metadata: {topic: x}
        description: d
        checks:
          - contains: "x"
          - not-contains: "y"
          - judge: "It answers the question."
          - grounding: {}
          - {check: regex, pattern: "v\\\\d+", flags: i}
          - not-is-json
    """
    suite = load_suite(write_suite(tmp_path / "s.yaml", text), project)
    (case,) = suite.cases
    assert case.id == "7" and case.reference == "42" and case.metadata == {"topic": "x"}
    assert [c.name for c in case.checks] == [
        "contains", "not-contains", "judge", "grounding", "regex", "not-is-json", "is-json"]
    assert suite.timeout_s == 5.0 and suite.tenant == "acme" and suite.threshold == 1.0

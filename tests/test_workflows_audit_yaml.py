"""YAML mistakes a new user makes that used to be ignored or misreported: a check's `goto:` / `retry:` /
`max_retries:` without the `on_fail:` that uses it (the check silently stopped the run instead), and a number
as a step's `id:` (reported as a missing id); and what `flywheel workflow show` prints: Chinese step ids lined up,
a failed run's reason without the credentials its exception quoted."""

from __future__ import annotations

import textwrap

import pytest

from flywheel.errors import UserError
from flywheel.workflows import load_workflow


def write(tmp_path, text):
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("setting", "line", "expected"),
    [
        ("goto: fallback", 8, "has `goto:` but on_fail is stop.*on_fail: branch"),
        ("retry: draft", 8, "has `retry:` but on_fail is stop.*on_fail: retry"),
        ("max_retries: 3", 8, "has `max_retries:` but on_fail is stop.*on_fail: retry"),
        (
            "on_fail: branch\n    goto: fallback\n    max_retries: 2",
            10,
            "has `max_retries:` but on_fail is branch",
        ),
    ],
)
def test_a_check_setting_without_its_on_fail_is_an_error(tmp_path, setting, line, expected):
    path = write(
        tmp_path,
        """
        inputs: [question]
        steps:
          - id: draft
            prompt: "{{inputs.question}}"
          - id: cited
            check: {contains: "["}
            input: "{{steps.draft.output}}"
            SETTING
          - id: fallback
            prompt: "Say sorry"
    """.replace("SETTING", setting.replace("\n", "\n        ")),
    )
    with pytest.raises(UserError, match=f"(?s){expected}") as info:
        load_workflow(path)
    assert info.value.where == f"{path}:{line}"


def test_a_number_as_a_step_id_is_named_as_such(tmp_path):
    path = write(
        tmp_path,
        """
        inputs: [question]
        steps:
          - id: 1
            prompt: "{{inputs.question}}"
    """,
    )
    with pytest.raises(UserError, match=r"`id:` of step 1 must be a name, got 1") as info:
        load_workflow(path)
    assert info.value.where == f"{path}:3" and 'id: "1"' in str(info.value.hint)


def test_show_lines_up_chinese_step_ids(tmp_path):
    from click.testing import CliRunner
    from rich.cells import cell_len

    import flywheel.cli.workflow  # noqa: F401 - registers `flywheel workflow`
    from flywheel.cli import main

    (tmp_path / "audit_zh_steps.py").write_text(
        "def split(text):\n    return text.split()\n\ndef count(拆分):\n    return len(拆分)\n",
        encoding="utf-8",
    )
    write(
        tmp_path,
        """
        name: 计数
        inputs: [text]
        steps:
          - id: 拆分
            python: audit_zh_steps:split
          - id: count
            python: audit_zh_steps:count
    """,
    )
    runner = CliRunner()
    out = runner.invoke(
        main, ["--project", str(tmp_path), "workflow", "run", "wf.yaml", "--input", "text=甲 乙 丙", "--json"]
    )
    assert out.exit_code == 0, out.output
    run_id = __import__("json").loads(out.output)["run_id"]
    shown = runner.invoke(main, ["--project", str(tmp_path), "workflow", "show", run_id])
    assert shown.exit_code == 0, shown.output
    rows = [line for line in shown.output.splitlines() if line.startswith("  ")]
    kind_at = [
        cell_len(line[: line.index(kind)]) for line, kind in zip(rows, ("python", "python"), strict=True)
    ]
    assert len(rows) == 2 and kind_at[0] == kind_at[1]  # the kind column starts in the same terminal cell


LEAKY_PY = """
def leaky(order):
    raise RuntimeError("cannot reach postgresql://shop:Hunter2Secret99@db.internal/shop")
"""


def test_a_failed_runs_reason_is_stored_and_shown_without_credentials(tmp_path):
    import json

    from click.testing import CliRunner

    import flywheel.cli.workflow  # noqa: F401 - registers `flywheel workflow`
    from flywheel.cli import main

    (tmp_path / "audit_leaky.py").write_text(LEAKY_PY, encoding="utf-8")
    write(
        tmp_path,
        """
        name: leaky
        inputs: [order]
        steps:
          - id: loud
            python: audit_leaky:leaky
    """,
    )
    runner = CliRunner()
    out = runner.invoke(
        main, ["--project", str(tmp_path), "workflow", "run", "wf.yaml", "--input", "order=A1"]
    )
    assert out.exit_code == 1 and "Hunter2Secret99" not in out.output
    run_id = out.output.split("workflow run ")[1].split()[0]
    for extra in ([], ["--json"]):
        shown = runner.invoke(main, ["--project", str(tmp_path), "workflow", "show", run_id, *extra])
        assert shown.exit_code == 0, shown.output
        assert "Hunter2Secret99" not in shown.output and "[REDACTED]" in shown.output  # was the password
    row = json.loads(
        runner.invoke(main, ["--project", str(tmp_path), "workflow", "show", run_id, "--json"]).output
    )
    assert row["status"] == "failed" and "db.internal" in row["reason"]

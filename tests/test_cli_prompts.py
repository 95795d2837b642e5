"""`flywheel prompts list|show|diff|label|rollback|register` over a project's SQLite store."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import flywheel.cli.prompts  # noqa: F401 - registers the `prompts` group until cli/__init__ lists it
from flywheel.cli import main

V1 = "name: qa\nsystem: Be brief.\ntemplate: 'Q: {{question}}'\n"
V2 = V1.replace("Be brief.", "Be very brief.")


def run(project, *args, code=0):
    result = CliRunner().invoke(main, ["--project", str(project), "prompts", *args])
    assert result.exit_code == code, result.output
    return result


def data(project, *args):
    return json.loads(run(project, *args, "--json").stdout)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "qa.yaml").write_text(V1, encoding="utf-8")
    return tmp_path


def edit(project, text):
    (project / "prompts" / "qa.yaml").write_text(text, encoding="utf-8")


def test_register_label_edit_diff_and_rollback(project):
    rows = data(project, "register")
    registered = {r["name"]: r["new"] for r in rows}  # the project's prompts and the packaged ones, all new
    assert {"docs_qa", "qa"} <= set(registered) and all(registered.values())
    v1 = next(r["version"] for r in rows if r["name"] == "qa")
    assert not any(r["new"] for r in data(project, "register"))  # the same versions again: nothing new

    assert data(project, "label", "qa", v1[:6], "--as", "production") == {
        "name": "qa", "label": "production", "version": v1, "previous": None}
    edit(project, V2)
    moved = data(project, "label", "qa", "file", "--as", "production")  # the edited file, recorded on the way
    v2 = moved["version"]
    assert moved["previous"] == v1 and v2 != v1

    listed = {r["name"]: r for r in data(project, "list")}
    assert listed["qa"]["version"] == v2 and listed["qa"]["versions"] == 2
    assert listed["qa"]["labels"] == {"production": v2}

    diff = run(project, "diff", "qa", v1, "production").output
    assert "## system" in diff and "Be{+ very+} brief." in diff and "## template" not in diff
    assert data(project, "diff", "qa", "production", "file")["fields"] == {}

    assert data(project, "rollback", "qa") == {"name": "qa", "label": "production", "from": v2, "to": v1}
    shown = data(project, "show", "qa", "--label", "production")
    assert shown["version"] == v1 and shown["content"]["system"] == "Be brief." and shown["labels"] == ["production"]
    assert data(project, "show", "qa")["version"] == v2  # the file itself has moved on
    text = run(project, "show", "qa", "--version", v2).output
    assert f"version {v2}" in text and "system: Be very brief." in text


def test_bad_input_exits_2_with_the_choices(project):
    v1 = data(project, "register", "prompts/qa.yaml")[0]["version"]
    run(project, "label", "qa", v1, "--as", "production")
    result = run(project, "show", "qa", "--label", "prodution", code=2)
    assert "prompt 'qa' has no label 'prodution' — did you mean 'production'?" in result.output
    result = run(project, "show", "qa", "--version", "deadbeef", code=2)
    assert f"known versions: {v1}" in result.output
    result = run(project, "label", "qa", "nope", "--as", "staging", code=2)
    assert "has no version or label 'nope'" in result.output and "production" in result.output
    result = run(project, "show", "q", code=2)
    assert "unknown prompt 'q'" in result.output and "did you mean 'qa'" in result.output
    result = run(project, "rollback", "qa", "--label", "staging", code=2)
    assert "has no label 'staging'" in result.output
    result = run(project, "rollback", "qa", code=2)
    assert "no earlier version" in result.output
    result = run(project, "label", "qa", v1, "--as", "not a label", code=2)
    assert "invalid label" in result.output
    result = run(project, "label", "qa", v1, "--as", "file", code=2)
    assert "cannot be a label" in result.output
    assert "Traceback" not in result.output


def test_malformed_file_is_file_line_exit_2_and_nothing_is_stored(project):
    (project / "prompts" / "broken.yaml").write_text(V1 + "examples:\n  - {inptu: a, output: b}\n", encoding="utf-8")
    result = run(project, "register", code=2)
    assert "broken.yaml:5" in result.output and "did you mean `input`" in result.output
    (project / "prompts" / "broken.yaml").unlink()
    assert all(r["versions"] == 0 for r in data(project, "list"))


def test_few_examples_warn_on_register(project):
    edit(project, V1 + "examples:\n  - {input: a, output: b}\n  - {input: c, output: d}\n")
    result = run(project, "register", "prompts/qa.yaml")
    assert "qa.yaml:4: only 2 example(s)" in result.output

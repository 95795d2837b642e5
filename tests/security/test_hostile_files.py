"""Hostile files and names (issue 9.5): links out of the ingested folder, escape codes and line breaks in file
names and text, tenants with control characters or empty."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.errors import UserError

CONFIG = "retrieval: {embedder: none}\n"
ESC_NAME = "report\x1b[2J\x1b]0;pwned\x07\nfake line.md"


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "flywheel.yaml").write_text(CONFIG, encoding="utf-8")
    return project


def _run(project: Path, *args: str):
    return CliRunner().invoke(main, ["--project", str(project), *args])


def _indexed_sources(project: Path) -> set[str]:
    db = sqlite3.connect(project / ".flywheel" / "flywheel.db")
    try:
        return {r[0] for r in db.execute("SELECT DISTINCT source FROM chunks")}
    finally:
        db.close()


def test_links_out_of_the_ingested_folder_are_not_followed_unless_asked(tmp_path):
    project = _project(tmp_path)
    outside = tmp_path / "etc"
    outside.mkdir()
    (outside / "shadow").write_text("root:$6$shadow secret outside hash:19000:0:99999:7:::\n", encoding="utf-8")
    (outside / "private").mkdir()
    (outside / "private" / "notes.md").write_text("# Private\n\nshadow secret outside folder\n", encoding="utf-8")
    docs = project / "docs"
    docs.mkdir()
    (docs / "ok.md").write_text("# Fine\n\nan ordinary document about the shadow of a tree\n", encoding="utf-8")
    (docs / "inner.md").symlink_to(docs / "ok.md")  # a link that stays inside is fine
    (docs / "shadow.md").symlink_to(outside / "shadow")
    (docs / "linked_dir").symlink_to(outside / "private", target_is_directory=True)

    res = _run(project, "ingest", str(docs), "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    skipped = {s["source"]: s["reason"] for s in summary["skipped"]}
    assert "docs/shadow.md" in skipped and "--follow-links" in skipped["docs/shadow.md"]
    assert "/etc/" not in json.dumps(summary["skipped"])  # the link's target is not disclosed either
    assert _indexed_sources(project) == {"docs/ok.md"}

    res = _run(project, "ingest", str(docs), "--follow-links", "--json")
    assert res.exit_code == 0, res.output
    sources = _indexed_sources(project)
    assert {s for s in sources if "shadow" in s or "notes" in s}  # now the linked file and folder are read


def test_escape_codes_and_line_breaks_are_never_printed_raw(tmp_path):
    project = _project(tmp_path)
    docs = project / "docs"
    docs.mkdir()
    (docs / ESC_NAME).write_text("# Title\x1b]8;;http://evil.example\x1b\\\n\nthe quarterly report shows "
                                 "growth\x1b[31m in red\x1b[0m and \x1b]0;owned\x07 more text\n", encoding="utf-8")
    (docs / "empty\x1b[5m.md").write_text("", encoding="utf-8")  # skipped: its name is printed in the table

    for args in (("ingest", str(docs)), ("search", "quarterly report growth"), ("ask", "quarterly report growth")):
        res = _run(project, *args)
        assert res.exit_code == 0, res.output
        assert "\x1b" not in res.output and "\x07" not in res.output, (args, res.output)
        assert "\nfake line" not in res.output  # the newline in the name did not start a new line


@pytest.mark.parametrize("tenant", ["", "acme\x1b[31m", "a\nb"])
@pytest.mark.parametrize("command", [("ask", "what is it"), ("search", "what"), ("ingest", "docs")])
def test_bad_tenants_are_an_error_everywhere_in_the_cli(tmp_path, tenant, command):
    project = _project(tmp_path)
    (project / "docs").mkdir()
    (project / "docs" / "a.md").write_text("# A\n\nsomething\n", encoding="utf-8")
    cwd = os.getcwd()
    os.chdir(project)
    try:
        res = _run(project, *command, "--tenant", tenant)
    finally:
        os.chdir(cwd)
    assert res.exit_code == 2, res.output
    assert "invalid tenant" in res.output and "\x1b" not in res.output


def test_bad_tenants_are_an_error_in_the_python_api(tmp_path):
    from flywheel.apps.runtime import Runtime
    from flywheel.config import Project
    from flywheel.retrieval.ingest import ingest

    project = _project(tmp_path)
    with Runtime(Project.load(project)) as rt:
        app = rt.app("docs_qa")
        for bad in ("", "x\x1b]0;t\x07"):
            with pytest.raises(UserError, match="invalid tenant"):
                app.run("what is it", tenant=bad)
            with pytest.raises(UserError, match="invalid tenant"):
                rt.retriever.search("what", tenant=bad)
            with pytest.raises(UserError, match="invalid tenant"):
                ingest([project], rt.store, rt.project.config, tenant=bad)
    (project / "flywheel.yaml").write_text(CONFIG + "apps:\n  docs_qa: {tenant: \"a\\nb\"}\n", encoding="utf-8")
    with pytest.raises(UserError, match="tenant"):
        Project.load(project).config  # noqa: B018 - loading validates

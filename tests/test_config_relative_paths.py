"""Paths written in flywheel.yaml are relative to the project folder (the folder holding it), whatever the working
directory: run from another folder with `--project DIR`, a `transformers` alias's `model:`, a trained check's
`path:`, `embedder_model:`, a sqlite `store:`, an app's prompt file and a sql_qa `database:` all resolve against
the project; `~` and absolute paths keep working; a path that does not exist is one error line (exit 2) naming the
flywheel.yaml line and the resolved path."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import need

from flywheel.checks.trained import TFIDF_DIM, find_model
from flywheel.cli import main
from flywheel.config import Config, ModelAlias, Project

HAVE_TRANSFORMERS = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def elsewhere(tmp_path, monkeypatch) -> Path:
    """The working directory: a folder that is not the project."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def write_trained(folder: Path) -> Path:
    """A trained check as `flywheel train-check` saves it (zero weights: p(pass) = 0.5, which passes at 0.5)."""
    folder.mkdir(parents=True)
    (folder / "model.json").write_text(json.dumps({"name": "quality", "features": "tfidf", "threshold": 0.5}))
    np.savez_compressed(folder / "weights.npz", weights=np.zeros(TFIDF_DIM, dtype=np.float32), bias=np.float32(0.0),
                        idf=np.ones(TFIDF_DIM, dtype=np.float32))
    return folder


def guarded_project(root: Path, path: str) -> Path:
    root.mkdir(exist_ok=True)
    (root / "flywheel.yaml").write_text(
        "models:\n  ext: {provider: extractive}\nretrieval: {embedder: none}\napps:\n  support:\n    kind: chat\n"
        "    model: ext\n    guards:\n"
        f"      output: [{{check: trained, model: quality, path: '{path}', on_fail: block}}]\n", encoding="utf-8")
    return root


# ---- a trained check's `path:`


def test_a_trained_checks_path_is_relative_to_the_project_not_the_working_directory(tmp_path, elsewhere):
    project = guarded_project(tmp_path / "proj", "clf/quality")
    write_trained(project / "clf" / "quality")
    result = cli("--project", str(project), "ask", "--app", "support", "hello")
    assert result.exit_code == 0, result.output


def test_a_trained_checks_path_that_does_not_exist_is_one_line_naming_the_line_and_the_resolved_path(
        tmp_path, elsewhere):
    project = guarded_project(tmp_path / "proj", "clf/missing")
    write_trained(elsewhere / "clf" / "missing")  # the working directory's copy is not the project's
    result = cli("--project", str(project), "ask", "--app", "support", "hello")
    assert result.exit_code == 2
    first = result.stderr.splitlines()[0]
    assert first == f"error: {project / 'flywheel.yaml'}:9: no trained check in {project / 'clf' / 'missing'} " \
                    "(model.json missing)"
    assert "Traceback" not in result.output


@pytest.mark.parametrize("written", ["~/models/quality", "ABSOLUTE"])
def test_a_trained_checks_path_may_be_absolute_or_in_the_home_folder(tmp_path, elsewhere, monkeypatch, written):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    folder = write_trained(home / "models" / "quality")
    project = guarded_project(tmp_path / "proj", str(folder) if written == "ABSOLUTE" else written)
    assert cli("--project", str(project), "ask", "--app", "support", "hello").exit_code == 0


def test_a_trained_checks_path_in_a_suite_is_relative_to_the_suite_file(tmp_path, elsewhere):
    folder = write_trained(tmp_path / "proj" / "evals" / "clf")
    assert find_model("quality", f"{tmp_path / 'proj' / 'evals' / 'suite.yaml'}:4", "clf") == folder


# ---- a `transformers` alias's `model:`


def transformers_project(root: Path, model: str) -> Path:
    root.mkdir()
    (root / "flywheel.yaml").write_text(f"models:\n  default:\n    provider: transformers\n    model: {model}\n",
                                        encoding="utf-8")
    return root


def test_a_transformers_folder_that_does_not_exist_is_one_line_naming_the_line_and_the_resolved_path(
        tmp_path, elsewhere):
    need(HAVE_TRANSFORMERS, "torch and transformers (the `finetune` extra) are not installed")
    project = transformers_project(tmp_path / "proj", "./models/gone")
    result = cli("--project", str(project), "chat", "--model", "default", "hello")
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: {project / 'flywheel.yaml'}:4: model folder "
                                     f"{project / 'models' / 'gone'} does not exist (model alias 'default')")


def test_a_transformers_folder_in_the_working_directory_is_not_taken_for_the_projects(tmp_path, elsewhere):
    need(HAVE_TRANSFORMERS, "torch and transformers (the `finetune` extra) are not installed")
    project = transformers_project(tmp_path / "proj", "models/tiny")
    (elsewhere / "models" / "tiny").mkdir(parents=True)
    (elsewhere / "models" / "tiny" / "config.json").write_text("{}", encoding="utf-8")
    result = cli("--project", str(project), "chat", "--model", "default", "hello")
    assert result.exit_code == 2
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: {project / 'flywheel.yaml'}:4: model folder {project / 'models' / 'tiny'} "
                            "does not exist")


def test_a_project_built_in_python_anchors_a_transformers_folder_to_its_root(tmp_path, elsewhere):
    (tmp_path / "tuned").mkdir()
    config = Config(models={"tuned": ModelAlias(provider="transformers", model="./tuned")})
    project = Project(tmp_path, config)
    assert project.config.models["tuned"].model == str(tmp_path / "tuned")


# ---- `embedder_model:`, `store:`, prompt files, sql_qa `database:`


def test_an_embedder_folder_that_does_not_exist_names_its_line_when_ingesting(tmp_path, elsewhere):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "flywheel.yaml").write_text("retrieval:\n  embedder: local\n  embedder_model: ./models/emb\n",
                                           encoding="utf-8")
    (elsewhere / "doc.md").write_text("# Refunds\n\nRefunds take five days.\n", encoding="utf-8")
    result = cli("--project", str(project), "ingest", "doc.md")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (f"error: {project / 'flywheel.yaml'}:3: embedder model folder "
                                             f"{project / 'models' / 'emb'} does not exist")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "home"
    (folder / "data").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(folder))
    return folder


def test_a_sqlite_store_may_be_in_the_home_folder(tmp_path, home):
    project = Project(tmp_path / "proj", Config(store="sqlite:///~/data/flywheel.db"))
    assert project.store_url == f"sqlite:///{home / 'data' / 'flywheel.db'}"


def test_a_prompt_file_may_be_in_the_home_folder(tmp_path, home):
    from flywheel.prompts.registry import PromptRegistry

    (home / "data" / "p.yaml").write_text("name: p\ntemplate: hi\n", encoding="utf-8")
    assert PromptRegistry(root=tmp_path / "proj").path_of("~/data/p.yaml") == home / "data" / "p.yaml"


def test_a_sql_qa_database_may_be_in_the_home_folder(tmp_path, home):
    from flywheel.workflows.sql_db import SqlDatabase

    (home / "data" / "shop.db").write_bytes(b"")
    assert SqlDatabase("sqlite:///~/data/shop.db", root=tmp_path / "proj").path == home / "data" / "shop.db"

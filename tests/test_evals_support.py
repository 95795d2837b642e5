# ruff: noqa: F811 - the shared fixtures imported from conftest are redefined as parameters
"""Shared fixtures of the checks/evals tests: a fake LLM and a project whose aliases point at it.

No tests here; the other test_evals_* / test_checks_* modules import from this one.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import llm  # noqa: F401 - the shared fixture, re-exported for modules importing it from here

from flywheel.apps.runtime import Runtime
from flywheel.config import Project
from flywheel.testing.fake_llm import FakeLLM


def write_project(root: Path, llm: FakeLLM, store: str | None = None) -> Project:
    """Aliases `small`, `strong` (priced, pinned) and `judge`, all served by the fake LLM."""
    store_line = f"store: {store}\n" if store else ""
    (root / "flywheel.yaml").write_text(
        store_line
        + textwrap.dedent(f"""\
        models:
          small: {{provider: openai_compat, base_url: "{llm.base_url}", model: fake-small, max_retries: 0,
                  price: {{input: 1.0, output: 2.0}}}}
          strong: {{provider: openai_compat, base_url: "{llm.base_url}", model: fake-strong,
                   version: "2025-01",
                   max_retries: 0, price: {{input: 10.0, output: 20.0}}}}
          judge: {{provider: openai_compat, base_url: "{llm.base_url}", model: fake-judge, max_retries: 0}}
        tracing: {{enabled: false}}
        """),
        encoding="utf-8",
    )
    return Project.load(root)


# Two capitals, `threshold: %s` to fill in; the modules using it may add cases.
CAPITALS_SUITE = """\
name: capitals
target: model:small
prompt: "Q: {{question}}"
threshold: %s
cases:
  - id: france
    vars: {question: "Capital of France?"}
    checks: [{contains: Paris}, {max_words: 10}, {not-contains: London}]
  - id: italy
    vars: {question: "Capital of Italy?"}
    checks: [{contains: Rome}, {max_words: 10}, {not-contains: London}]
"""


def write_suite(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path, llm: FakeLLM) -> Project:
    return write_project(tmp_path, llm)


@pytest.fixture
def runtime(project: Project) -> Iterator[Runtime]:
    rt = Runtime(project, tracing=False)
    yield rt
    rt.close()

"""Shared helpers of the routing tests: a project whose aliases `small` / `large` / `judge` point at a fake LLM,
with `routes:` given as YAML text. No tests here."""

from __future__ import annotations

import textwrap
from pathlib import Path

from flywheel.config import Project
from flywheel.testing.fake_llm import FakeLLM


def models_yaml(llm: FakeLLM) -> str:
    return textwrap.dedent(f"""\
        models:
          small: {{provider: openai_compat, base_url: "{llm.base_url}", model: fake-small, max_retries: 0,
                  price: {{input: 1.0, output: 2.0}}}}
          large: {{provider: openai_compat, base_url: "{llm.base_url}", model: fake-large, max_retries: 0,
                  timeout: 30, price: {{input: 10.0, output: 20.0}}}}
          judge: {{provider: openai_compat, base_url: "{llm.base_url}", model: fake-judge, max_retries: 0}}
        """)


def write_project(root: Path, llm: FakeLLM, routes: str = "", extra: str = "") -> Project:
    """flywheel.yaml with the three aliases, `routes` (YAML text of the section, indented under `routes:`)."""
    text = "# project config\n" + models_yaml(llm) + extra
    if routes:
        text += "routes:\n" + textwrap.indent(textwrap.dedent(routes), "  ")
    (root / "flywheel.yaml").write_text(text, encoding="utf-8")
    return Project.load(root)

"""A docs_qa app with `prompt_label:` serves the labelled stored version of its prompt, even after the prompt file
has changed; without the label it follows the file."""

from __future__ import annotations

from flywheel.apps.runtime import Runtime
from flywheel.config import Project
from flywheel.prompts import PromptRegistry
from flywheel.prompts.versions import PromptVersions

PROMPT = """name: support
system: {system}
template: |-
  {{{{sources}}}}
  Question: {{{{question}}}}
"""


def _project(root, label: str | None):
    (root / "prompts").mkdir(exist_ok=True)
    options = f"\n    options: {{prompt_label: {label}}}" if label else ""
    (root / "flywheel.yaml").write_text(
        "apps:\n  support:\n    kind: docs_qa\n    prompt: support" + options + "\n", encoding="utf-8")
    return Project.load(root)


def test_pinned_label_serves_the_stored_version_after_the_file_changes(tmp_path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "support.yaml").write_text(PROMPT.format(system="Answer briefly."), encoding="utf-8")
    project = _project(tmp_path, "production")
    with Runtime(project, tracing=False) as rt:
        first = PromptRegistry(project.root, store=rt.store).get("support")
        PromptVersions(rt.store).set_label("support", first.version, "production")
    (tmp_path / "prompts" / "support.yaml").write_text(PROMPT.format(system="Answer at length."), encoding="utf-8")

    with Runtime(project, tracing=False) as rt:
        pinned = rt.app("support").prompt
    assert pinned.version == first.version
    assert pinned.system == "Answer briefly."

    with Runtime(_project(tmp_path, None), tracing=False) as rt:
        follows = rt.app("support").prompt
    assert follows.version != first.version
    assert follows.system == "Answer at length."

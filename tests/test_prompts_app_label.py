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


def test_a_running_app_follows_a_moved_label_and_an_edited_file(tmp_path, llm, monkeypatch):
    """Before: the prompt was fixed when the app was built, so `flywheel serve` kept answering with the old
    version after `prompts label … --as production` or an edit, until restarted."""
    from flywheel.apps import docs_qa

    monkeypatch.setattr(docs_qa, "PROMPT_RECHECK_S", 0.0)
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "support.yaml").write_text(PROMPT.format(system="Answer briefly."), encoding="utf-8")
    models = f'models:\n  default: {{provider: openai_compat, base_url: "{llm.base_url}", model: m}}\n'
    for label in ("production", None):
        _project(tmp_path, label)  # then the model alias in front of its apps
        (tmp_path / "flywheel.yaml").write_text(models + (tmp_path / "flywheel.yaml").read_text(), encoding="utf-8")
        project = Project.load(tmp_path)
        (prompts / "support.yaml").write_text(PROMPT.format(system="Answer briefly."), encoding="utf-8")
        with Runtime(project, tracing=False) as rt:
            registry, versions = PromptRegistry(project.root, store=rt.store), PromptVersions(rt.store)
            first = registry.get("support")
            versions.set_label("support", first.version, "production")
            app = rt.app("support")
            assert app.run("How do refunds work?").refused and app.prompt.version == first.version
            (prompts / "support.yaml").write_text(PROMPT.format(system="Answer at length."), encoding="utf-8")
            second = registry.get("support")
            if label:
                app.run("How do refunds work?")
                assert app.prompt.version == first.version  # pinned: the edit alone changes nothing
                versions.set_label("support", second.version, "production")
            app.run("How do refunds work?")
            assert app.prompt.version == second.version and app.prompt.system == "Answer at length."

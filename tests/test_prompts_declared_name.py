"""A prompt file whose `name:` is not its file name (prompts/p9.yaml with `name: other`): the store knows it as
`other`, so `flywheel prompts` lists, labels and shows it as `other`, and names the mismatch when it is called
`p9` (it used to list both, `other (no file)` and `p9 0 stored`, and `label p9 file` said it had no versions)."""

from __future__ import annotations

import json

from click.testing import CliRunner

import flywheel.cli.prompts  # noqa: F401 - registers `flywheel prompts`
from flywheel.cli import main
from flywheel.prompts import PromptRegistry
from flywheel.store import Store


def project(tmp_path):
    (tmp_path / "flywheel.yaml").write_text("models: {default: {provider: extractive}}\n", encoding="utf-8")
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "p9.yaml").write_text("name: other\ntemplate: 'Q: {{question}}'\n", encoding="utf-8")
    return tmp_path


def cli(root, *args):
    return CliRunner().invoke(main, ["--project", str(root), "prompts", *args])


def test_the_cli_knows_the_prompt_by_its_declared_name(tmp_path):
    root = project(tmp_path)
    labelled = cli(root, "label", "other", "file", "--as", "production")
    assert labelled.exit_code == 0, labelled.output
    rows = json.loads(cli(root, "list", "--json").output)
    mine = [r for r in rows if r["name"] in ("other", "p9")]
    assert [(r["name"], r["versions"], r["labels"]) for r in mine] == [
        ("other", 1, {"production": mine[0]["version"]})]
    assert mine[0]["path"].endswith("p9.yaml")
    wrong = cli(root, "label", "p9", "file", "--as", "staging")
    assert wrong.exit_code == 2 and "Traceback" not in wrong.output
    assert "p9.yaml declares `name: other`" in wrong.output and "use `other` instead of `p9`" in wrong.output


def test_a_pinned_label_is_found_through_the_file_name_too(tmp_path):
    root = project(tmp_path)
    assert cli(root, "label", "other", "file", "--as", "production").exit_code == 0
    with Store.open(f"sqlite:///{root}/.flywheel/flywheel.db") as store:
        registry = PromptRegistry(root, store=store)
        by_file = registry.get("p9", label="production")
        by_name = registry.get("other", label="production")
    assert by_file.version == by_name.version and by_file.name == "other"
    assert PromptRegistry(root).get("other").path.endswith("p9.yaml")


"""A prompt label in any script can be pinned by an app (as it can be set with `flywheel prompts label`), and
`flywheel serve` shows the line an app logs when it follows a moved label."""

from __future__ import annotations

import logging
import logging.config

import pytest
from pydantic import ValidationError

from flywheel.config.app_options import DocsQAOptions


def test_an_app_pins_a_chinese_label():
    assert DocsQAOptions(prompt_label="生产").prompt_label == "生产"
    assert DocsQAOptions(prompt_label="prod-2").prompt_label == "prod-2"
    for bad in ("生 产", "1st", "prod\n", "-x"):
        with pytest.raises(ValidationError):
            DocsQAOptions(prompt_label=bad)


def test_serve_shows_that_an_app_follows_a_moved_label(capfd):
    from flywheel.cli.serve import log_config

    before = logging.Logger.manager.loggerDict.get("flywheel.apps")
    saved = (before.handlers[:], before.propagate, before.level) if isinstance(before, logging.Logger) else None
    try:
        logging.config.dictConfig(log_config(access_log=False))
        logging.getLogger("flywheel.apps").info("app support: prompt support_qa is now version 3")
        assert "prompt support_qa is now version 3" in capfd.readouterr().err
    finally:
        apps = logging.getLogger("flywheel.apps")
        if saved is not None:
            apps.handlers[:], apps.propagate, apps.level = saved[0], saved[1], saved[2]
        else:
            apps.handlers.clear()
            apps.propagate, apps.level = True, logging.NOTSET


def test_an_app_whose_prompt_uses_a_variable_it_never_passes_fails_when_built(tmp_path):
    """docs_qa passes `question` (sources and examples are built): a `{{product}}` in its prompt would fail every
    question under `flywheel serve`; it is an error at the placeholder's line when the app is built (exit 2)."""
    from click.testing import CliRunner

    from flywheel.cli import main

    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "support.yaml").write_text(
        "name: support\ntemplate: |-\n  Product: {{product}}\n  Question: {{question}}\n", encoding="utf-8")
    (tmp_path / "flywheel.yaml").write_text(
        "models: {default: {provider: extractive}}\napps:\n  support: {kind: docs_qa, prompt: support}\n",
        encoding="utf-8")
    out = CliRunner().invoke(main, ["--project", str(tmp_path), "ask", "--app", "support", "--json", "hi?"])
    assert out.exit_code == 2, out.output
    assert "product" in out.output and "support.yaml:3" in out.output
    assert "Traceback" not in out.output


def test_prompts_list_shows_the_others_when_one_file_is_broken(tmp_path):
    """One prompt file with a mistake does not hide every other prompt: it is listed with its error (file:line),
    and the command still exits 2."""
    import json

    from click.testing import CliRunner

    import flywheel.cli.prompts  # noqa: F401 - registers the `prompts` group
    from flywheel.cli import main

    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "good.yaml").write_text("name: good\ntemplate: 'Q: {{question}}'\n", encoding="utf-8")
    (tmp_path / "prompts" / "broken.yaml").write_text("name: broken\ntemplate: 'Q: {{question}'\n", encoding="utf-8")
    (tmp_path / "flywheel.yaml").write_text("models: {default: {provider: extractive}}\n", encoding="utf-8")
    out = CliRunner().invoke(main, ["--project", str(tmp_path), "prompts", "list"])
    assert out.exit_code == 2, out.output
    assert "good" in out.stdout and "broken" in out.stdout and "(broken)" in out.stdout
    assert "broken.yaml:2" in out.stderr and "Traceback" not in out.output
    rows = json.loads(CliRunner().invoke(main, ["--project", str(tmp_path), "prompts", "list", "--json"]).stdout)
    errors = {r["name"]: bool(r["error"]) for r in rows}  # (the packaged prompts are listed too)
    assert errors["broken"] and not errors["good"] and sum(errors.values()) == 1

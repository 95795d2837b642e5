"""A mistyped command name is a usage error (exit 2, no traceback) that names the commands it was close to."""

from __future__ import annotations

from click.testing import CliRunner

from flywheel.cli import main


def test_a_mistyped_command_suggests_the_close_ones(tmp_path) -> None:
    res = CliRunner().invoke(main, ["--project", str(tmp_path), "injest", "docs/"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "No such command 'injest'. Did you mean 'ingest'" in res.output


def test_a_command_with_nothing_close_says_only_that(tmp_path) -> None:
    res = CliRunner().invoke(main, ["--project", str(tmp_path), "zzzz"])
    assert res.exit_code == 2 and "No such command 'zzzz'." in res.output and "Did you mean" not in res.output

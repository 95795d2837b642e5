"""`flywheel bench …` options a user can get wrong: one clear line and exit 2 before any work, never an option
silently ignored or a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from flywheel.cli import main


@pytest.mark.parametrize("args,says", [
    (["--set", "mrpc-test"], "--set only applies to --sets"),
    (["--sets", "--synthetic", "100"], "--synthetic and --sets are different runs"),
    (["--calibrate", "--sets"], "--calibrate and --sets are different runs"),
    (["--synthetic", "100", "--dense-weights", "0.5"], "--synthetic does not use --dense-weights"),
])
def test_retrieval_options_that_would_be_ignored_are_refused(tmp_path, args, says):
    result = CliRunner().invoke(main, ["bench", "retrieval", "--data", str(tmp_path), *args, "--json"])
    assert result.exit_code == 2, result.output
    assert says in result.stderr and "Traceback" not in result.output
    assert result.stdout == ""


@pytest.mark.parametrize("content", [b"not an npz file", None])
def test_cache_vectors_that_are_not_an_npz_file_are_a_user_error(tmp_path, content):
    target = tmp_path / "vectors.npz"
    if content is None:
        target.mkdir()  # a folder where the file should be
    else:
        target.write_bytes(content)
    result = CliRunner().invoke(main, ["bench", "cache", "--entries", "1000", "--data", str(tmp_path),
                                       "--vectors", str(target), "--json"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.exc_info[0] is SystemExit
    assert "--vectors" in result.stderr or "'--vectors'" in result.output

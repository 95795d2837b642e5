"""`flywheel --help` lists every command without importing any command module (it took 1.6 s when it did),
and the one-line help it shows is the command's own."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from flywheel.cli import COMMANDS, SHORT_HELP, main


def test_every_command_has_a_short_help_that_matches_its_docstring():
    ctx = click.Context(main)
    assert set(SHORT_HELP) == set(COMMANDS), "add the command's first docstring line to SHORT_HELP"
    for name in COMMANDS:
        cmd = main.get_command(ctx, name)
        assert cmd is not None
        mine = click.Command(name, help=SHORT_HELP[name]).get_short_help_str(1000)
        assert mine == cmd.get_short_help_str(1000), (
            f"SHORT_HELP[{name!r}] in flywheel/cli/__init__.py differs from the command's docstring")


def test_help_imports_no_command_module():
    code = ("import sys\nfrom flywheel.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('flywheel.')), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded = eval(out.stderr.strip().splitlines()[-1])  # our own printed list
    assert not [m for m in loaded if m.startswith("flywheel.cli.")], loaded
    assert "flywheel.retrieval" not in loaded and "flywheel.apps" not in loaded
    for name in COMMANDS:
        assert f"  {name} " in out.stdout


def test_help_lists_the_same_text_before_and_after_a_command_is_loaded():
    first = CliRunner().invoke(main, ["--help"]).output
    ctx = click.Context(main)
    for name in COMMANDS:
        main.get_command(ctx, name)
    assert CliRunner().invoke(main, ["--help"]).output == first

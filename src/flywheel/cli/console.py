"""How wide the CLI's reports may be, one rule for all of them: Rich tables and headings (`console()`) and the
plain-text layouts cut to a width (`output_width()`, `flywheel traces`).

- `COLUMNS`, when set, is the width (as in Rich, click and `shutil`; `watch` sets it for the command it runs).
- Otherwise, on a terminal: the terminal's width, as before.
- Otherwise (a file, a pipe, `less`, a CI log) there is no width to fit: lines are as long as their content, so no
  table cell is cut with "…" and no heading or sentence is wrapped.

Rich is imported only when a report is rendered (`--json` never imports it).
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

# The width of output that is not a terminal: wider than any line a report prints, so nothing is cut. Tables
# keep their natural width (none of the CLI's report tables expand) and text is not padded to it.
UNLIMITED_WIDTH = 100_000


def _columns() -> int | None:
    value = os.environ.get("COLUMNS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


def output_width(stream: IO[str] | None = None) -> int:
    """The width plain-text output on `stream` (stdout) may take: COLUMNS, else the terminal's, else unlimited."""
    columns = _columns()
    if columns is not None:
        return columns
    if _is_terminal(stream or sys.stdout):
        return shutil.get_terminal_size((80, 24)).columns
    return UNLIMITED_WIDTH


def console(*, stderr: bool = False, **kwargs: Any) -> Console:
    """A Rich console on stdout (stderr with `stderr=True`) without highlighting, as wide as `output_width`."""
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False, **kwargs)
    if not out.is_terminal and _columns() is None:
        out.width = UNLIMITED_WIDTH
    return out

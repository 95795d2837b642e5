"""Tables as text every loader writes the same way (HTML, Word, PowerPoint, spreadsheets, CSV, EPUB): one
paragraph per row, so the chunker can cut between rows and each row stays readable on its own. With a header
row every cell carries its column name (`| Plan: Pro | Price: 20 |`); without one the cells are piped
(`| Pro | 20 |`). Rows start with `|`, so boilerplate rules never take a row for a navigation menu."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_NUMBER = re.compile(r"^[-+]?[\d,.]+%?$")


def cell_text(text: str) -> str:
    """One line of a cell: whitespace collapsed, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def looks_like_header(row: Sequence[str]) -> bool:
    """A first row naming its columns: at least two cells, every one filled, none a number, no repeats."""
    cells = [c.strip() for c in row]
    return (len(cells) >= 2 and all(cells) and not any(_NUMBER.match(c) for c in cells)
            and len(set(cells)) == len(cells))


def row_text(row: Sequence[str], header: Sequence[str] | None = None) -> str:
    """One row as a line; '' when every cell is empty."""
    cells = [cell_text(c) for c in row]
    if not any(cells):
        return ""
    if header:
        named = []
        for i, c in enumerate(cells):
            if not c:
                continue
            name = cell_text(header[i]) if i < len(header) else ""
            named.append(f"{name}: {c}" if name else c)
        return "| " + " | ".join(named) + " |"
    while not cells[-1]:  # trailing empty cells say nothing without column names
        cells.pop()
    return "| " + " | ".join(cells) + " |"


def table_text(rows: Iterable[Sequence[str]], header: bool | None = None) -> str:
    """A whole table, rows separated by blank lines. `header`: True/False when the format says whether the first
    row names the columns (`<th>`, Word's repeated header row), None to guess: only from three columns up, since a
    two-column table is as often key/value pairs (`Name | Alice`) as a header over rows. A one-column table (a
    text box drawn as a table) is its cells as plain paragraphs."""
    rows = [list(r) for r in rows if any(c.strip() for c in r)]
    if not rows:
        return ""
    if max(len(r) for r in rows) == 1:
        return "\n\n".join(" ".join(r[0].split()) for r in rows)
    guess = len(rows[0]) >= 3 and looks_like_header(rows[0])
    has_header = len(rows) > 1 and (guess if header is None else header)
    head = rows[0] if has_header else None
    body = rows[1:] if has_header else rows
    return "\n\n".join(line for line in (row_text(r, head) for r in body) if line)

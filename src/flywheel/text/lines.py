"""One reader for the line-per-record files users hand us (JSONL rows for `check`, SFT data for `finetune`):
a missing, unreadable or non-UTF-8 file is a UserError naming it, never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

from flywheel.errors import UserError

# Only \n, \r\n or \r end a line of a JSON Lines file: str.splitlines would also cut at U+2028, U+2029 and
# U+0085, which JSON allows raw inside a string.
_LINE_END = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    """The lines of a JSON Lines text, ended by \n, \r\n or \r only (never by a character JSON keeps raw)."""
    return _LINE_END.split(text)


def numbered_lines(path: Path, *, hint: str) -> list[tuple[int, str, str]]:
    """(line number, "file:line", text) of every non-blank line of the UTF-8 file at `path`; `hint` says what
    the file should be when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a leading BOM (Windows editors) is not part of line 1
    except FileNotFoundError:
        raise UserError(f"no such file: {path}", hint=hint) from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})",
                        hint="save the file as UTF-8") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    return [(n, f"{path}:{n}", line) for n, line in enumerate(split_lines(text), 1) if line.strip()]

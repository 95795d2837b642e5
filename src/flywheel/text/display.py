"""Text from files, documents, models or users shown on a terminal: escape sequences and control characters
are made visible instead of being obeyed, so a file name or a chunk cannot move the cursor, rewrite the
screen, set the window title, plant an OSC 8 hyperlink or fake extra output lines."""

from __future__ import annotations

import re

# ANSI CSI (`ESC [ … final`), OSC (`ESC ] … BEL` or `ESC ] … ESC \`), and other two-byte ESC sequences,
# plus their 8-bit C1 forms (CSI U+009B, OSC U+009D …).
_ESCAPE = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
                     r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
                     r"|\x1b[@-Z\\-_]?")
# C0 / C1 controls, DEL, and the Unicode bidirectional overrides that reorder what is displayed.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_CONTROL_AND_NEWLINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u2028\u2029]")
_NAMES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(m: re.Match[str]) -> str:
    ch = m.group(0)
    if ch in _NAMES:
        return _NAMES[ch]
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def safe_display(text: object, *, multiline: bool = False) -> str:
    """`text` safe to print: escape sequences removed, other control characters shown as `\\xNN`. A name
    (`multiline=False`, the default) stays on one line (`\\n` shown as the two characters); a snippet
    (`multiline=True`) keeps its newlines and tabs."""
    s = text if isinstance(text, str) else str(text)
    if s.isprintable() and "\x1b" not in s:  # the common case: nothing to do
        return s
    s = _ESCAPE.sub("", s)
    if multiline:
        s = s.replace("\r\n", "\n")
        return _CONTROL.sub(_visible, s).replace("\u2028", "\n").replace("\u2029", "\n")
    return _CONTROL_AND_NEWLINE.sub(_visible, s)


def has_control(text: str) -> bool:
    """Does `text` hold a control character (a line break, an escape, a bidi override …)?"""
    return _CONTROL_AND_NEWLINE.search(text) is not None


__all__ = ["has_control", "safe_display"]

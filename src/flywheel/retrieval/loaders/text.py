"""Plain text: one Document per section, a section starting at a heading-like line (a Markdown `#` heading,
"3.3 …", "第二章 …", "一、…", a bold-only line, or a short line standing alone). Its location is that heading
(without markup); every Document records `line_start`, the file line its text starts on, so the chunker can
cite line ranges ("lines 120–134"). Page boilerplate is dropped first (see boilerplate.py)."""

from __future__ import annotations

from pathlib import Path

from flywheel.retrieval.loaders.base import (
    LoadOptions,
    clean_inline,
    decode,
    heading_level,
    make_document,
    read_bytes,
)
from flywheel.retrieval.loaders.boilerplate import record, strip_boilerplate
from flywheel.types import Document

_FENCE = ("```", "~~~")


def text_sections(text: str) -> list[tuple[str | None, int, str]]:
    """[(heading or None, first line number of the body, body)] with the body's own lines unchanged. No line
    is lost: a short line standing alone at the end or before another one is text, not a heading (a one-line
    note, a closing "Thanks."); a heading directly followed by another one leads its location ("第一章 总则 >
    1.1 范围"); a heading at the very end is the text of a section of its own."""
    lines = text.split("\n")
    levels = _levels(lines)
    out: list[tuple[str | None, int, str]] = []
    heading: str | None = None
    start = 0

    def flush(end: int) -> bool:
        body = lines[start:end]
        while body and not body[0].strip():  # keep line numbers true: count the blank lines skipped
            body = body[1:]
        first = end - len(body)
        if "\n".join(body).strip():
            out.append((heading, first + 1, "\n".join(body).rstrip()))
            return True
        return False

    for i, line in enumerate(lines):
        if levels[i] is None:
            continue
        name = clean_inline(line) or None
        if not flush(i) and heading and name:
            name = f"{heading} > {name}"
        heading, start = name, i + 1
    if not flush(len(lines)) and heading and start:
        out.append((heading, start, lines[start - 1].strip()))
    return out


def _levels(lines: list[str]) -> list[int | None]:
    """heading_level of every line (None inside fenced code), a short line alone (level 8) followed by
    nothing or by another such line demoted to text (a closing line, a list of short lines); one followed by
    a stronger heading stays one (a title line leads that heading's location)."""
    levels: list[int | None] = []
    in_fence = False
    for i, line in enumerate(lines):
        if line.lstrip().startswith(_FENCE):
            in_fence = not in_fence
        levels.append(None if in_fence else heading_level(lines, i))
    following: int | None = None  # the next non-blank line
    for i in reversed(range(len(lines))):
        if not lines[i].strip():
            continue
        if levels[i] == 8 and (following is None or levels[following] == 8):
            levels[i] = None
        following = i
    return levels


def load_text(path: Path, *, source: str, tenant: str, options: LoadOptions) -> list[Document]:
    text, dropped = strip_boilerplate(decode(read_bytes(path, options)))
    docs = [make_document(body, source=source, tenant=tenant, title=path.stem, location=heading,
                          options=options, line_start=first)
            for heading, first, body in text_sections(text)]
    if docs:
        record(docs[0].metadata, dropped)
    return docs

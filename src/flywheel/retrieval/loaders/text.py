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
    """[(heading or None, first line number of the body, body)] with the body's own lines unchanged."""
    lines = text.split("\n")
    out: list[tuple[str | None, int, str]] = []
    heading: str | None = None
    start = 0
    in_fence = False

    def flush(end: int) -> None:
        body = lines[start:end]
        while body and not body[0].strip():  # keep line numbers true: count the blank lines skipped
            body = body[1:]
        first = end - len(body)
        if "\n".join(body).strip():
            out.append((heading, first + 1, "\n".join(body).rstrip()))

    for i, line in enumerate(lines):
        if line.lstrip().startswith(_FENCE):
            in_fence = not in_fence
        if in_fence or heading_level(lines, i) is None:
            continue
        flush(i)
        heading, start = clean_inline(line) or None, i + 1
    flush(len(lines))
    return out


def load_text(path: Path, *, source: str, tenant: str, options: LoadOptions) -> list[Document]:
    text, dropped = strip_boilerplate(decode(read_bytes(path, options)).replace("\r\n", "\n"))
    docs = [make_document(body, source=source, tenant=tenant, title=path.stem, location=heading,
                          options=options, line_start=first)
            for heading, first, body in text_sections(text)]
    if docs:
        record(docs[0].metadata, dropped)
    return docs

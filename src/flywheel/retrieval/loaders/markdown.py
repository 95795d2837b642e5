"""Markdown: one Document per heading section, the heading path ("Install > Linux") as its location, headings
without markup (`## **3.3 Title**` → `3.3 Title`). YAML front matter becomes metadata (its `title` the document
title). Page boilerplate (follow/subscribe lines, reference lists, navigation) is dropped first and recorded
in the first Document's metadata (see boilerplate.py)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from flywheel.config import load_yaml
from flywheel.retrieval.loaders.base import LoadOptions, clean_inline, decode, make_document, read_bytes
from flywheel.retrieval.loaders.boilerplate import record, strip_boilerplate
from flywheel.types import Document

_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_FRONT = re.compile(r"\A---[ \t]*\n(.*?\n)---[ \t]*\n", re.DOTALL)


def split_sections(text: str) -> list[tuple[list[str], str]]:
    """[(heading path, body)] in document order; text before the first heading has an empty path.
    Headings inside fenced code blocks are not headings."""
    sections: list[tuple[list[str], str]] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []
    in_fence = False

    def flush() -> None:
        content = "\n".join(body).strip()
        if content:
            sections.append(([t for _, t in path], content))
        body.clear()

    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None
        if not in_fence:
            m = _ATX.match(line)
            if m:
                heading = (len(m.group(1)), clean_inline(m.group(2)))
            elif (_SETEXT.match(line) and body and body[-1].strip()
                  and (i < 2 or not lines[i - 2].strip()) and not _ATX.match(body[-1])):
                heading = (1 if line.strip()[0] == "=" else 2, clean_inline(body.pop()))
        if heading is None:
            body.append(line)
            continue
        flush()
        level, title = heading
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, title))
    flush()
    return sections


def front_matter(text: str) -> tuple[dict, str]:
    m = _FRONT.match(text)
    if not m:
        return {}, text
    try:
        data = load_yaml(m.group(1))
    except yaml.YAMLError:
        return {}, text
    if not isinstance(data, dict):
        return {}, text
    meta = {str(k): v for k, v in data.items() if isinstance(v, (str, int, float, bool))}
    return meta, text[m.end():]


def load_markdown(path: Path, *, source: str, tenant: str, options: LoadOptions) -> list[Document]:
    text = decode(read_bytes(path, options))
    return markdown_documents(text, source=source, tenant=tenant, options=options, default_title=path.stem)


def markdown_documents(text: str, *, source: str, tenant: str, options: LoadOptions,
                       default_title: str) -> list[Document]:
    meta, text = front_matter(text)
    text, dropped = strip_boilerplate(text)
    sections = split_sections(text)
    title = str(meta.pop("title", "")) or next((p[0] for p, _ in sections if p), None) or default_title
    docs = []
    for heading_path, body in sections:
        location = " > ".join(heading_path) or None
        docs.append(make_document(body, source=source, tenant=tenant, title=title, location=location,
                                  options=options, heading=heading_path[-1] if heading_path else None, **meta))
    if docs:
        record(docs[0].metadata, dropped)
    return docs

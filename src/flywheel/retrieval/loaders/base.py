"""What every loader shares: the skip signal, decoding bytes sensibly, and building Documents."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.types import Document, content_hash

# Tried in order after BOM detection. Legacy single-byte code pages (latin-1, cp1252) are deliberately absent:
# they decode any byte string, so a wrong guess would index mojibake instead of reporting the file.
ENCODINGS = ("utf-8", "gb18030", "big5", "shift_jis", "euc-kr")
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Skip(Exception):
    """Raised by a loader for a file it will not index; the message is the reason shown to the user."""


@dataclass
class LoadOptions:
    max_bytes: int = 50 * 1024 * 1024
    max_rows: int = 50_000  # spreadsheets and CSV: rows indexed from one file (the rest is reported)
    text_field: str = "text"  # JSONL: the field holding the text
    title_field: str = "title"
    id_fields: tuple[str, ...] = ("_id", "id")
    metadata: dict[str, Any] = field(default_factory=dict)  # user fields added to every document


def check_size(size: int, options: LoadOptions) -> None:
    """Skip an empty file or one over `options.max_bytes`."""
    if size == 0:
        raise Skip("empty file")
    if size > options.max_bytes:
        raise Skip(f"too large ({size / 1e6:.1f} MB > limit {options.max_bytes / 1e6:.1f} MB)")


def read_bytes(path: Path, options: LoadOptions) -> bytes:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise Skip(f"cannot read: {exc.strerror}") from None
    check_size(size, options)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise Skip(f"cannot read: {exc.strerror}") from None


def decode(data: bytes) -> str:
    """Text of `data`: BOM first, then UTF-8 and the common CJK encodings. Binary or undecodable → Skip."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return _checked(data.decode(enc))
            except UnicodeDecodeError:
                raise Skip(f"undecodable text (has a {enc} byte-order mark but is not valid {enc})") from None
    if b"\x00" in data[:8192]:
        raise Skip("binary file (contains NUL bytes)")
    for enc in ENCODINGS:
        try:
            return _checked(data.decode(enc))
        except UnicodeDecodeError:
            continue
    raise Skip(f"undecodable text (not {', '.join(ENCODINGS)}); convert it to UTF-8")


def _checked(text: str) -> str:
    if not text.strip():
        raise Skip("empty file (only whitespace)")
    sample = text[:20000]
    if len(_CONTROL.findall(sample)) > max(8, len(sample) // 100):
        raise Skip("binary file (too many control characters)")
    return text


def make_document(text: str, *, source: str, tenant: str, title: str | None, location: str | None,
                  options: LoadOptions, **fields: Any) -> Document:
    """A Document whose id is the hash of where it is and what it says (stable across runs and machines)."""
    meta = {**options.metadata, **{k: v for k, v in fields.items() if v is not None}}
    if location:
        meta["location"] = location
    return Document(id=content_hash(tenant, source, location or "", text), text=text, source=source,
                    title=title, tenant=tenant, metadata=meta)


_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+\S")
_HASHES = re.compile(r"^\s*#{1,6}\s+|\s+#+\s*$")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MARKS = re.compile(r"\*\*|__|(?<![\w*])[*_](?=\S)|(?<=\S)[*_](?![\w*])|`")
_NUMBERED = re.compile(r"^(?:\d+(?:\.\d+)+\.?|第[一二三四五六七八九十百\d]+[章节部分篇]|[一二三四五六七八九十]+、|[A-Z]\.)\s*\S")
_SECTION_NUMBER = re.compile(r"^\d{1,2}[.、]\s*\S.{0,38}$")
_NOT_HEADING = re.compile(r"^\s*(?:[-*+•]\s|\d{1,3}[.)、]\s|\[\d+\])|https?://|[。！？；.!?;：:，,、]\s*$")


def clean_inline(text: str) -> str:
    """A heading's text without Markdown markup: `**3.3 Title**` → `3.3 Title`, `[a](url)` → `a`."""
    text = text.strip()
    # each pattern runs only when its text can match (called for most lines of every file at ingest)
    if "#" in text:
        text = _HASHES.sub("", text)
    if "[" in text:
        text = _LINK.sub(r"\1", text)
    if "*" in text or "_" in text or "`" in text:
        text = _MARKS.sub("", text)
    return " ".join(text.split())


def heading_level(lines: list[str], i: int) -> int | None:
    """Whether line i of a text heads a section, and how high: 1–6 for Markdown `#` headings, 7 for a
    numbered ("3.3 …", "第二章", "一、") or bold-only line, 8 for a short line standing alone between blank
    lines; None for anything else (list items, citations, sentences)."""
    line = lines[i].strip()
    m = _ATX.match(lines[i])
    if m:
        return len(m.group(1))
    alone = (i == 0 or not lines[i - 1].strip()) and (i + 1 >= len(lines) or not lines[i + 1].strip())
    if alone and i + 1 < len(lines) and _SECTION_NUMBER.match(line) and not _NOT_HEADING.search(line[3:]):
        return 7  # "1. Why evals are hard" alone between blank lines: a numbered section, not a list
    if not line or len(line) > 80 or _NOT_HEADING.search(line):
        return None
    if line.startswith("**") and line.endswith("**") and line.count("**") == 2:
        return 7
    plain = clean_inline(line)
    if not plain or len(plain) > 40 or _NOT_HEADING.search(plain):
        return None
    if _NUMBERED.match(plain):
        return 7
    return 8 if alone and i + 1 < len(lines) else None

"""What every loader shares: the skip signal, decoding bytes sensibly, and building Documents."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.retrieval.loaders.encoding import ENCODINGS as LEGACY
from flywheel.retrieval.loaders.encoding import ranked
from flywheel.types import Document, content_hash

# After BOM detection and UTF-8, the legacy CJK encodings are ranked (encoding.py). Legacy single-byte code pages
# (latin-1, cp1252) are deliberately absent: they decode any byte string, so a wrong guess would index mojibake
# instead of reporting the file (an HTML page that declares one is read with it).
ENCODINGS = ("utf-8", *LEGACY)
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_WIDE = re.compile("[\x80-\ufffc\U00010000-\U0010ffff]")  # decoded multi-byte characters, not U+FFFD


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
        raise Skip(too_large(size, options))


def too_large(size: int, options: LoadOptions) -> str:
    """Why a file over the limit is skipped, in the unit of `--max-file-mb` (MiB), never "50.0 MB > 50.0 MB"."""
    mb, limit = size / 2**20, options.max_bytes / 2**20
    digits = next((d for d in range(1, 7) if round(mb, d) > round(limit, d)), 6)
    return (f"too large ({mb:.{digits}f} MB > limit {limit:.{digits}f} MB): raise `flywheel ingest --max-file-mb` "
            f"to index it")


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


def decode(data: bytes, declared: str | None = None) -> str:
    """Text of `data` with "\n" line ends (Windows CRLF and old-Mac CR alike): BOM first, then the encoding the
    file declares (`declared`: an HTML page's meta charset), UTF-8 (also with a rare bad byte among many valid
    multi-byte characters, shown as U+FFFD: a log cut mid-character must not become GB18030 mojibake), and the
    likeliest of the common CJK encodings (encoding.py: GB18030, Big5, Shift-JIS, EUC-KR). Binary or
    undecodable → Skip."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return _checked(data.decode(enc))
            except UnicodeDecodeError:
                raise Skip(f"undecodable text (has a {enc} byte-order mark but is not valid {enc})") from None
    if b"\x00" in data[:8192]:
        raise Skip("binary file (contains NUL bytes)")
    for enc in ([declared] if declared else []) + ["utf-8"]:
        try:
            return _checked(data.decode(enc))
        except (UnicodeDecodeError, LookupError):
            continue
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    if bad <= max(4, len(text) // 1000) and len(_WIDE.findall(text)) >= 10 * bad:
        return _checked(text)  # UTF-8 (plenty of valid multi-byte characters) with a stray byte or cut short
    for enc in ranked(data):  # (scored only for a file that is not UTF-8)
        try:
            return _checked(data.decode(enc))
        except UnicodeDecodeError:
            continue
    raise Skip(f"undecodable text (not {', '.join(ENCODINGS)}); convert it to UTF-8")


def _checked(text: str) -> str:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
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

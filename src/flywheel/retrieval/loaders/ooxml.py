"""Zip packages (Word, PowerPoint, Excel, EPUB) read with the standard library: opening with a reason for every
way a file is unusable (encrypted, an old binary format, not a zip, a zip of something else, corrupt), parts
parsed with size limits, relationships resolved, the title from the core properties."""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from flywheel.retrieval.loaders.base import LoadOptions, Skip, check_size

REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
R_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"
_CFB = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # OLE compound file: legacy .doc/.xls/.ppt, or an encrypted OOXML file
_ENCRYPTED = "EncryptedPackage".encode("utf-16-le")
_MAX_PART = 200 * 1024 * 1024  # uncompressed bytes of a part read whole: beyond it a "document" is a zip bomb
MAX_STREAMED = 2 * 1024 * 1024 * 1024  # a part read as a stream (a worksheet) can be bigger: reading stops early

# (what the file is called, what to do instead) by extension
KINDS = {".docx": ("Word document", "Word"), ".pptx": ("PowerPoint deck", "PowerPoint"),
         ".xlsx": ("Excel workbook", "Excel"), ".epub": ("EPUB book", "your e-book editor")}


def _resave(suffix: str) -> str:
    return f"open it in {KINDS[suffix][1]} and save it again as {suffix}"


@contextmanager
def open_package(path: Path, options: LoadOptions, required: str) -> Iterator[zipfile.ZipFile]:
    """The file as a zip, or Skip saying what it is instead and what to do. `required` is the part that makes it
    this kind of file (`word/document.xml`)."""
    suffix = path.suffix.lower()
    kind = KINDS[suffix][0]
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if head == _CFB:
                if size <= options.max_bytes and _ENCRYPTED in f.read():
                    raise Skip(f"password-protected {kind}: remove the password ({KINDS[suffix][1]}: File > Info > "
                               f"Protect) and save it again, or export it to PDF")
                raise Skip(f"old binary Office format saved as {suffix}: {_resave(suffix)}")
    except OSError as exc:
        raise Skip(f"cannot read: {exc.strerror}") from None
    check_size(size, options)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise Skip(f"corrupt {kind} (not a readable zip archive: damaged or cut short): {_resave(suffix)}") from None
    except OSError as exc:
        raise Skip(f"cannot read: {exc.strerror}") from None
    with zf:
        if required not in zf.namelist():
            raise Skip(f"a zip archive that is not a {kind} (no {required}): {_resave(suffix)}")
        try:
            yield zf
        except ET.ParseError as exc:
            raise Skip(f"corrupt {kind}: a part is not well-formed XML ({exc}): {_resave(suffix)}") from None
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError,
                KeyError) as exc:
            # a damaged entry (bad CRC, deflate data, truncated), an unsupported compression method, an encrypted entry, a
            # relationship to a part that is not there
            raise Skip(f"corrupt {kind} (damaged: {str(exc)[:80] or type(exc).__name__}): {_resave(suffix)}") from None


def open_part(zf: zipfile.ZipFile, name: str, limit: int = _MAX_PART) -> IO[bytes]:
    """A part to read; zipfile never returns more than the size it declares, so the check holds."""
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise Skip(f"part {name} unpacks to {info.file_size / 1e6:.0f} MB (limit {limit / 1e6:.0f} MB): "
                   f"not a document but a zip bomb, or split it into smaller files")
    return zf.open(info)


def read_xml(zf: zipfile.ZipFile, name: str, kind: str) -> ET.Element | None:
    """The root of a part, None when the package has no such part; malformed XML → Skip."""
    if name not in zf.NameToInfo:
        return None
    try:
        with open_part(zf, name) as f:
            return ET.parse(f).getroot()
    except ET.ParseError as exc:
        raise Skip(f"corrupt {kind}: {name} is not well-formed XML ({exc})") from None


def rels(zf: zipfile.ZipFile, part: str, kind: str) -> dict[str, tuple[str, str]]:
    """{relationship id: (type's last word, target part name)} of a part (`word/document.xml`)."""
    folder, name = posixpath.split(part)
    root = read_xml(zf, posixpath.join(folder, "_rels", name + ".rels"), kind)
    out: dict[str, tuple[str, str]] = {}
    for r in root.iter(f"{REL}Relationship") if root is not None else ():
        if r.get("TargetMode") == "External":
            continue
        target = r.get("Target", "")
        full = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
        out[r.get("Id", "")] = (r.get("Type", "").rsplit("/", 1)[-1], full)
    return out


def core_title(zf: zipfile.ZipFile, kind: str) -> str | None:
    """dc:title of docProps/core.xml (what File > Properties shows), if set."""
    root = read_xml(zf, "docProps/core.xml", kind)
    el = root.find(DC_TITLE) if root is not None else None
    title = " ".join((el.text or "").split()) if el is not None else ""
    return title or None


def attr(el: ET.Element | None, name: str) -> str | None:
    """An attribute by its local name, whatever its namespace (transitional or strict OOXML)."""
    if el is None:
        return None
    for key, value in el.attrib.items():
        if key == name or key.endswith("}" + name):
            return value
    return None


def child(el: ET.Element | None, name: str) -> ET.Element | None:
    for c in el if el is not None else ():
        if local(c.tag) == name:
            return c
    return None


def local(tag: str) -> str:
    """`{namespace}p` → `p`."""
    return tag.rsplit("}", 1)[-1]


def md_literal(line: str) -> str:
    """A paragraph of body text that must not read as a Markdown heading or code fence."""
    stripped = line.lstrip()
    return "\\" + stripped if stripped.startswith(("#", "```", "~~~")) else line

"""Loaders: files → Documents. A file a loader cannot use is skipped with a reason, never an exception."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from flywheel.retrieval.loaders.base import LoadOptions, Skip, decode, read_bytes, too_large
from flywheel.retrieval.loaders.docx import load_docx
from flywheel.retrieval.loaders.epub import load_epub
from flywheel.retrieval.loaders.html import load_html
from flywheel.retrieval.loaders.jsonl import load_jsonl
from flywheel.retrieval.loaders.markdown import load_markdown
from flywheel.retrieval.loaders.pdf import load_pdf
from flywheel.retrieval.loaders.pptx import load_pptx
from flywheel.retrieval.loaders.sheets import load_csv, load_xlsx
from flywheel.retrieval.loaders.text import load_text
from flywheel.types import Document

Loader = Callable[..., list[Document] | tuple[list[Document], list[str]]]

LOADERS: dict[str, Loader] = {
    ".md": load_markdown, ".markdown": load_markdown, ".mdx": load_markdown,
    ".txt": load_text, ".text": load_text, ".rst": load_text,
    ".html": load_html, ".htm": load_html, ".xhtml": load_html,
    ".pdf": load_pdf,
    ".jsonl": load_jsonl, ".ndjson": load_jsonl,
    ".docx": load_docx, ".pptx": load_pptx, ".xlsx": load_xlsx, ".csv": load_csv, ".tsv": load_csv,
    ".epub": load_epub,
}
_SKIP_DIRS = {"node_modules", "__pycache__", "venv", ".venv", "site-packages"}


def loader_for(path: Path) -> Loader:
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        kinds = " ".join(sorted({s for s in LOADERS}))
        raise Skip(f"unknown file type '{path.suffix or '(no extension)'}' (supported: {kinds})")
    return loader


@dataclass
class Loaded:
    docs: list[Document]
    warnings: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # boilerplate lines dropped, by kind


def load_file(path: Path, *, source: str, tenant: str = "default", options: LoadOptions | None = None) -> Loaded:
    """Documents of one file. Raises Skip (with the reason) when the file cannot be used."""
    options = options or LoadOptions()
    try:
        result = loader_for(path)(path, source=source, tenant=tenant, options=options)
    except Skip:
        kind = _plain_text_as(path, options)
        if kind is None:
            raise
        # a .docx that is a renamed .txt: its text is what the user wants found
        result = (load_text(path, source=source, tenant=tenant, options=options),
                  [f"not a {kind} but plain text: indexed as text (rename it to .txt)"])
    docs, warnings = result if isinstance(result, tuple) else (result, [])
    unique: dict[str, Document] = {}
    for d in docs:
        unique.setdefault(d.id, d)  # the same text at the same place twice adds nothing
    if not unique:
        raise Skip("no text")
    dropped: dict[str, int] = {}
    for d in unique.values():
        for kind, n in (d.metadata.get("boilerplate") or {}).items():
            dropped[kind] = dropped.get(kind, 0) + n
    return Loaded(list(unique.values()), warnings, dropped)


_PACKAGES = {".docx": "Word document", ".pptx": "PowerPoint deck", ".xlsx": "Excel workbook", ".epub": "EPUB book",
             ".pdf": "PDF"}
_MAGIC = (b"PK", b"%PDF", b"\xd0\xcf\x11\xe0")
_HTML = re.compile(rb"\s*(?:\xef\xbb\xbf)?\s*<(?:!doctype html|html|head|body|\?xml|!--)", re.IGNORECASE)


def _plain_text_as(path: Path, options: LoadOptions) -> str | None:
    """What a binary-format file (.docx, .pdf …) was meant to be, when it holds plain text instead; else None.
    An HTML page under such a name (a download that got a login or error page) is skipped as that."""
    kind = _PACKAGES.get(path.suffix.lower())
    if kind is None:
        return None
    try:
        data = read_bytes(path, options)
    except Skip:
        return None
    head = data[:1024]
    if not head or head.startswith(_MAGIC) or b"%PDF" in head:
        return None
    try:
        decode(data)
    except Skip:
        return None
    if _HTML.match(head):
        raise Skip(f"not a {kind} but an HTML page (a download that got a web page instead?)")
    return kind


def is_beir_dataset(folder: Path) -> bool:
    return (folder / "corpus.jsonl").is_file() and (folder / "qrels").is_dir()


def walk(path: Path, follow_links: bool = False, unreadable: list[tuple[Path, str]] | None = None
         ) -> Iterator[Path]:
    """Files under `path` in a stable order; hidden and tool folders are skipped. A BEIR dataset folder
    contributes only its corpus (its queries and qrels are evaluation data, not documents). Linked folders are
    entered only with `follow_links` (each real folder once: a link back up the tree does not loop). A folder
    that cannot be listed (permissions) is added to `unreadable` with the reason."""

    def failed(exc: OSError) -> None:
        if unreadable is not None:
            unreadable.append((Path(exc.filename or path), f"cannot read folder: {exc.strerror or exc}"))

    if path.is_file():
        yield path
        return
    if is_beir_dataset(path):
        yield path / "corpus.jsonl"
        return
    visited: set[str] = set()
    for root, dirs, files in os.walk(path, onerror=failed, followlinks=follow_links):
        if follow_links:
            real = os.path.realpath(root)
            if real in visited:
                dirs[:] = []
                continue
            visited.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        here = Path(root)
        if here != path and is_beir_dataset(here):
            dirs[:] = []
            yield here / "corpus.jsonl"
            continue
        for name in sorted(files):
            if not name.startswith("."):
                yield here / name


__all__ = ["LOADERS", "LoadOptions", "Loaded", "Skip", "decode", "is_beir_dataset", "load_file", "loader_for",
           "too_large", "walk"]

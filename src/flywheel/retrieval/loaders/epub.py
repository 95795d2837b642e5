"""EPUB (zip + XHTML): the chapters in reading order (the OPF spine), each read like an HTML page (html.py: main
text, headings as sections, tables as rows). A chapter's text before its first heading is located by the
chapter's own <title> or file name; the book's title (dc:title) is every Document's title. DRM-encrypted
books are skipped with the reason (font obfuscation, which also uses encryption.xml, is not DRM)."""

from __future__ import annotations

import posixpath
from pathlib import Path
from urllib.parse import unquote

from flywheel.retrieval.loaders.base import LoadOptions, Skip, decode
from flywheel.retrieval.loaders.encoding import declared
from flywheel.retrieval.loaders.html import html_to_markdown
from flywheel.retrieval.loaders.markdown import markdown_documents
from flywheel.retrieval.loaders.ooxml import DC_TITLE, attr, local, open_package, open_part, read_xml
from flywheel.types import Document

KIND = "EPUB book"
_CHAPTER_TYPES = {"application/xhtml+xml", "text/html", "application/x-dtbook+xml"}
_CONTENT = (".xhtml", ".html", ".htm", ".xml")


def load_epub(path: Path, *, source: str, tenant: str, options: LoadOptions) -> list[Document]:
    docs: list[Document] = []
    with open_package(path, options, "META-INF/container.xml") as zf:
        container = read_xml(zf, "META-INF/container.xml", KIND)
        opf_path = next((attr(el, "full-path") for el in container.iter() if local(el.tag) == "rootfile"),
                        None) if container is not None else None
        opf = read_xml(zf, opf_path, KIND) if opf_path else None
        if opf is None:
            raise Skip(f"corrupt {KIND}: META-INF/container.xml names no package document; "
                       f"open it in your e-book editor and save it again")
        encryption = read_xml(zf, "META-INF/encryption.xml", KIND)
        locked = [attr(el, "URI") or "" for el in encryption.iter() if local(el.tag) == "CipherReference"] \
            if encryption is not None else []
        if any(unquote(u).lower().endswith(_CONTENT) for u in locked):
            raise Skip("DRM-protected EPUB (its chapters are encrypted): use a DRM-free copy of the book")
        folder = posixpath.dirname(opf_path or "")
        title_el = opf.find(f".//{DC_TITLE}")
        book_title = " ".join((title_el.text or "").split()) if title_el is not None else ""
        manifest = {attr(it, "id"): it for it in opf.iter() if local(it.tag) == "item"}
        for ref in (el for el in opf.iter() if local(el.tag) == "itemref"):
            item = manifest.get(attr(ref, "idref"))
            if item is None or attr(item, "media-type") not in _CHAPTER_TYPES or \
                    "nav" in (attr(item, "properties") or "").split():
                continue
            part = posixpath.normpath(posixpath.join(folder, unquote(attr(item, "href") or "")))
            if part not in zf.NameToInfo:
                continue
            with open_part(zf, part) as f:
                data = f.read()
            try:
                text, chapter_title = html_to_markdown(decode(data, declared(data)))
            except Skip:
                continue  # an empty or image-only chapter (a cover page)
            if not text.strip():
                continue
            label = chapter_title or posixpath.splitext(posixpath.basename(part))[0]
            for d in markdown_documents(text, source=source, tenant=tenant, options=options, default_title=label):
                if not d.metadata.get("location"):
                    d.metadata["location"] = label
                d.metadata["chapter"] = part
                d.title = book_title or path.stem
                docs.append(d)
    if not docs:
        raise Skip("EPUB without chapter text")
    return docs

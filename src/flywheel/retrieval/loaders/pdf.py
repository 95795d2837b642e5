"""PDF (pypdf, extra `pdf`): one Document per page with text, located as "page N"."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from flywheel.retrieval.loaders.base import LoadOptions, Skip, make_document, read_bytes
from flywheel.retrieval.loaders.boilerplate import record, strip_boilerplate
from flywheel.text.install import pip_install
from flywheel.types import Document

_PLACEHOLDER = re.compile(r"^(?:untitled(?: document)?|anonymous|\(anonymous\)|unknown|no title|title|document|"
                          r"powerpoint presentation|slide \d+|microsoft word - .*|[\w-]+\.(?:docx?|pptx?|xlsx?|tex|dvi))$",
                          re.IGNORECASE)


def _real_title(title: str | None) -> str | None:
    """The Title of the PDF's info dictionary, None when it is a tool's placeholder ("untitled", "Microsoft
    Word - draft3.docx", "main.tex"): the file name says more."""
    return None if not title or _PLACEHOLDER.match(title.strip()) else title


def load_pdf(path: Path, *, source: str, tenant: str, options: LoadOptions) -> list[Document]:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError
    except ImportError:
        raise Skip(f"PDF support is not installed: {pip_install('pdf')}") from None
    import io

    data = read_bytes(path, options)
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # pypdf warns loudly about harmless oddities
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                ok: object = reader.decrypt("")
            except Exception:  # noqa: BLE001 - unsupported encryption algorithms raise various errors
                ok = 0
            if not ok:
                raise Skip("encrypted PDF (needs a password)")
        title = None
        try:
            meta = reader.metadata
            title = str(meta.title).strip() if meta and meta.title else None
        except Exception:  # noqa: BLE001 - broken info dictionaries are common and harmless
            title = None
        pages = []
        for number, page in enumerate(reader.pages, start=1):
            text = (page.extract_text() or "").strip()
            if text:
                pages.append((number, text))
    except Skip:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError,
            RecursionError, AssertionError) as exc:
        raise Skip(f"corrupt PDF ({type(exc).__name__}: {str(exc)[:80]})") from None
    if not pages:
        raise Skip("PDF without extractable text (scanned images need OCR first)")
    title = _real_title(title) or path.stem
    docs = []
    for n, text in pages:  # running heads, share lines and reference lists dropped page by page
        kept, dropped = strip_boilerplate(text)
        if kept.strip():
            docs.append(make_document(kept.strip(), source=source, tenant=tenant, title=title,
                                      location=f"page {n}", options=options, page=n))
            record(docs[-1].metadata, dropped)
    return docs

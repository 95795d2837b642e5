"""Plain text: the whole file is one Document (the chunker splits paragraphs and sentences)."""

from __future__ import annotations

from pathlib import Path

from flywheel.retrieval.loaders.base import LoadOptions, decode, make_document, read_bytes
from flywheel.types import Document


def load_text(path: Path, *, source: str, tenant: str, options: LoadOptions) -> list[Document]:
    text = decode(read_bytes(path, options))
    return [make_document(text.strip(), source=source, tenant=tenant, title=path.stem, location=None,
                          options=options)]

"""A project over a few documents, ingested for keyword search only (`embedder: none`), and the docs-QA app with
the offline extractive model over it: the set-up of the tests that ask questions of small bilingual corpora."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flywheel.apps.docs_qa import DocsQA
from flywheel.apps.runtime import Runtime
from flywheel.config import ModelAlias, Project
from flywheel.gateway import Gateway
from flywheel.prompts import PromptRegistry


@contextmanager
def bm25_runtime(root: Path, pages: dict[str, str]) -> Iterator[Runtime]:
    """A runtime over `pages` (path under docs/ → text) written to `root` and ingested, BM25 only."""
    from flywheel.retrieval.ingest import ingest

    for name, text in pages.items():
        path = root / "docs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (root / "flywheel.yaml").write_text("retrieval: {embedder: none}\n", encoding="utf-8")
    project = Project.load(root)
    with Runtime(project) as rt:
        ingest([root / "docs"], rt.store, project.config, root=root)
        yield rt


def offline_app(retriever: Any) -> DocsQA:
    """The docs-QA app answering with the extractive model (no LLM)."""
    return DocsQA(retriever=retriever, gateway=Gateway({"default": ModelAlias(provider="extractive")}),
                  prompt=PromptRegistry().get("docs_qa"))

"""PowerPoint (.pptx, standard library only): one Document per slide in presentation order, located as
`slide N: Title` (the title placeholder's text), with the slide's text boxes in reading order, its tables as rows
(tables.py) and its speaker notes last under "Speaker notes:". Hidden slides (`<p:sld show="0">`, Slide Show >
Hide Slide) are not indexed, and a warning says which; the slides around them keep their numbers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

from flywheel.retrieval.loaders.base import LoadOptions, Skip, make_document
from flywheel.retrieval.loaders.boilerplate import record, strip_boilerplate
from flywheel.retrieval.loaders.ooxml import (
    R_ID,
    attr,
    child,
    core_title,
    local,
    md_literal,
    open_package,
    read_xml,
    rels,
)
from flywheel.retrieval.loaders.tables import table_text
from flywheel.types import Document

KIND = "PowerPoint deck"
_TITLES = {"title", "ctrTitle"}
_NOT_CONTENT = {"sldNum", "dt", "ftr", "hdr", "sldImg"}  # slide number, date, footer, header, the notes' thumbnail


def paragraphs(body: ET.Element) -> list[str]:
    """The text of each <a:p> under a text body; line breaks inside one become spaces."""
    out = []
    for p in body.iter():
        if local(p.tag) != "p":
            continue
        parts = [(t.text or "") if local(t.tag) == "t" else " " for t in p.iter() if local(t.tag) in ("t", "br")]
        text = " ".join("".join(parts).split())
        if text:
            out.append(text)
    return out


def _placeholder(shape: ET.Element) -> str | None:
    """The placeholder type of a shape (`title`, `body`, …; a placeholder without a type is a body)."""
    for el in shape.iter():
        if local(el.tag) == "ph":
            return attr(el, "type") or "body"
    return None


def shapes(tree: ET.Element) -> tuple[str | None, list[str]]:
    """(title, blocks of text) of a slide's shape tree, group shapes entered, in document order."""
    title: str | None = None
    blocks: list[str] = []
    for shape in tree:
        tag = local(shape.tag)
        if tag == "grpSp":
            sub_title, sub = shapes(shape)
            title = title or sub_title
            blocks.extend(sub)
        elif tag == "sp":
            kind = _placeholder(shape)
            body = child(shape, "txBody")
            if body is None or kind in _NOT_CONTENT:
                continue
            lines = paragraphs(body)
            if kind in _TITLES and title is None and lines:
                title = " ".join(lines)
            elif lines:
                blocks.append("\n".join(md_literal(line) for line in lines))
        elif tag == "graphicFrame":
            for tbl in shape.iter():
                if local(tbl.tag) == "tbl":
                    rows = [[" ".join(paragraphs(tc)) for tc in tr if local(tc.tag) == "tc"]
                            for tr in tbl if local(tr.tag) == "tr"]
                    first_row = attr(child(tbl, "tblPr"), "firstRow") in ("1", "true")
                    rendered = table_text(rows, header=True if first_row else None)
                    if rendered:
                        blocks.append(rendered)
    return title, blocks


def _notes(zf: zipfile.ZipFile, slide_part: str) -> list[str]:
    for kind, part in rels(zf, slide_part, KIND).values():
        if kind == "notesSlide":
            root = read_xml(zf, part, KIND)
            tree = next((el for el in root.iter() if local(el.tag) == "spTree"), None) if root is not None else None
            if tree is not None:
                _, blocks = shapes(tree)
                return blocks
    return []


def _hidden_warning(numbers: list[int]) -> str:
    which = ", ".join(str(n) for n in numbers[:20]) + (f" and {len(numbers) - 20} more" if len(numbers) > 20 else "")
    return (f"{len(numbers)} hidden slide{'s were' if len(numbers) > 1 else ' was'} not indexed (slide "
            f"{which}); to index {'them' if len(numbers) > 1 else 'it'}, unhide in PowerPoint (Slide Show > Hide "
            "Slide) and save")


def load_pptx(path: Path, *, source: str, tenant: str,
              options: LoadOptions) -> tuple[list[Document], list[str]]:
    with open_package(path, options, "ppt/presentation.xml") as zf:
        pres = read_xml(zf, "ppt/presentation.xml", KIND)
        targets = rels(zf, "ppt/presentation.xml", KIND)
        ids = [s.get(R_ID) for s in pres.iter() if local(s.tag) == "sldId"] if pres is not None else []
        slide_parts = [targets[i][1] for i in ids if i in targets and targets[i][0] == "slide"]
        slides = []
        hidden: list[int] = []
        for number, part in enumerate(slide_parts, start=1):
            root = read_xml(zf, part, KIND)
            if root is not None and attr(root, "show") in ("0", "false"):
                hidden.append(number)  # numbered as PowerPoint numbers it, so the others keep their numbers
                continue
            tree = next((el for el in root.iter() if local(el.tag) == "spTree"), None) if root is not None else None
            if tree is None:
                continue
            title, blocks = shapes(tree)
            notes = _notes(zf, part)
            if notes:
                blocks.append("Speaker notes: " + "\n\n".join(notes))
            slides.append((number, title, blocks))
        deck_title = core_title(zf, KIND)
    warnings = [_hidden_warning(hidden)] if hidden else []
    if not slides:
        raise Skip(f"PowerPoint deck with only hidden slides ({len(hidden)}; Slide Show > Hide Slide): unhide the "
                   "ones to index and save" if hidden else "PowerPoint deck without slides")
    deck_title = deck_title or next((t for _, t, _ in slides if t), None) or path.stem
    docs = []
    for number, title, blocks in slides:
        kept, dropped = strip_boilerplate("\n\n".join(blocks))
        text = kept.strip() or (title or "")  # a title-only slide (a section divider) is still findable
        if not text:
            continue
        docs.append(make_document(text, source=source, tenant=tenant, title=deck_title,
                                  location=f"slide {number}: {title}" if title else f"slide {number}",
                                  options=options, slide=number, heading=title))
        record(docs[-1].metadata, dropped)
    if not docs:
        raise Skip("PowerPoint deck without text (pictures only)")
    return docs, warnings

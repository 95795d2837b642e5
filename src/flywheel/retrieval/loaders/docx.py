"""Word (.docx, standard library only): split into heading sections like Markdown. A paragraph is a heading
when its style is a heading style (by style name, so `heading 1` whose id is `1` in a Chinese Word counts, or by
outline level, inherited through `basedOn`); tables are rows (tables.py); list items keep a `- `; deleted
tracked changes and field codes are left out; footnotes come last under "Footnotes"."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from flywheel.retrieval.loaders.base import LoadOptions, Skip
from flywheel.retrieval.loaders.markdown import markdown_documents
from flywheel.retrieval.loaders.ooxml import (
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

KIND = "Word document"
_HEADING_NAME = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)
_SKIP = {"delText", "instrText", "del", "moveFrom", "Fallback", "pPr", "rPr", "commentReference"}
_TOC_NAME = re.compile(r"^toc\s*\d$", re.IGNORECASE)
_WRAPPERS = {"sdt", "sdtContent", "customXml", "ins", "moveTo", "smartTag"}


def paragraph_styles(styles: ET.Element | None) -> tuple[dict[str, int], set[str], set[str]]:
    """({paragraph style id: heading level 1–9}, ids of list styles such as `List Bullet`, ids of table-of-contents
    styles `toc 1`…); `Title` is level 1. Levels and lists are inherited through `basedOn`."""
    names: dict[str, str] = {}
    based: dict[str, str] = {}
    outline: dict[str, int] = {}
    numbered: set[str] = set()
    for s in styles if styles is not None else ():
        if local(s.tag) != "style" or attr(s, "type") not in (None, "paragraph"):
            continue
        sid = attr(s, "styleId") or ""
        names[sid] = (attr(child(s, "name"), "val") or "").strip()
        base = attr(child(s, "basedOn"), "val")
        if base:
            based[sid] = base
        ppr = child(s, "pPr")
        lvl = attr(child(ppr, "outlineLvl"), "val")
        if lvl is not None and lvl.isdigit() and int(lvl) < 9:
            outline[sid] = int(lvl) + 1
        if child(ppr, "numPr") is not None:
            numbered.add(sid)
    levels: dict[str, int] = {}
    lists: set[str] = set()
    toc = {sid for sid, name in names.items() if _TOC_NAME.match(name)}
    for sid in names:
        cur: str | None = sid
        for _ in range(10):  # basedOn chains are short; a cycle must not loop
            if cur is None:
                break
            m = _HEADING_NAME.match(names.get(cur, ""))
            if m or names.get(cur, "").lower() == "title" or cur in outline:
                levels[sid] = int(m.group(1)) if m else outline.get(cur, 1)
                break
            if cur in numbered:
                lists.add(sid)
                break
            cur = based.get(cur)
    return levels, lists, toc


def _is_toc(el: ET.Element) -> bool:
    """A content control holding Word's generated table of contents."""
    if local(el.tag) != "sdt":
        return False
    gallery = next((g for g in el.iter() if local(g.tag) == "docPartGallery"), None)
    return "contents" in (attr(gallery, "val") or "").lower()


class _Doc:
    def __init__(self, levels: dict[str, int], lists: set[str], toc: set[str]):
        self.levels, self.lists, self.toc = levels, lists, toc

    def text(self, el: ET.Element, out: list[str]) -> None:
        for c in el:
            tag = local(c.tag)
            if tag in _SKIP:
                continue
            if tag == "t":
                out.append(c.text or "")
            elif tag == "tab":
                out.append(" ")
            elif tag in ("br", "cr"):
                out.append("\n")
            elif tag == "noBreakHyphen":
                out.append("-")
            elif tag in ("footnoteReference", "endnoteReference"):
                out.append(f"[{attr(c, 'id')}]")
            else:
                self.text(c, out)

    def paragraph(self, p: ET.Element) -> tuple[int | None, str]:
        """(heading level or None, text)."""
        parts: list[str] = []
        self.text(p, parts)
        text = "\n".join(" ".join(line.split()) for line in "".join(parts).split("\n")).strip()
        ppr = child(p, "pPr")
        lvl = attr(child(ppr, "outlineLvl"), "val")
        style = attr(child(ppr, "pStyle"), "val") or ""
        if style in self.toc:  # a table-of-contents line repeats a heading (and a page number): not content
            return None, ""
        level = int(lvl) + 1 if lvl is not None and lvl.isdigit() and int(lvl) < 9 else self.levels.get(style)
        if level is None:
            m = re.match(r"^(?:Heading|标题)\s*(\d)$", style)  # no styles.xml: the built-in style ids
            level = int(m.group(1)) if m else (1 if style == "Title" else None)
        if level is None and (child(ppr, "numPr") is not None or style in self.lists) and text:
            text = "- " + text
        return level, text

    def table(self, tbl: ET.Element) -> str:
        rows: list[list[str]] = []
        header = False
        for i, tr in enumerate(c for c in tbl if local(c.tag) == "tr"):
            if i == 0 and child(child(tr, "trPr"), "tblHeader") is not None:
                header = True
            cells: list[str] = []
            for tc in (c for c in tr if local(c.tag) in ("tc", "sdt")):
                for cell in ([tc] if local(tc.tag) == "tc" else list(tc.iter("{*}tc"))):
                    texts = [self.paragraph(p)[1] for p in cell.iter() if local(p.tag) == "p"]
                    cells.append(" ".join(t for t in texts if t))
                    span = attr(child(child(cell, "tcPr"), "gridSpan"), "val")
                    cells.extend([""] * (int(span) - 1 if span and span.isdigit() else 0))
            rows.append(cells)
        return table_text(rows, header=True if header else None)

    def blocks(self, body: ET.Element, out: list[str]) -> None:
        for el in body:
            tag = local(el.tag)
            if tag == "p":
                level, text = self.paragraph(el)
                if not text:
                    continue
                if level is not None:
                    out.append(f"{'#' * min(level, 6)} {' '.join(text.split())}")
                else:
                    out.append("\n".join(md_literal(line) for line in text.split("\n")))
            elif tag == "tbl":
                rendered = self.table(el)
                if rendered:
                    out.append(rendered)
            elif tag in _WRAPPERS and not _is_toc(el):
                self.blocks(el, out)


def _notes(doc: _Doc, root: ET.Element | None) -> list[str]:
    out = []
    for note in root if root is not None else ():
        if local(note.tag) not in ("footnote", "endnote") or attr(note, "type") in ("separator",
                                                                                   "continuationSeparator",
                                                                                   "continuationNotice"):
            continue
        texts = [doc.paragraph(p)[1] for p in note.iter() if local(p.tag) == "p"]
        body = " ".join(t for t in texts if t)
        if body:
            out.append(f"[{attr(note, 'id')}] {md_literal(body)}")
    return out


def load_docx(path: Path, *, source: str, tenant: str, options: LoadOptions) -> list[Document]:
    with open_package(path, options, "word/document.xml") as zf:
        parts = rels(zf, "word/document.xml", KIND)
        by_type = {t: name for t, name in parts.values()}
        styles = read_xml(zf, by_type.get("styles", "word/styles.xml"), KIND)
        doc = _Doc(*paragraph_styles(styles))
        root = read_xml(zf, "word/document.xml", KIND)
        body = child(root, "body")
        if body is None:
            raise Skip(f"corrupt {KIND}: word/document.xml has no body")
        out: list[str] = []
        doc.blocks(body, out)
        notes = [n for t in ("footnotes", "endnotes") if t in by_type
                 for n in _notes(doc, read_xml(zf, by_type[t], KIND))]
        if notes:
            out.append("# Footnotes")
            out.extend(notes)
        title = core_title(zf, KIND)
    text = "\n\n".join(out)
    if not text.strip():
        raise Skip("Word document without text (scanned pages need OCR first)")
    docs = markdown_documents(text, source=source, tenant=tenant, options=options, default_title=path.stem)
    for d in docs:
        d.title = title or d.title
    return docs

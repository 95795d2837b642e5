"""HTML: the main text (no navigation, header, footer, scripts), split into heading sections like Markdown."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flywheel.retrieval.loaders.base import LoadOptions, Skip, decode, read_bytes
from flywheel.retrieval.loaders.encoding import declared
from flywheel.retrieval.loaders.markdown import markdown_documents
from flywheel.retrieval.loaders.tables import table_text
from flywheel.types import Document

_DROP = ["script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "svg", "iframe",
         "button", "select"]
_BLOCKS = ["p", "div", "section", "article", "main", "li", "ul", "ol", "table", "tr", "pre", "blockquote",
           "dd", "dt", "dl", "figure", "figcaption", "details", "summary", "hr", "body"]
_NOISE_ROLES = re.compile(r"navigation|banner|contentinfo|search|menu", re.IGNORECASE)


def html_to_markdown(html: str) -> tuple[str, str | None]:
    """(text with '#' heading lines and blank-line paragraphs, <title>)."""
    try:
        from bs4 import BeautifulSoup
    except ImportError:
        raise Skip("HTML support needs beautifulsoup4: pip install beautifulsoup4 lxml") from None
    try:
        soup = BeautifulSoup(html, "lxml")
    except Exception:  # noqa: BLE001 - fall back to the pure-Python parser
        soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    for tag in soup.find_all(_DROP):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": _NOISE_ROLES}):  # type: ignore[call-overload]
        tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    for table in root.find_all("table"):
        if table.find_parent("table") is None:  # a nested table is text inside its outer table's cell
            table.replace_with(f"\n\n{_table(table)}\n\n")
    for level in range(1, 7):
        for h in root.find_all(f"h{level}"):
            h.replace_with(f"\n\n{'#' * level} {h.get_text(' ', strip=True)}\n\n")
    for br in root.find_all("br"):
        br.replace_with("\n")
    for tag in root.find_all(_BLOCKS):
        tag.insert_before("\n\n")
        tag.insert_after("\n\n")
    raw = root.get_text()
    paragraphs = []
    for block in re.split(r"\n\s*\n", raw):
        lines = [re.sub(r"[ \t\r\f\v\xa0]+", " ", ln).strip() for ln in block.split("\n")]
        lines = [ln for ln in lines if ln]
        if not lines:
            continue
        if lines[0].startswith("#"):
            paragraphs.append(lines[0])
            lines = lines[1:]
        if lines:
            paragraphs.append(" ".join(lines) if not any(ln.startswith("#") for ln in lines) else "\n".join(lines))
    return "\n\n".join(paragraphs), title


def _table(table: Any) -> str:
    """A <table> as rows (tables.py); a first row of <th> cells names the columns."""
    rows: list[list[str]] = []
    header = False
    for i, tr in enumerate(tr for tr in table.find_all("tr") if tr.find_parent("table") is table):
        cells = tr.find_all(["td", "th"], recursive=False)
        header = header or (i == 0 and bool(cells) and all(c.name == "th" for c in cells))
        row: list[str] = []
        for c in cells:
            row.append(c.get_text(" ", strip=True))
            span = str(c.get("colspan") or "1")
            row.extend([""] * (min(int(span), 100) - 1 if span.isdigit() else 0))
        rows.append(row)
    return table_text(rows, header=True if header else None)


def load_html(path: Path, *, source: str, tenant: str, options: LoadOptions) -> list[Document]:
    data = read_bytes(path, options)
    text, title = html_to_markdown(decode(data, declared(data)))  # <meta charset="gbk"> is read as GBK
    if not text.strip():
        raise Skip("HTML page without main text")
    docs = markdown_documents(text, source=source, tenant=tenant, options=options, default_title=path.stem)
    if title:
        for d in docs:
            d.title = title
    return docs

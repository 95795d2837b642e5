"""Spreadsheets: Excel (.xlsx, standard library only, streamed with iterparse so a big sheet never sits in memory as
XML) and CSV/TSV. Rows become text the same way tables do everywhere (tables.py): with a header row, each cell
carries its column name. A sheet becomes Documents of up to ROWS_PER_DOC rows, located by sheet name (and
`rows a–b`, the spreadsheet's own row numbers, when the sheet is longer); at most `LoadOptions.max_rows` rows
of a file are indexed (reading stops there) and the rest reported as a warning. Dates are written as dates (cell style), not serials.
A formula cell is indexed as the value the file stored for it; one without a stored value (a file written by a
library, never opened in a spreadsheet app) is empty, and a warning counts them."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from flywheel.retrieval.loaders.base import LoadOptions, Skip, decode, make_document, read_bytes
from flywheel.retrieval.loaders.ooxml import (
    MAX_STREAMED,
    R_ID,
    attr,
    core_title,
    local,
    open_package,
    open_part,
    read_xml,
    rels,
)
from flywheel.retrieval.loaders.tables import looks_like_header, row_text
from flywheel.types import Document

KIND = "Excel workbook"
ROWS_PER_DOC = 50
_COLUMN = re.compile(r"^([A-Z]+)")
_DATE_IDS = {*range(14, 23), 45, 46, 47}  # built-in number formats that are dates or times
_DATE_CODE = re.compile(r"[dmyhs]", re.IGNORECASE)
_EPOCH = datetime(1899, 12, 30)  # Excel's day 0 (1900 date system, with its leap-year bug folded in)


@dataclass
class _Uncalculated:
    """Formula cells of a sheet without a stored value: how many, and the first few references (a sheet of a
    million of them must not hold a million references)."""

    count: int = 0
    refs: list[str] = field(default_factory=list)

    def add(self, ref: str) -> None:
        self.count += 1
        if len(self.refs) < 5:
            self.refs.append(ref)

    def warning(self, sheet: str) -> str:
        which = ", ".join(self.refs) + (", …" if self.count > len(self.refs) else "")
        many = self.count > 1
        return (f"sheet '{sheet}': {self.count} formula cell{'s' if many else ''} had no calculated value ({which}) "
                f"and {'were' if many else 'was'} indexed as empty; open and save the file in Excel or LibreOffice to "
                "store the values")


class _Rows:
    """Rows → Documents of one file, counting against its row cap."""

    def __init__(self, source: str, tenant: str, options: LoadOptions, title: str):
        self.source, self.tenant, self.options, self.title = source, tenant, options, title
        self.docs: list[Document] = []
        self.warnings: list[str] = []
        self.kept = 0

    def add(self, sheet: str | None, rows: Iterable[tuple[int, list[str]]]) -> None:
        header: list[str] | None = None
        blocks: list[list] = []  # [first row, last row, lines]
        total = 0
        capped = False
        for number, cells in rows:
            if not any(c.strip() for c in cells):
                continue
            total += 1
            if total == 1 and looks_like_header(cells):
                header = cells
                continue
            if self.kept >= self.options.max_rows:
                capped = True  # the rest is not even read: a million-row sheet costs what its first rows cost
                break
            line = row_text(cells, header)
            if not blocks or len(blocks[-1][2]) >= ROWS_PER_DOC:
                blocks.append([number, number, []])
            blocks[-1][1] = number
            blocks[-1][2].append(line)
            self.kept += 1
        where = f"sheet '{sheet}'" if sheet else "the file"
        if capped:
            self.warnings.append(f"{where}: rows from {number} on were not indexed (limit: {self.options.max_rows} "
                                 f"rows a file); split the file to index them")
        if header and not blocks and total == 1:  # a header alone is still text
            blocks.append([0, 0, [row_text(header)]])
        for first, last, lines in blocks:
            label = sheet or ""
            if len(blocks) > 1:
                label = f"{label}, rows {first}–{last}" if label else f"rows {first}–{last}"
            self.docs.append(make_document("\n\n".join(lines), source=self.source, tenant=self.tenant,
                                           title=self.title, location=label or None, options=self.options,
                                           sheet=sheet, rows=[first, last] if len(blocks) > 1 else None))


def column_index(ref: str | None, default: int) -> int:
    m = _COLUMN.match(ref or "")
    if not m:
        return default
    n = 0
    for ch in m.group(1):
        n = n * 26 + ord(ch) - 64
    return n - 1


def number_text(value: str, is_date: bool) -> str:
    try:
        x = float(value)
    except ValueError:
        return value
    if is_date and 0 < x < 2958466:
        when = _EPOCH + timedelta(seconds=round(x * 86400))  # 14:30 is stored as 0.6041666…
        return when.strftime("%Y-%m-%d") if x == int(x) else when.strftime("%Y-%m-%d %H:%M")
    return str(int(x)) if x == int(x) and abs(x) < 1e15 else format(x, ".15g")


def _shared_strings(zf: zipfile.ZipFile, part: str | None) -> list[str]:
    if part is None or part not in zf.NameToInfo:
        return []
    out: list[str] = []
    with open_part(zf, part) as f:
        root: ET.Element | None = None
        for event, el in ET.iterparse(f, events=("start", "end")):
            if root is None:
                root = el
            if event == "end" and local(el.tag) == "si":
                out.append(_inline(el))
                root.clear()
    return out


def _inline(el: ET.Element) -> str:
    """The text of a rich string, without its phonetic guide (<rPh>, Japanese furigana)."""
    parts: list[str] = []

    def walk(e: ET.Element) -> None:
        for c in e:
            name = local(c.tag)
            if name == "t":
                parts.append(c.text or "")
            elif name != "rPh":
                walk(c)

    walk(el)
    return "".join(parts)


def _date_styles(zf: zipfile.ZipFile, part: str | None) -> set[int]:
    """Indexes of the cell formats (`s` on a cell) that show a date."""
    root = read_xml(zf, part, KIND) if part else None
    if root is None:
        return set()
    custom = {attr(f, "numFmtId"): attr(f, "formatCode") or "" for f in root.iter() if local(f.tag) == "numFmt"}
    xfs = next((el for el in root if local(el.tag) == "cellXfs"), None)
    out = set()
    for i, xf in enumerate(xfs if xfs is not None else ()):
        fmt = attr(xf, "numFmtId") or "0"
        code = re.sub(r'"[^"]*"|\[[^]]*]|\\.', "", custom.get(fmt, ""))  # quoted text, colours, escapes
        if (fmt.isdigit() and int(fmt) in _DATE_IDS) or (fmt in custom and _DATE_CODE.search(code)):
            out.add(i)
    return out


def _sheet_rows(zf: zipfile.ZipFile, part: str, shared: list[str], dates: set[int],
                uncalculated: _Uncalculated) -> Iterator[tuple[int, list[str]]]:
    """Rows of a worksheet as (row number, cells); formula cells without a stored value are counted in
    `uncalculated`."""
    with open_part(zf, part, MAX_STREAMED) as f:
        sheet_data: ET.Element | None = None
        number = 0
        for event, el in ET.iterparse(f, events=("start", "end")):
            name = local(el.tag)
            if event == "start":
                if name == "sheetData":
                    sheet_data = el
                continue
            if name != "row":
                continue
            r = attr(el, "r")
            number = int(r) if r and r.isdigit() else number + 1
            cells: list[str] = []
            for c in el:
                if local(c.tag) != "c":
                    continue
                col = column_index(attr(c, "r"), len(cells))
                if col >= 16384:  # past Excel's last column: a damaged reference
                    continue
                cells.extend([""] * (col + 1 - len(cells)))
                cells[col] = _cell(c, shared, dates)
                if not cells[col] and _uncalculated(c):
                    uncalculated.add(attr(c, "r") or f"row {number}")
            yield number, cells
            if sheet_data is not None:
                sheet_data.clear()  # rows already read are dropped: memory stays flat however long the sheet


def _uncalculated(c: ET.Element) -> bool:
    """A formula (<f>, or a shared formula's reference to one) with no value (<v>) stored by the app that last
    calculated it."""
    children = {local(e.tag) for e in c}
    return "f" in children and "v" not in children


def _cell(c: ET.Element, shared: list[str], dates: set[int]) -> str:
    kind = attr(c, "t") or "n"
    if kind == "inlineStr":
        return _inline(c)
    v = next((e.text or "" for e in c if local(e.tag) == "v"), "")
    if kind == "s":
        return shared[int(v)] if v.isdigit() and int(v) < len(shared) else ""
    if kind == "b":
        return "TRUE" if v == "1" else "FALSE"
    if kind in ("str", "e"):
        return v
    style = attr(c, "s")
    return number_text(v, style is not None and style.isdigit() and int(style) in dates) if v else ""


def load_xlsx(path: Path, *, source: str, tenant: str, options: LoadOptions) -> tuple[list[Document], list[str]]:
    with open_package(path, options, "xl/workbook.xml") as zf:
        book = read_xml(zf, "xl/workbook.xml", KIND)
        parts = rels(zf, "xl/workbook.xml", KIND)
        by_type = {t: name for t, name in parts.values()}
        shared = _shared_strings(zf, by_type.get("sharedStrings"))
        dates = _date_styles(zf, by_type.get("styles"))
        out = _Rows(source, tenant, options, core_title(zf, KIND) or path.stem)
        blank_formulas = 0
        for sheet in (s for s in book.iter() if local(s.tag) == "sheet") if book is not None else ():
            target = parts.get(sheet.get(R_ID) or "")
            if target is None or target[0] != "worksheet" or target[1] not in zf.NameToInfo:
                continue  # a chart sheet, or a sheet the package does not have
            name = attr(sheet, "name") or target[1]
            uncalculated = _Uncalculated()
            out.add(name, _sheet_rows(zf, target[1], shared, dates, uncalculated))
            if uncalculated.count:
                out.warnings.append(uncalculated.warning(name))
                blank_formulas += uncalculated.count
    if not out.docs and blank_formulas:
        raise Skip(f"Excel workbook whose only cells are {blank_formulas} formulas without a calculated value: open "
                   "and save it in Excel or LibreOffice to store the values")
    if not out.docs:
        raise Skip("Excel workbook without cell text")
    return out.docs, out.warnings


def load_csv(path: Path, *, source: str, tenant: str, options: LoadOptions) -> tuple[list[Document], list[str]]:
    text = decode(read_bytes(path, options))
    if path.suffix.lower() == ".tsv":
        dialect: type[csv.Dialect] | csv.Dialect = csv.excel_tab
    else:
        try:
            dialect = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|")
        except csv.Error:
            dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    out = _Rows(source, tenant, options, path.stem)

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for cells in reader:
                yield reader.line_num, cells
        except csv.Error as exc:
            raise Skip(f"malformed CSV at line {reader.line_num}: {exc}") from None

    out.add(None, rows())
    if not out.docs:
        raise Skip("CSV without cell text")
    return out.docs, out.warnings

"""Word, PowerPoint, Excel, CSV/TSV and EPUB loaders (standard library only). Every file here is built in the test
with zipfile from minimal valid parts; python-docx / openpyxl, when importable, read the same files as a
cross-check. The last tests ingest a folder of one of each through the CLI and ask in English and Chinese."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.retrieval.loaders import LoadOptions, Skip, load_file
from flywheel.retrieval.loaders.html import html_to_markdown

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
A = "http://schemas.openxmlformats.org/drawingml/2006/main"
P = "http://schemas.openxmlformats.org/presentationml/2006/main"
S = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
CT = "http://schemas.openxmlformats.org/package/2006/content-types"
XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def _zip(path: Path, parts: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in parts.items():
            zf.writestr(name, text if name == "mimetype" else XML + text)
    return path


def _rels(*items: tuple[str, str, str]) -> str:
    body = "".join(f'<Relationship Id="{i}" Type="{R}/{t}" Target="{target}"/>' for i, t, target in items)
    return f'<Relationships xmlns="{PKG}">{body}</Relationships>'


def _types(*overrides: tuple[str, str]) -> str:
    body = "".join(f'<Override PartName="{p}" ContentType="{c}"/>' for p, c in overrides)
    return (f'<Types xmlns="{CT}"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            f'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>{body}</Types>')


def _core(title: str) -> str:
    return ('<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
            f'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{title}</dc:title></cp:coreProperties>')


# ---------------------------------------------------------------- Word

def para(text: str, style: str | None = None, *, numbered: bool = False, extra: str = "") -> str:
    ppr = (f'<w:pStyle w:val="{style}"/>' if style else "") + ('<w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/>'
                                                             '</w:numPr>' if numbered else "")
    return f'<w:p>{f"<w:pPr>{ppr}</w:pPr>" if ppr else ""}<w:r><w:t xml:space="preserve">{text}</w:t></w:r>{extra}</w:p>'


def table(rows: list[list[str]], *, header: bool = False) -> str:
    out = []
    for i, row in enumerate(rows):
        trpr = "<w:trPr><w:tblHeader/></w:trPr>" if header and i == 0 else ""
        out.append(f"<w:tr>{trpr}" + "".join(f"<w:tc>{para(c)}</w:tc>" for c in row) + "</w:tr>")
    return "<w:tbl>" + "".join(out) + "</w:tbl>"


STYLES = (f'<w:styles xmlns:w="{W}">'
          '<w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/></w:style>'
          '<w:style w:type="paragraph" w:styleId="Heading2"><w:name w:val="heading 2"/></w:style>'
          '<w:style w:type="paragraph" w:styleId="TOC1"><w:name w:val="toc 1"/></w:style>'
          # Chinese Word: the style ids are numbers, the names are the built-in English ones
          '<w:style w:type="paragraph" w:styleId="1"><w:name w:val="heading 1"/></w:style>'
          '<w:style w:type="paragraph" w:styleId="2"><w:name w:val="heading 2"/><w:basedOn w:val="1"/></w:style>'
          # a custom style with an outline level is a heading too
          '<w:style w:type="paragraph" w:styleId="Chapter"><w:name w:val="Chapter"/>'
          '<w:pPr><w:outlineLvl w:val="0"/></w:pPr></w:style>'
          '</w:styles>')


def make_docx(path: Path, body: str, *, title: str | None = None, footnotes: str | None = None) -> Path:
    rels = [("rId1", "styles", "styles.xml")]
    parts = {"[Content_Types].xml": _types(
        ("/word/document.xml", "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"),
        ("/word/styles.xml", "application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml")),
        "_rels/.rels": _rels(("rId1", "officeDocument", "word/document.xml")),
        "word/document.xml": f'<w:document xmlns:w="{W}" xmlns:r="{R}"><w:body>{body}</w:body></w:document>',
        "word/styles.xml": STYLES}
    if footnotes:
        rels.append(("rId2", "footnotes", "footnotes.xml"))
        parts["word/footnotes.xml"] = f'<w:footnotes xmlns:w="{W}">{footnotes}</w:footnotes>'
    parts["word/_rels/document.xml.rels"] = _rels(*rels)
    if title:
        parts["docProps/core.xml"] = _core(title)
    return _zip(path, parts)


TOC = ('<w:sdt><w:sdtPr><w:docPartObj><w:docPartGallery w:val="Table of Contents"/></w:docPartObj></w:sdtPr>'
       f'<w:sdtContent>{para("Contents")}{para("Refund policy 1", "TOC1")}</w:sdtContent></w:sdt>'
       + para("Shipping fees 2", "TOC1"))
ENGLISH_DOCX = (TOC + para("Refund policy", "Heading1")
                + para("Refunds are issued within 14 days of a return.")
                + para("Exceptions", "Heading2")
                + para("Gift cards cannot be refunded", numbered=True)
                + para("Custom orders cannot be refunded", numbered=True)
                + para("Shipping fees", "Heading1")
                + '<w:p><w:r><w:t>Standard shipping costs 5 dollars</w:t></w:r>'
                  '<w:r><w:footnoteReference w:id="1"/></w:r>'
                  '<w:del><w:r><w:delText>and express is free</w:delText></w:r></w:del><w:r><w:t>.</w:t></w:r></w:p>'
                + table([["Region", "Carrier", "Days"], ["Europe", "DHL", "3"], ["Asia", "SF Express", "5"]],
                        header=True)
                + "<w:sectPr/>")
FOOTNOTES = ('<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote>'
             '<w:footnote w:id="1"><w:p><w:r><w:t>Prices as of March.</w:t></w:r></w:p></w:footnote>')
CHINESE_DOCX = (para("退款政策", "1")
                + para("退货后十四天内退款到原支付账户。")
                + para("发票", "2")
                + para("电子发票在订单完成后由财务部门开具，可在个人中心下载。")
                + table([["项目", "负责人", "期限"], ["开票", "财务部", "三个工作日"]]))


def _load(path: Path, **options) -> list:
    return load_file(path, source=path.name, options=LoadOptions(**options)).docs


def test_docx_heading_sections_lists_tables_footnotes(tmp_path):
    docs = _load(make_docx(tmp_path / "policy.docx", ENGLISH_DOCX, title="Store policy", footnotes=FOOTNOTES))
    by_location = {d.metadata.get("location"): d.text for d in docs}
    assert None not in by_location  # the table of contents is not content
    assert by_location["Refund policy"] == "Refunds are issued within 14 days of a return."
    assert by_location["Refund policy > Exceptions"] == ("- Gift cards cannot be refunded\n\n"
                                                        "- Custom orders cannot be refunded")
    shipping = by_location["Shipping fees"]
    assert shipping.startswith("Standard shipping costs 5 dollars[1].")
    assert "express is free" not in shipping  # a deleted tracked change is not text
    assert "| Region: Europe | Carrier: DHL | Days: 3 |" in shipping
    assert "| Region: Asia | Carrier: SF Express | Days: 5 |" in shipping
    assert by_location["Footnotes"] == "[1] Prices as of March."
    assert {d.title for d in docs} == {"Store policy"}


def test_docx_chinese_heading_styles_and_cells_come_through(tmp_path):
    docs = _load(make_docx(tmp_path / "中文.docx", CHINESE_DOCX + para("第三章", "Chapter") + para("内容")))
    by_location = {d.metadata["location"]: d.text for d in docs}
    assert by_location["退款政策"] == "退货后十四天内退款到原支付账户。"
    # a three-column table with a text header row: each cell carries its column name
    assert by_location["退款政策 > 发票"].endswith("| 项目: 开票 | 负责人: 财务部 | 期限: 三个工作日 |")
    assert by_location["第三章"] == "内容"
    assert docs[0].title == "退款政策"  # no core title: the first heading


def test_docx_body_text_that_looks_like_markdown_is_not_a_heading(tmp_path):
    docs = _load(make_docx(tmp_path / "hash.docx", para("Intro", "Heading1") + para("# of seats: 12")
                           + table([["Name", "Alice"], ["Age", "30"]])))
    assert [d.metadata["location"] for d in docs] == ["Intro"]
    assert "\\# of seats: 12" in docs[0].text
    assert "| Name | Alice |\n\n| Age | 30 |" in docs[0].text  # two columns: key/value rows, not a header


# ---------------------------------------------------------------- PowerPoint

def shape(text_paras: list[str], ph: str | None = None) -> str:
    nv = f'<p:nvPr><p:ph type="{ph}"/></p:nvPr>' if ph else "<p:nvPr/>"
    paras = "".join(f"<a:p><a:r><a:t>{t}</a:t></a:r></a:p>" for t in text_paras)
    return (f'<p:sp><p:nvSpPr><p:cNvPr id="2" name="s"/><p:cNvSpPr/>{nv}</p:nvSpPr><p:spPr/>'
            f"<p:txBody><a:bodyPr/>{paras}</p:txBody></p:sp>")


def slide_xml(inner: str, root: str = "p:sld") -> str:
    return (f'<{root} xmlns:a="{A}" xmlns:p="{P}" xmlns:r="{R}"><p:cSld><p:spTree><p:nvGrpSpPr><p:cNvPr id="1" '
            f'name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr><p:grpSpPr/>{inner}</p:spTree></p:cSld></{root}>')


def ptable(rows: list[list[str]]) -> str:
    trs = "".join("<a:tr>" + "".join(f"<a:tc><a:txBody><a:bodyPr/><a:p><a:r><a:t>{c}</a:t></a:r></a:p></a:txBody>"
                                     "</a:tc>" for c in r) + "</a:tr>" for r in rows)
    return (f'<p:graphicFrame><a:graphic><a:graphicData><a:tbl><a:tblPr firstRow="1"/>{trs}</a:tbl></a:graphicData>'
            "</a:graphic></p:graphicFrame>")


def make_pptx(path: Path, slides: list[tuple[str, str | None]], order: list[int] | None = None) -> Path:
    """slides: (shape tree XML, speaker notes or None); `order`: the presentation's slide order (indexes)."""
    parts = {"[Content_Types].xml": _types(("/ppt/presentation.xml", ("application/vnd.openxmlformats-officedocument."
                                                                     "presentationml.presentation.main+xml"))),
             "_rels/.rels": _rels(("rId1", "officeDocument", "ppt/presentation.xml"))}
    pres_rels = []
    for i, (inner, notes) in enumerate(slides, start=1):
        parts[f"ppt/slides/slide{i}.xml"] = slide_xml(inner)
        pres_rels.append((f"rId{i + 10}", "slide", f"slides/slide{i}.xml"))
        if notes:
            parts[f"ppt/notesSlides/notesSlide{i}.xml"] = slide_xml(shape(["1"], "sldNum") + shape([notes], "body"),
                                                                   "p:notes")
            parts[f"ppt/slides/_rels/slide{i}.xml.rels"] = _rels(("rId1", "notesSlide",
                                                                  f"../notesSlides/notesSlide{i}.xml"))
    ids = "".join(f'<p:sldId id="{256 + i}" r:id="rId{i + 11}"/>' for i in (order or range(len(slides))))
    parts["ppt/presentation.xml"] = f'<p:presentation xmlns:p="{P}" xmlns:r="{R}"><p:sldIdLst>{ids}</p:sldIdLst></p:presentation>'
    parts["ppt/_rels/presentation.xml.rels"] = _rels(*pres_rels)
    return _zip(path, parts)


def test_pptx_slides_in_presentation_order_with_titles_tables_and_notes(tmp_path):
    deck = make_pptx(tmp_path / "roadmap.pptx", [
        (shape(["Q3 roadmap"], "title") + shape(["Ship the gateway", "Launch evals"], "body"), "Mention the budget"),
        (shape(["Pricing"], "title") + ptable([["Plan", "Price"], ["Pro", "20 USD"]]) + shape(["2"], "sldNum"), None),
        (shape(["客户反馈"], "title") + shape(["用户希望支持中文搜索"]), "强调延迟指标"),
    ], order=[1, 0, 2])
    docs = _load(deck)
    assert [d.metadata["location"] for d in docs] == ["slide 1: Pricing", "slide 2: Q3 roadmap", "slide 3: 客户反馈"]
    assert docs[0].text == "| Plan: Pro | Price: 20 USD |"  # PowerPoint's header row style names the columns
    assert docs[1].text == "Ship the gateway\nLaunch evals\n\nSpeaker notes: Mention the budget"
    assert docs[2].text == "用户希望支持中文搜索\n\nSpeaker notes: 强调延迟指标"
    assert [d.metadata["slide"] for d in docs] == [1, 2, 3] and docs[0].title == "Pricing"


# ---------------------------------------------------------------- Excel, CSV

def cell(ref: str, value: str, kind: str = "s", style: int | None = None) -> str:
    s = f' s="{style}"' if style is not None else ""
    if kind == "inlineStr":
        return f'<c r="{ref}" t="inlineStr"{s}><is><t>{value}</t></is></c>'
    return f'<c r="{ref}"{f" t={chr(34)}{kind}{chr(34)}" if kind != "n" else ""}{s}><v>{value}</v></c>'


def make_xlsx(path: Path, sheets: dict[str, list[list[str]]], shared: list[str], title: str | None = None) -> Path:
    """sheets: name → rows of ready cell XML strings."""
    names = list(sheets)
    book = "".join(f'<sheet name="{n}" sheetId="{i + 1}" r:id="rId{i + 1}"/>' for i, n in enumerate(names))
    rels = [(f"rId{i + 1}", "worksheet", f"worksheets/sheet{i + 1}.xml") for i in range(len(names))]
    rels += [("rId90", "sharedStrings", "sharedStrings.xml"), ("rId91", "styles", "styles.xml")]
    sml = "application/vnd.openxmlformats-officedocument.spreadsheetml."
    parts = {"[Content_Types].xml": _types(("/xl/workbook.xml", sml + "sheet.main+xml"),
                                           ("/xl/sharedStrings.xml", sml + "sharedStrings+xml"),
                                           ("/xl/styles.xml", sml + "styles+xml"),
                                           *((f"/xl/worksheets/sheet{i + 1}.xml", sml + "worksheet+xml")
                                             for i in range(len(names)))),
             "_rels/.rels": _rels(("rId1", "officeDocument", "xl/workbook.xml")),
             "xl/workbook.xml": f'<workbook xmlns="{S}" xmlns:r="{R}"><sheets>{book}</sheets></workbook>',
             "xl/_rels/workbook.xml.rels": _rels(*rels),
             "xl/sharedStrings.xml": f'<sst xmlns="{S}">' + "".join(
                 f"<si><t>{s}</t></si>" if i % 2 else f"<si><r><t>{s[:1]}</t></r><r><t>{s[1:]}</t></r></si>"
                 for i, s in enumerate(shared)) + "</sst>",
             # style 1 is a built-in date format (14), style 2 a custom one
             "xl/styles.xml": (f'<styleSheet xmlns="{S}"><numFmts count="1"><numFmt numFmtId="164" '
                               'formatCode="yyyy\\-mm\\-dd"/></numFmts><cellXfs count="3"><xf numFmtId="0"/>'
                               '<xf numFmtId="14"/><xf numFmtId="164"/></cellXfs></styleSheet>')}
    for i, n in enumerate(names):
        rows = "".join(f'<row r="{r + 1}">{"".join(cells)}</row>' for r, cells in enumerate(sheets[n]))
        parts[f"xl/worksheets/sheet{i + 1}.xml"] = f'<worksheet xmlns="{S}"><sheetData>{rows}</sheetData></worksheet>'
    if title:
        parts["docProps/core.xml"] = _core(title)
    return _zip(path, parts)


SHARED = ["Product", "Stock", "Warehouse", "Widget", "Shanghai", "产品", "库存", "螺丝", "深圳仓"]


def orders_xlsx(path: Path) -> Path:
    return make_xlsx(path, {
        "Inventory": [[cell("A1", "0"), cell("B1", "1"), cell("C1", "2"), cell("D1", "Updated", "inlineStr")],
                      [cell("A2", "3"), cell("B2", "42", "n"), cell("C2", "4"), cell("D2", "45292", "n", 1)],
                      [cell("A3", "Gadget", "inlineStr"), cell("C3", "4"), cell("D3", "45293.5", "n", 2)]],
        "库存表": [[cell("A1", "5"), cell("B1", "6")], [cell("A2", "7"), cell("B2", "1500", "n")]],
    }, SHARED, title="Stock levels")


def test_xlsx_sheets_header_rows_shared_strings_and_dates(tmp_path):
    docs = _load(orders_xlsx(tmp_path / "stock.xlsx"))
    assert [(d.metadata["location"], d.metadata["sheet"]) for d in docs] == [("Inventory", "Inventory"),
                                                                            ("库存表", "库存表")]
    assert docs[0].text == ("| Product: Widget | Stock: 42 | Warehouse: Shanghai | Updated: 2024-01-01 |\n\n"
                            "| Product: Gadget | Warehouse: Shanghai | Updated: 2024-01-02 12:00 |")
    assert docs[1].text == "| 产品: 螺丝 | 库存: 1500 |"
    assert {d.title for d in docs} == {"Stock levels"}


def test_big_sheet_is_split_by_rows_and_capped_with_a_warning(tmp_path):
    rows = [[cell("A1", "Name", "inlineStr"), cell("B1", "Score", "inlineStr")]]
    rows += [[cell(f"A{r}", f"person {r}", "inlineStr"), cell(f"B{r}", str(r), "n")] for r in range(2, 202)]
    loaded = load_file(make_xlsx(tmp_path / "big.xlsx", {"Scores": rows}, []), source="big.xlsx",
                       options=LoadOptions(max_rows=120))
    assert [d.metadata["location"] for d in loaded.docs] == ["Scores, rows 2–51", "Scores, rows 52–101",
                                                             "Scores, rows 102–121"]
    assert loaded.docs[2].text.endswith("| Name: person 121 | Score: 121 |")
    assert loaded.warnings == [("sheet 'Scores': rows from 122 on were not indexed (limit: 120 rows a file); "
                               "split the file to index them")]


def test_csv_and_tsv_in_any_delimiter_and_chinese_encodings(tmp_path):
    (tmp_path / "prices.csv").write_bytes("城市;价格;备注\n北京;30;含税\n上海;35;\n".encode("gb18030"))
    (tmp_path / "plain.tsv").write_text("key\tvalue\nretries\t3\n", encoding="utf-8")
    assert [d.text for d in _load(tmp_path / "prices.csv")] == [("| 城市: 北京 | 价格: 30 | 备注: 含税 |\n\n"
                                                                "| 城市: 上海 | 价格: 35 |")]
    assert [d.text for d in _load(tmp_path / "plain.tsv")] == ["| key: retries | value: 3 |"]


# ---------------------------------------------------------------- EPUB

def make_epub(path: Path, chapters: list[tuple[str, str]], *, drm: bool = False) -> Path:
    items = "".join(f'<item id="c{i}" href="text/{name}" media-type="application/xhtml+xml"/>'
                    for i, (name, _) in enumerate(chapters))
    spine = "".join(f'<itemref idref="c{i}"/>' for i in reversed(range(len(chapters))))  # spine order ≠ file order
    parts = {"mimetype": "application/epub+zip",
             "META-INF/container.xml": ('<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:'
                                        'container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type='
                                        '"application/oebps-package+xml"/></rootfiles></container>'),
             "OEBPS/content.opf": ('<package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata '
                                   'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>运维手册 Ops Guide</dc:title>'
                                   f"</metadata><manifest>{items}</manifest><spine>{spine}</spine></package>")}
    for name, body in chapters:
        parts[f"OEBPS/text/{name}"] = (f'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>{name}</title>'
                                       f"</head><body>{body}</body></html>")
    if drm:
        parts["META-INF/encryption.xml"] = ('<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
                                            'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
                                            '<enc:CipherData><enc:CipherReference URI="OEBPS/text/b.xhtml"/>'
                                            "</enc:CipherData></enc:EncryptedData></encryption>")
    return _zip(path, parts)


BOOK = [("b.xhtml", "<h1>备份</h1><p>每天凌晨两点自动备份数据库。</p>"),
        ("a.xhtml", ("<p>Read this first.</p><h1>Restarts</h1><p>Restart the workers one at a time.</p>"
                    "<table><tr><th>Service</th><th>Port</th></tr><tr><td>api</td><td>8080</td></tr></table>"))]


def test_epub_chapters_in_spine_order_with_headings(tmp_path):
    docs = _load(make_epub(tmp_path / "ops.epub", BOOK))
    assert [(d.metadata["location"], d.text) for d in docs] == [
        ("a.xhtml", "Read this first."),
        ("Restarts", "Restart the workers one at a time.\n\n| Service: api | Port: 8080 |"),
        ("备份", "每天凌晨两点自动备份数据库。")]
    assert {d.title for d in docs} == {"运维手册 Ops Guide"}


def test_html_tables_are_rows_with_their_column_names():
    text, _ = html_to_markdown("<body><table><thead><tr><th>Name</th><th>Price</th></tr></thead>"
                               "<tr><td>Pro</td><td>20</td></tr></table></body>")
    assert text == "| Name: Pro | Price: 20 |"


# ---------------------------------------------------------------- bad input

def _cfb(extra: bytes) -> bytes:
    return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504 + extra


@pytest.mark.parametrize("name,content,reason", [
    ("locked.docx", _cfb("EncryptedPackage".encode("utf-16-le")), "password-protected Word document: remove the"),
    ("old.xlsx", _cfb(b"Workbook"), "old binary Office format saved as .xlsx: open it in Excel and save it again"),
    ("broken.pptx", b"PK\x03\x04 this is not really a zip", "corrupt PowerPoint deck (not a readable zip archive: damaged or cut short)"),
    ("notes.docx", None, "a zip archive that is not a Word document (no word/document.xml)"),
    ("bad.docx", "xml", "corrupt Word document: word/document.xml is not well-formed XML"),
    ("drm.epub", "drm", "DRM-protected EPUB"),
    ("truncated.xlsx", "truncated", "corrupt Excel workbook (not a readable zip archive: damaged or cut short)"),
    ("damaged.docx", "damaged", "corrupt Word document (damaged: Error -3 while decompressing"),
])
def test_unusable_office_files_are_skipped_with_what_to_do(tmp_path, name, content, reason):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is None:
        _zip(path, {"readme.txt": "hello"})
    elif content == "xml":
        _zip(path, {"word/document.xml": "<w:document><w:body>"})
    elif content == "drm":
        make_epub(path, BOOK, drm=True)
    elif content == "damaged":  # the central directory is intact, one entry's compressed bytes are not
        data = bytearray(make_docx(tmp_path / "whole.docx", ENGLISH_DOCX * 20).read_bytes())
        entry = zipfile.ZipFile(tmp_path / "whole.docx").getinfo("word/document.xml")
        start = entry.header_offset + 30 + len(entry.filename) + 50
        data[start:start + 20] = bytes(20)
        path.write_bytes(bytes(data))
    else:
        data = orders_xlsx(tmp_path / "whole.xlsx").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(Skip) as err:
        load_file(path, source=name)
    assert reason in str(err.value)


# ---------------------------------------------------------------- the real libraries agree

def test_python_docx_reads_the_same_text(tmp_path):
    docx = pytest.importorskip("docx")
    path = make_docx(tmp_path / "policy.docx", ENGLISH_DOCX)
    theirs = [p.text for p in docx.Document(str(path)).paragraphs
              if p.text.strip() and not (p.style.name if p.style else "").lower().startswith("toc")]
    ours = "\n\n".join(d.text for d in _load(path)).replace("[1]", "")  # theirs has no footnote marks
    for text in theirs:
        if text not in ("Refund policy", "Exceptions", "Shipping fees"):  # headings are locations
            assert text in ours


def test_openpyxl_reads_the_same_cells(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    path = orders_xlsx(tmp_path / "stock.xlsx")
    sheet = openpyxl.load_workbook(path, read_only=True)["库存表"]
    assert [[c.value for c in row] for row in sheet.iter_rows()] == [["产品", "库存"], ["螺丝", 1500]]


def test_files_written_by_python_docx_openpyxl_and_python_pptx_load(tmp_path):
    docx = pytest.importorskip("docx")
    openpyxl = pytest.importorskip("openpyxl")
    pptx = pytest.importorskip("pptx")
    import datetime

    d = docx.Document()
    d.add_heading("Vacation 休假", 1)
    d.add_paragraph("Up to 5 days carry over.", style="List Bullet")  # a list by its style, not its own numPr
    d.save(tmp_path / "real.docx")
    wb = openpyxl.Workbook()
    wb.active.title = "Orders"
    wb.active.append(["Order", "Customer", "Date"])
    wb.active.append(["A-2", "北京公司", datetime.datetime(2024, 3, 6, 14, 30)])
    wb.create_sheet("汇总")["A1"] = "总计"
    wb["汇总"]["B1"] = "=SUM(1, 2)"  # a formula never calculated has no value: nothing to write
    wb.save(tmp_path / "real.xlsx")
    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Launch plan"
    slide.placeholders[1].text = "Beta in May"
    slide.notes_slide.notes_text_frame.text = "Remind legal"
    deck.save(tmp_path / "real.pptx")
    assert [(x.metadata["location"], x.text) for x in _load(tmp_path / "real.docx")] == [
        ("Vacation 休假", "- Up to 5 days carry over.")]
    assert [(x.metadata["location"], x.text) for x in _load(tmp_path / "real.xlsx")] == [
        ("Orders", "| Order: A-2 | Customer: 北京公司 | Date: 2024-03-06 14:30 |"), ("汇总", "| 总计 |")]
    assert [(x.metadata["location"], x.text) for x in _load(tmp_path / "real.pptx")] == [
        ("slide 1: Launch plan", "Beta in May\n\nSpeaker notes: Remind legal")]


# ---------------------------------------------------------------- through the CLI

def _cli(tmp_path: Path, *args: str):
    return CliRunner().invoke(main, ["--project", str(tmp_path), *args], catch_exceptions=False)


def test_ingest_a_folder_of_office_files_and_find_the_right_chunk(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    make_docx(docs / "policy.docx", ENGLISH_DOCX, title="Store policy", footnotes=FOOTNOTES)
    make_docx(docs / "发票说明.docx", CHINESE_DOCX)
    make_pptx(docs / "roadmap.pptx", [(shape(["Q3 roadmap"], "title") + shape(["Ship the gateway"]), "budget")])
    orders_xlsx(docs / "stock.xlsx")
    (docs / "prices.csv").write_text("city,price,tax\nParis,30,included\n", encoding="utf-8")
    make_epub(docs / "ops.epub", BOOK)
    (docs / "broken.docx").write_bytes(b"PK\x03\x04 not a zip")
    assert _cli(tmp_path, "init").exit_code == 0
    res = _cli(tmp_path, "ingest", str(docs), "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["indexed"] == 6
    assert summary["skipped"] == [{"source": "docs/broken.docx", "reason": "corrupt Word document (not a readable zip "
                                   "archive: damaged or cut short): open it in Word and save it again as .docx"}]

    def top(*question: str) -> dict:
        out = _cli(tmp_path, "search", "--json", "--k", "1", *question)
        assert out.exit_code == 0, out.output
        return json.loads(out.output)[0]

    hit = top("which carrier ships to Asia and how many days")
    assert (hit["source"], hit["location"]) == ("docs/policy.docx", "Shipping fees")
    hit = top("电子发票在哪里下载")
    assert (hit["source"], hit["location"]) == ("docs/发票说明.docx", "退款政策 > 发票")
    answer = json.loads(_cli(tmp_path, "ask", "--json", "Can gift cards be refunded?").output)
    assert answer["citations"][0]["source"] == "docs/policy.docx" and "Gift cards" in answer["answer"]


def test_a_corrupt_file_named_on_the_command_line_is_an_error_with_what_to_do(tmp_path):
    (tmp_path / "locked.xlsx").write_bytes(_cfb("EncryptedPackage".encode("utf-16-le")))
    assert _cli(tmp_path, "init").exit_code == 0
    res = CliRunner().invoke(main, ["--project", str(tmp_path), "ingest", str(tmp_path / "locked.xlsx")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "locked.xlsx: password-protected Excel workbook: remove the password" in res.output

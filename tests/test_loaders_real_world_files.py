"""The files a new user has on disk (audit M): legacy CJK encodings, old line endings, short notes, misnamed
files, placeholder PDF titles, symbolic link loops, unreadable folders. Every fixture is written here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.config import RetrievalConfig
from flywheel.retrieval.chunking import Chunker, approximate_tokens, split_by_characters
from flywheel.retrieval.ingest import ingest
from flywheel.retrieval.loaders import LoadOptions, Skip, load_file
from flywheel.store import Store
from flywheel.types import Document

BIG5 = "臺灣的資料庫系統。繁體中文測試文件，關於鳳梨酥的歷史。"
SJIS = "東京都の天気は晴れです。富士山が見えます。ラーメンを食べました。"
GBK = "机器学习模型的评估非常重要。熊猫喜欢吃竹子。"
KO = "한국어 텍스트입니다. 서울은 대한민국의 수도입니다."


def load(path: Path, **options):
    return load_file(path, source=path.name, tenant="t", options=LoadOptions(**options))


def text_of(path: Path) -> str:
    return "\n".join(d.text for d in load(path).docs)


@pytest.mark.parametrize(("text", "encoding"), [(BIG5, "big5"), (SJIS, "shift_jis"), (SJIS, "cp932"),
                                                (GBK, "gbk"), (BIG5 + "\n" + BIG5[:9], "big5"), (KO, "euc-kr")],
                         ids=["big5", "shift_jis", "cp932", "gbk", "big5-two-lines", "euc-kr"])
def test_legacy_cjk_text_files_are_read_in_their_own_encoding(tmp_path, text, encoding):
    # Big5 and Shift-JIS bytes also decode as GB18030, to mojibake (羉砰呼, 搶嫗搒偺): it was indexed as is
    p = tmp_path / "notes.txt"
    p.write_bytes(f"{text}\n\n{text}\n".encode(encoding))
    assert text_of(p) == f"{text}\n\n{text}"


def test_a_utf8_log_cut_mid_character_or_with_a_stray_byte_stays_utf8(tmp_path):
    # strict UTF-8 failed on the last byte and the whole file was read as GB18030: every line mojibake
    text = "服务启动成功，监听端口 8080。\n" * 40
    data = text.encode()
    (tmp_path / "cut.txt").write_bytes(data[:-2])
    assert text_of(tmp_path / "cut.txt") == text[:-2] + "\ufffd"
    (tmp_path / "stray.txt").write_bytes(data[:30] + b"\xff" + data[30:])
    stray = text_of(tmp_path / "stray.txt")
    assert stray.count("\ufffd") == 1 and stray.replace("\ufffd", "") == text.rstrip("\n")
    (tmp_path / "gbk.txt").write_bytes("Hello 中 world, mostly English.\n".encode("gbk"))  # still GBK
    assert text_of(tmp_path / "gbk.txt") == "Hello 中 world, mostly English."


def test_a_big5_csv_and_a_big5_page_declaring_its_charset_read_right(tmp_path):
    (tmp_path / "t.csv").write_bytes("城市,說明\n臺北,鳳梨酥很好吃\n".encode("big5"))
    assert "鳳梨酥很好吃" in text_of(tmp_path / "t.csv")
    page = ('<html><head><meta http-equiv="Content-Type" content="text/html; charset=big5"><title>頁</title>'
            '</head><body><p>繁體網頁：貓頭鷹在夜晚活動。</p></body></html>')
    (tmp_path / "p.html").write_bytes(page.encode("big5"))
    assert text_of(tmp_path / "p.html") == "繁體網頁：貓頭鷹在夜晚活動。"
    # a declared single-byte charset is trusted (never guessed): café, not an "undecodable" skip
    (tmp_path / "l.html").write_bytes('<meta charset="iso-8859-1"><p>Un café crème.</p>'.encode("latin-1"))
    assert text_of(tmp_path / "l.html") == "Un café crème."


def test_a_one_line_note_and_a_closing_line_are_not_lost_as_headings(tmp_path):
    (tmp_path / "one.txt").write_text("大象 elephant note\n", encoding="utf-8")
    assert text_of(tmp_path / "one.txt") == "大象 elephant note"  # was skipped: "no text"
    (tmp_path / "utf16.txt").write_bytes("\ufeff大象 elephant\n".encode("utf-16-be"))
    assert text_of(tmp_path / "utf16.txt") == "大象 elephant"
    (tmp_path / "letter.txt").write_text("Intro\n\nThe cache stores answers for a day.\n\nThanks\n")
    assert text_of(tmp_path / "letter.txt") == "The cache stores answers for a day.\n\nThanks"
    docs = load(tmp_path / "letter.txt").docs
    assert docs[0].metadata["location"] == "Intro"


def test_old_mac_and_windows_line_endings_make_lines(tmp_path):
    (tmp_path / "mac.txt").write_bytes(b"Title line\r\rFirst paragraph about wombats.\rSecond line.\r")
    docs = load(tmp_path / "mac.txt").docs
    assert [(d.metadata["location"], d.metadata["line_start"], d.text) for d in docs] == [
        ("Title line", 3, "First paragraph about wombats.\nSecond line.")]
    # a Markdown file saved on Windows: its front matter is metadata, not text under a "---" heading
    (tmp_path / "win.md").write_bytes(b"---\r\ntitle: Deploy guide\r\nowner: ops\r\n---\r\n# Steps\r\n\r\nRoll out.\r\n")
    docs = load(tmp_path / "win.md").docs
    assert [(d.title, d.metadata.get("owner"), d.text) for d in docs] == [("Deploy guide", "ops", "Roll out.")]


def test_a_text_file_named_docx_or_pdf_is_indexed_as_text_with_a_warning(tmp_path):
    (tmp_path / "memo.docx").write_text("Really a text file about ostriches.\n", encoding="utf-8")
    loaded = load(tmp_path / "memo.docx")
    assert [d.text for d in loaded.docs] == ["Really a text file about ostriches."]
    assert loaded.warnings == ["not a Word document but plain text: indexed as text (rename it to .txt)"]
    (tmp_path / "x.pdf").write_bytes("说明文字，不是PDF。".encode("gbk"))
    assert text_of(tmp_path / "x.pdf") == "说明文字，不是PDF。"
    (tmp_path / "paper.pdf").write_text("<!DOCTYPE html><html><body>Please log in</body></html>")
    with pytest.raises(Skip, match="not a PDF but an HTML page"):
        load(tmp_path / "paper.pdf")
    (tmp_path / "bad.xlsx").write_bytes(b"PK\x03\x04garbage")  # a real (broken) zip stays a corrupt workbook
    with pytest.raises(Skip, match="corrupt Excel workbook"):
        load(tmp_path / "bad.xlsx")


def test_a_file_just_over_the_size_limit_says_by_how_much(tmp_path):
    p = tmp_path / "big.txt"
    p.write_bytes(b"x" * (1024 * 1024 + 100))
    with pytest.raises(Skip) as err:
        load(p, max_bytes=1024 * 1024)
    assert str(err.value).startswith("too large (1.0001 MB > limit 1.0000 MB)")  # was "1.0 MB > limit 1.0 MB"


def _pdf(title: str, text: str) -> bytes:
    """A one-page PDF with a text layer and an info dictionary, offsets computed."""
    stream = f"BT /F1 12 Tf 72 700 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
                b"/Resources << /Font << /F1 5 0 R >> >> >>"),
               b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>", f"<< /Title ({title}) >>".encode()]
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)


def test_a_pdf_placeholder_title_gives_way_to_the_file_name(tmp_path):
    pytest.importorskip("pypdf")
    (tmp_path / "hedgehogs.pdf").write_bytes(_pdf("untitled", "Hedgehogs sleep by day."))
    (tmp_path / "report.pdf").write_bytes(_pdf("Microsoft Word - draft3.docx", "Quarterly numbers."))
    (tmp_path / "named.pdf").write_bytes(_pdf("Annual Report", "Numbers."))
    assert [load(tmp_path / n).docs[0].title for n in ("hedgehogs.pdf", "report.pdf", "named.pdf")] == [
        "hedgehogs", "report", "Annual Report"]
    assert load(tmp_path / "hedgehogs.pdf").docs[0].text == "Hedgehogs sleep by day."


def test_chinese_sentences_packed_into_a_chunk_keep_their_text(tmp_path):
    text = "".join(f"第{i}句话讲述了数据处理流程的细节。" for i in range(30))
    doc = Document(id="d", text=text, source="s", title="t", tenant="t", metadata={})
    chunks = Chunker(approximate_tokens, split_by_characters, 64, 8).chunk(doc)
    assert len(chunks) > 3
    assert all(c.text in text for c in chunks)  # no space put between 。 and the next sentence


@pytest.fixture
def messy(tmp_path):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "ok.txt").write_bytes(f"{BIG5}\n".encode("big5"))
    os.symlink("b.txt", docs / "a.txt")
    os.symlink("a.txt", docs / "b.txt")
    os.symlink("gone.txt", docs / "dangling.txt")
    os.symlink("..", docs / "sub" / "up")
    (docs / "locked").mkdir()
    (docs / "locked" / "x.txt").write_text("locked away")
    (docs / "secret.txt").write_text("not for you")
    return tmp_path


def test_links_loops_and_unreadable_files_are_listed_and_the_run_goes_on(messy, monkeypatch):
    real_scandir, real_read = os.scandir, Path.read_bytes

    def scandir(path=".", *a):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path, *a)

    def read_bytes(self):
        if self.name == "secret.txt":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(os, "scandir", scandir)  # chmod 000 stops no one when the tests run as root
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    for follow in (False, True):
        with Store.open(f"sqlite:///{messy / f'{follow}.db'}") as store:
            runs = [ingest([messy / "docs"], store, RetrievalConfig(embedder="none"), root=messy,
                           follow_links=follow) for _ in range(2)]
        skipped = dict(runs[0].skipped)
        assert skipped == {
            "docs/a.txt": "symbolic link loop (the link leads back to itself)",
            "docs/b.txt": "symbolic link loop (the link leads back to itself)",
            "docs/dangling.txt": "broken symbolic link (it points to gone.txt, which does not exist)",
            "docs/locked": "cannot read folder: Permission denied",
            "docs/secret.txt": "cannot read: Permission denied"}, follow
        assert (runs[0].indexed, runs[1].indexed, runs[1].unchanged, runs[1].chunks_added) == (1, 0, 1, 0)


def test_the_cli_lists_a_symbolic_link_loop_without_a_traceback(messy):
    (messy / "flywheel.yaml").write_text("retrieval: {embedder: none}\n")
    res = CliRunner().invoke(main, ["--project", str(messy), "ingest", str(messy / "docs"), "--json"])
    assert res.exit_code == 0, res.output
    assert "symbolic link loop" in res.output and "Traceback" not in res.output


def test_chunking_a_long_log_reads_its_text_a_few_times_not_once_per_chunk(tmp_path):
    # Line numbers were found by counting "\n" from the start of the section for every chunk: quadratic, so a
    # 50 MB log took hours. Measured as characters scanned by str methods over long strings, not as time.
    import sys

    lines = [f"2024-01-01 12:00:{i % 60:02d} INFO request {i} served path=/api/items/{i} status=200"
             for i in range(4000)]
    (tmp_path / "server.log.txt").write_text("\n".join(lines) + "\n")
    doc = load(tmp_path / "server.log.txt").docs[0]
    scanned = 0

    def profile(frame, event, arg):
        nonlocal scanned
        owner = getattr(arg, "__self__", None)
        if event == "c_call" and isinstance(owner, str) and len(owner) > 10_000:
            scanned += len(owner)

    sys.setprofile(profile)
    try:
        chunks = Chunker(approximate_tokens, split_by_characters, 64, 8).chunk(doc)
    finally:
        sys.setprofile(None)
    assert len(chunks) > 200 and chunks[-1].metadata["lines"][1] == 4000
    assert scanned < 10 * len(doc.text), scanned / len(doc.text)

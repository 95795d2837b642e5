"""Loaders: what a user's files become, and every kind of bad input skipped with a reason."""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path

import pytest

from flywheel.retrieval.loaders import LoadOptions, Skip, load_file, walk


def load(path: Path, **options):
    return load_file(path, source=path.name, tenant="t1", options=LoadOptions(**options))


def test_markdown_splits_on_headings_and_keeps_the_heading_path(tmp_path):
    p = tmp_path / "guide.md"
    p.write_text("---\ntitle: The Guide\nproduct: cli\n---\nIntro text.\n\n# Install\nRun pip.\n\n## Linux\n"
                 "Use apt.\n\n```\n# not a heading\n```\n\n# Use\nCall it.\n", encoding="utf-8")
    docs = load(p).docs
    assert [d.metadata.get("location") for d in docs] == [None, "Install", "Install > Linux", "Use"]
    linux = docs[2]
    assert "Use apt." in linux.text and "# not a heading" in linux.text
    assert linux.title == "The Guide"
    assert linux.metadata["product"] == "cli" and linux.metadata["heading"] == "Linux"
    assert all(d.tenant == "t1" and d.source == "guide.md" for d in docs)


def test_html_keeps_main_text_without_navigation(tmp_path):
    p = tmp_path / "page.html"
    p.write_text("<html><head><title>Docs page</title><script>var secret = 1;</script></head><body>"
                 "<nav>Home | Pricing</nav><header>Site header</header>"
                 "<main><h1>Caching</h1><p>The cache stores <b>answers</b>.</p><h2>Semantic</h2><p>Similar "
                 "questions hit.</p></main><footer>Copyright</footer></body></html>", encoding="utf-8")
    docs = load(p).docs
    text = " ".join(d.text for d in docs)
    assert "The cache stores answers." in text and "Similar questions hit." in text
    for noise in ("Home", "Pricing", "Site header", "Copyright", "secret"):
        assert noise not in text
    assert [d.metadata["location"] for d in docs] == ["Caching", "Caching > Semantic"]
    assert docs[0].title == "Docs page"


def test_pdf_pages_are_documents_with_page_numbers(tmp_path):
    p = tmp_path / "manual.pdf"
    p.write_bytes(make_pdf(["First page about vectors.", "Second page about tenants."]))
    docs = load(p).docs
    assert [d.metadata["page"] for d in docs] == [1, 2]
    assert "tenants" in docs[1].text and docs[1].metadata["location"] == "page 2"


def test_jsonl_text_field_is_configurable_and_bad_lines_are_reported(tmp_path):
    p = tmp_path / "data.jsonl"
    p.write_text(json.dumps({"id": "a", "body": "alpha text", "lang": "en"}) + "\nnot json\n"
                 + json.dumps({"id": "b", "body": "beta text"}) + "\n", encoding="utf-8")
    loaded = load(p, text_field="body")
    assert [d.text for d in loaded.docs] == ["alpha text", "beta text"]
    assert loaded.docs[0].metadata["ref"] == "a" and loaded.docs[0].metadata["lang"] == "en"
    assert loaded.warnings and "line" in loaded.warnings[0]
    with pytest.raises(Skip, match="no `text` string"):
        load(p)  # default field `text` is absent in every record


def test_beir_folder_contributes_only_its_corpus(tmp_path):
    beir = tmp_path / "set"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text(json.dumps({"_id": "D1", "title": "标题", "text": "中文正文。"}) + "\n",
                                       encoding="utf-8")
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "Q1", "text": "问题"}) + "\n", encoding="utf-8")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nQ1\tD1\t1\n", encoding="utf-8")
    assert [f.name for f in walk(tmp_path)] == ["corpus.jsonl"]
    doc = load(beir / "corpus.jsonl").docs[0]
    assert (doc.title, doc.text, doc.metadata["ref"]) == ("标题", "中文正文。", "D1")


def test_chinese_in_legacy_encodings_is_decoded(tmp_path):
    text = "模型版本在配置文件中固定。"
    for enc in ("gb18030", "utf-8-sig", "utf-16"):
        p = tmp_path / f"zh-{enc}.txt"
        p.write_bytes(text.encode(enc))
        assert load(p).docs[0].text == text, enc


@pytest.mark.parametrize("name,content,reason", [
    ("notes.xyz", b"some text", "unknown file type"),
    ("blob.txt", b"\x00\x01\x02binary\x00data", "binary"),
    ("empty.md", b"", "empty file"),
    ("blank.md", b"  \n\n  ", "empty"),
    ("latin.txt", b"caf\xe9 \x80 na\xefve \xff", "undecodable"),
    ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog", "corrupt PDF"),
    ("bad.jsonl", b"not json\n{also not\n", "no documents"),
])
def test_bad_inputs_are_skipped_with_a_reason(tmp_path, name, content, reason):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(Skip, match=reason):
        load(p)


def test_huge_and_encrypted_files_are_skipped(tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("word " * 1000, encoding="utf-8")
    with pytest.raises(Skip, match="too large"):
        load(big, max_bytes=1000)
    locked = tmp_path / "locked.pdf"
    locked.write_bytes(encrypt_pdf(make_pdf(["Secret page."])))
    with pytest.raises(Skip, match="encrypted"):
        load(locked)


# ------------------------------------------------------------------------------------------ PDF fixtures


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page (enough for pypdf's text extraction)."""
    objects: list[bytes] = []
    n_pages = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    font_id = 3 + 2 * n_pages
    for i, text in enumerate(pages):
        content_id = 4 + 2 * i
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
                       f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode())
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = zlib.compress(f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1"))
        objects.append(f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode() + stream
                       + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def encrypt_pdf(data: bytes, password: str = "secret") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(data)).pages:
        writer.add_page(page)
    writer.encrypt(user_password=password, owner_password=password)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


# ---------------------------------------------------------------- boilerplate and locations (issue 10)

WECHAT = """点击上方蓝字“AI 工程札记”关注我们，设为星标

首页 > 技术专栏 > 大模型工程

# 数据飞轮

值得关注的是，数据飞轮需要每一步都有度量。

```bash
# 扫码关注 is a comment in code, never dropped
echo 1
```

参考文献

[1] Chip Huyen. Building A Generative AI Platform. https://huyenchip.com/, 2024.
[2] Eugene Yan. Patterns for Building LLM-based Systems. 2023.

扫描下方二维码，加入交流群
觉得有用的话，点赞、在看、转发三连支持一下！
本文版权归作者所有，转载请联系作者。
"""
ENGLISH_PAGE = """Home | Docs | Blog | Pricing | About

# Caching answers

The cache stores answers keyed on the model version.
Pages often end with "Subscribe to our newsletter" lines.
Subscribe to our newsletter for weekly updates.
Share this: Twitter · LinkedIn · Email
We use cookies to improve your experience. Accept all cookies?
This website uses cookies.

## References

1. Smith et al. Semantic caching for LLMs. arXiv:2401.00001, 2024.
2. https://example.com/caching

## Next steps

Read the guide on tenants.
"""


@pytest.mark.parametrize("suffix", [".md", ".txt"])
def test_boilerplate_is_dropped_and_recorded(tmp_path, suffix):
    p = tmp_path / f"wechat{suffix}"
    p.write_text(WECHAT, encoding="utf-8")
    loaded = load(p)
    text = "\n".join(d.text for d in loaded.docs)
    for noise in ("点击上方", "首页 >", "参考文献", "Chip Huyen", "扫描下方", "点赞", "转载"):
        assert noise not in text, noise
    assert "值得关注的是，数据飞轮需要每一步都有度量。" in text  # prose that mentions 关注 stays
    assert "# 扫码关注 is a comment in code" in text  # code is never touched
    assert loaded.dropped == {"subscribe": 2, "navigation": 1, "references": 3, "share": 1, "copyright": 1}
    meta = loaded.docs[0].metadata
    assert meta["boilerplate"] == loaded.dropped
    assert meta["boilerplate_lines"] == "1, 3, 14, 16–17, 19–21"  # the file's own line numbers


def test_english_boilerplate_classes_are_dropped(tmp_path):
    p = tmp_path / "page.md"
    p.write_text(ENGLISH_PAGE, encoding="utf-8")
    loaded = load(p)
    text = "\n".join(d.text for d in loaded.docs)
    assert "The cache stores answers keyed on the model version." in text and "Read the guide on tenants." in text
    assert 'Pages often end with "Subscribe to our newsletter" lines.' in text  # a mention, not a call to action
    assert "weekly updates" not in text
    for noise in ("Pricing", "Share this", "cookies", "Smith et al", "example.com"):
        assert noise not in text, noise
    assert loaded.dropped["cookie"] == 2
    assert [d.metadata.get("location") for d in loaded.docs] == ["Caching answers", "Caching answers > Next steps"]
    assert set(loaded.dropped) == {"navigation", "subscribe", "share", "cookie", "references"}


def test_text_files_are_split_at_heading_like_lines_with_line_numbers(tmp_path):
    p = tmp_path / "article.txt"
    p.write_text("LLM 应用评估实践\n\n1. 为什么评估这么难\n\n大模型的输出是开放式的。\n另外，模型会更新。\n\n"
                 "**3.3 成对比较的优势**\n\n它的好处是判断更稳定。\n", encoding="utf-8")
    docs = load(p).docs
    assert [(d.metadata.get("location"), d.metadata["line_start"], d.text.splitlines()[0]) for d in docs] == [
        ("LLM 应用评估实践 > 1. 为什么评估这么难", 5, "大模型的输出是开放式的。"),
        ("3.3 成对比较的优势", 10, "它的好处是判断更稳定。")]  # the title line leads the first location


def test_markdown_headings_lose_their_markup(tmp_path):
    p = tmp_path / "a.md"
    p.write_text("## **3.3 如何选择基础模型**\n\n正文。\n\n### `flywheel ingest` and [links](https://x.y)\n\nMore.\n",
                 encoding="utf-8")
    assert [d.metadata["location"] for d in load(p).docs] == [
        "3.3 如何选择基础模型", "3.3 如何选择基础模型 > flywheel ingest and links"]

"""Chunking: sizes by the embedder's tokenizer, overlap, Chinese sentences, stable content-hash ids."""

from __future__ import annotations

from itertools import pairwise

import pytest

from flywheel.retrieval.chunking import Chunker, approximate_tokens, split_by_characters, split_sentences
from flywheel.types import Document, content_hash


@pytest.fixture(scope="module")
def counter():
    """The local embedder's wordpiece counter when installed (what ingest uses), else the approximation."""
    from flywheel.retrieval.embedders import LocalEmbedder, local_available

    if local_available():
        e = LocalEmbedder()
        return e.count_tokens, e.hard_split
    return approximate_tokens, split_by_characters


def doc(text: str, **meta) -> Document:
    return Document(id=content_hash(text), text=text, source="s.md", metadata=meta)


def test_chinese_sentences_split_on_chinese_punctuation():
    assert split_sentences("他说：“你好。”然后走了！真的吗？是的；好。Done. Next one") == [
        "他说：“你好。”", "然后走了！", "真的吗？", "是的；", "好。", "Done.", "Next one"]
    assert split_sentences("Pi is 3.14 today. Use e.g. this") == ["Pi is 3.14 today.", "Use e.g. this"]


def test_chunks_respect_the_token_budget_and_overlap(counter):
    count, split = counter
    sentences = [f"Sentence number {i} talks about retrieval, vectors and tenants." for i in range(60)]
    text = " ".join(sentences[:30]) + "\n\n" + " ".join(sentences[30:])
    chunker = Chunker(count, split, chunk_tokens=64, overlap=16)
    chunks = chunker.chunk(doc(text))
    assert len(chunks) > 4
    assert all(n <= 64 for n in count([c.text for c in chunks]))
    for a, b in pairwise(chunks):
        # the next chunk starts with the tail of the previous one (sentence-granular, ≤ overlap tokens)
        first = split_sentences(b.text)[0]
        if first in a.text:
            assert count([first])[0] <= 16
    shared = sum(1 for a, b in pairwise(chunks) if split_sentences(b.text)[0] in a.text)
    assert shared >= len(chunks) // 2
    covered = " ".join(c.text for c in chunks)
    assert all(s in covered for s in sentences)  # nothing lost
    no_overlap = Chunker(count, split, chunk_tokens=64, overlap=0).chunk(doc(text))
    assert not any(split_sentences(b.text)[0] in a.text for a, b in pairwise(no_overlap))


def test_over_long_sentences_and_chinese_text_are_cut_to_size(counter):
    count, split = counter
    zh = "检索增强生成把文档切成小块再建立索引" * 40 + "。第二句很短。"
    en = " ".join(f"token{i}" for i in range(400))
    chunker = Chunker(count, split, chunk_tokens=50, overlap=0)
    for text in (zh, en):
        chunks = chunker.chunk(doc(text))
        assert len(chunks) > 1
        assert all(n <= 50 for n in count([c.text for c in chunks]))
    assert "第二句很短。" in chunker.chunk(doc(zh))[-1].text


def test_headings_inside_text_become_locations_and_never_share_a_chunk(counter):
    count, split = counter
    text = "# Setup\nInstall it.\n\n## Linux\nUse the package.\n\n# Usage\nRun it."
    chunks = Chunker(count, split, chunk_tokens=200, overlap=10).chunk(doc(text, location="Guide"))
    assert [(c.location, c.text) for c in chunks] == [
        ("Guide > Setup", "Install it."), ("Guide > Setup > Linux", "Use the package."),
        ("Guide > Usage", "Run it.")]
    assert [c.ordinal for c in chunks] == [0, 1, 2]


def test_ids_are_content_hashes_stable_across_runs(counter):
    count, split = counter
    text = "Alpha paragraph.\n\nBeta paragraph.\n\nAlpha paragraph."
    a = Chunker(count, split, chunk_tokens=5, overlap=0).chunk(doc(text, title="T"))
    b = Chunker(count, split, chunk_tokens=5, overlap=0).chunk(doc(text, title="T"))
    assert [c.id for c in a] == [c.id for c in b]
    assert all(c.id == content_hash(c.doc_id, c.text) for c in a)
    assert len({c.id for c in a}) == len(a) == 2  # the repeated paragraph is one chunk
    changed = Chunker(count, split, chunk_tokens=5, overlap=0).chunk(doc(text.replace("Beta", "Gamma")))
    assert {c.id for c in changed}.isdisjoint({c.id for c in a})  # another document text → other ids


# ---------------------------------------------------------------- code blocks, headings, line ranges (issue 10)


def test_code_blocks_stay_whole_and_long_ones_are_cut_between_lines_and_refenced():
    code = "```python\nimport os\n\n# a comment, not a heading\n\nprint(os.getcwd())\n```"
    text = "# Setup\nRun this:\n\n" + code + "\n\nThen read on."
    chunks = Chunker(approximate_tokens, split_by_characters, chunk_tokens=40, overlap=0).chunk(doc(text))
    assert any(code in c.text for c in chunks)  # the blank lines inside did not split it
    assert all(c.location == "Setup" for c in chunks)  # "# a comment" inside code is not a heading
    long_code = "```yaml\n" + "\n".join(f"key{i}: value number {i}" for i in range(60)) + "\n```"
    pieces = Chunker(approximate_tokens, split_by_characters, chunk_tokens=50, overlap=8).chunk(doc(long_code))
    assert len(pieces) > 2
    for c in pieces:
        assert c.text.startswith("```yaml\n") and c.text.endswith("\n```") and c.text.count("```") == 2
        assert all(n <= 50 for n in approximate_tokens([c.text]))
    body = "\n".join(line for c in pieces for line in c.text.splitlines()[1:-1])
    assert all(f"key{i}: value number {i}" in body for i in range(60))  # nothing lost


def test_headings_in_text_lose_their_markdown():
    chunks = Chunker(approximate_tokens, split_by_characters, 100, 0).chunk(doc("## **3.3 Choosing a model**\nStart small."))
    assert chunks[0].location == "3.3 Choosing a model"


def test_documents_with_a_first_line_get_line_ranges_in_their_location():
    text = "\n".join(f"Sentence {i} of a long plain text file about retrieval." for i in range(40))
    d = doc(text, location="3.3 Retrieval", line_start=120)
    chunks = Chunker(approximate_tokens, split_by_characters, chunk_tokens=60, overlap=0).chunk(d)
    assert len(chunks) > 2
    lines = text.splitlines()
    for c in chunks:
        first, last = c.metadata["lines"]
        assert c.location == f"3.3 Retrieval, lines {first}–{last}"
        assert c.text.splitlines()[0] == lines[first - 120] and c.text.splitlines()[-1] == lines[last - 120]
    assert chunks[0].metadata["lines"][0] == 120 and chunks[-1].metadata["lines"][1] == 159
    plain = Chunker(approximate_tokens, split_by_characters, 100, 0).chunk(doc("One line.", line_start=7))
    assert plain[0].location == "line 7"
    assert "lines" not in Chunker(approximate_tokens, split_by_characters, 100, 0).chunk(doc("x y"))[0].metadata

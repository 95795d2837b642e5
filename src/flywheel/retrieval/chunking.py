"""Structure-aware chunking: headings → paragraphs → sentences (Chinese 。！？； included), packed up to
`chunk_tokens` tokens of the embedder's own tokenizer, with about `overlap` tokens repeated between
consecutive chunks of a section. Chunk ids are content hashes, so re-chunking unchanged text gives the same ids."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flywheel.types import Chunk, Document, content_hash

# Sentence ends: CJK punctuation (Chinese puts no space after it), ASCII . ! ? ; : before whitespace, or a line end.
_SENTENCE_END = re.compile(r"[。！？；…]+[”」』）\"'’)]*|[.!?;:]+[\"'’)\]]*(?=\s|$)|\n")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")
_PARAGRAPH = re.compile(r"\n[ \t]*\n+")

TokenCounter = Callable[[Sequence[str]], list[int]]
Splitter = Callable[[str, int], list[str]]  # hard split of one over-long sentence into pieces of ≤ n tokens


@dataclass
class _Unit:
    text: str
    tokens: int
    joiner: str  # what goes before it when it follows another unit: "\n\n" (new paragraph) or " " / ""


def split_sentences(text: str) -> list[str]:
    return [s for s, _ in sentences_with_separators(text)]


def sentences_with_separators(text: str) -> list[tuple[str, str]]:
    """[(sentence, the whitespace that preceded it: "" | " " | "\n")]; joining them rebuilds the text."""
    out: list[tuple[str, str]] = []
    start = 0
    between = ""  # whitespace since the end of the previous sentence
    for end in [*(m.end() for m in _SENTENCE_END.finditer(text)), len(text)]:
        raw = text[start:end]
        piece = raw.strip()
        start = end
        if not piece:
            between += raw
            continue
        between += raw[: len(raw) - len(raw.lstrip())]
        gap = "\n" if "\n" in between else (" " if between else "")
        out.append((piece, gap if out else ""))
        between = raw[len(raw.rstrip()):]
    return out


class Chunker:
    def __init__(self, count_tokens: TokenCounter, hard_split: Splitter, chunk_tokens: int = 256,
                 overlap: int = 32):
        if overlap >= chunk_tokens:
            overlap = chunk_tokens // 4
        self.count = count_tokens
        self.hard_split = hard_split
        self.size = chunk_tokens
        self.overlap = overlap

    # ---------------------------------------------------------------- public

    def chunk(self, doc: Document) -> list[Chunk]:
        base_location = doc.metadata.get("location")
        chunks: list[Chunk] = []
        for heading_path, body in self._sections(doc.text):
            location = " > ".join([p for p in [base_location, *heading_path] if p]) or None
            for text in self._pack(self._units(body)):
                chunks.append(self._make(doc, text, location, len(chunks)))
        seen: set[str] = set()
        unique = []
        for c in chunks:  # the same text twice in one document is one chunk
            if c.id not in seen:
                seen.add(c.id)
                unique.append(c)
        for i, c in enumerate(unique):
            c.ordinal = i
        return unique

    # ---------------------------------------------------------------- structure

    def _sections(self, text: str) -> list[tuple[list[str], str]]:
        """Split on Markdown-style heading lines found in the text itself (loaders already split Markdown)."""
        out: list[tuple[list[str], str]] = []
        path: list[tuple[int, str]] = []
        body: list[str] = []
        for line in text.splitlines():
            m = _HEADING.match(line)
            if not m:
                body.append(line)
                continue
            if "\n".join(body).strip():
                out.append(([t for _, t in path], "\n".join(body).strip()))
            body = []
            level = len(m.group(1))
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, m.group(2).strip()))
        if "\n".join(body).strip():
            out.append(([t for _, t in path], "\n".join(body).strip()))
        return out

    def _units(self, body: str) -> list[_Unit]:
        """Paragraphs that fit, else their sentences, else hard pieces of over-long sentences."""
        paragraphs = [p.strip() for p in _PARAGRAPH.split(body) if p.strip()]
        counts = self.count(paragraphs)
        units: list[_Unit] = []
        for para, n in zip(paragraphs, counts, strict=True):
            if n <= self.size:
                units.append(_Unit(para, n, "\n\n"))
                continue
            pairs = sentences_with_separators(para)
            for j, ((sent, gap), m) in enumerate(zip(pairs, self.count([p for p, _ in pairs]), strict=True)):
                joiner = "\n\n" if j == 0 else gap
                if m <= self.size:
                    units.append(_Unit(sent, m, joiner))
                    continue
                pieces = self.hard_split(sent, self.size)
                for k, (piece, c) in enumerate(zip(pieces, self.count(pieces), strict=True)):
                    units.append(_Unit(piece, c, joiner if k == 0 else _gap(pieces[k - 1], piece)))
        return units

    def _pack(self, units: list[_Unit]) -> list[str]:
        """Greedy packing; each new chunk starts with the trailing units of the previous one (≤ overlap)."""
        texts: list[str] = []
        current: list[_Unit] = []
        total = 0
        fresh = 0  # units in `current` that are not overlap from the previous chunk
        for u in units:
            if current and total + u.tokens > self.size:
                texts.append(self._join(current))
                carried: list[_Unit] = []
                carried_tokens = 0
                for prev in reversed(current):
                    if carried_tokens + prev.tokens > self.overlap or carried_tokens + prev.tokens + u.tokens > self.size:
                        break
                    carried.insert(0, prev)
                    carried_tokens += prev.tokens
                current, total, fresh = carried, carried_tokens, 0
            current.append(u)
            total += u.tokens
            fresh += 1
        if current and fresh:
            texts.append(self._join(current))
        return texts

    @staticmethod
    def _join(units: list[_Unit]) -> str:
        out = units[0].text
        for u in units[1:]:
            out += u.joiner + u.text
        return out

    @staticmethod
    def _make(doc: Document, text: str, location: str | None, ordinal: int) -> Chunk:
        meta = {k: v for k, v in doc.metadata.items() if k != "location"}
        if doc.title:
            meta["title"] = doc.title
        return Chunk(id=content_hash(doc.id, text), doc_id=doc.id, text=text, source=doc.source,
                     tenant=doc.tenant, location=location, ordinal=ordinal, metadata=meta)


def _gap(prev: str, nxt: str) -> str:
    """No space between two pieces of CJK text, one between others."""
    return "" if ord(prev[-1]) > 0x2E80 or ord(nxt[0]) > 0x2E80 else " "


def approximate_tokens(texts: Sequence[str]) -> list[int]:
    """Token estimate for embedders without a local tokenizer: one per CJK character, ~4 characters otherwise."""
    out = []
    for t in texts:
        cjk = sum(1 for ch in t if ord(ch) > 0x2E80)
        out.append(cjk + (len(t) - cjk + 3) // 4)
    return out


def split_by_characters(text: str, max_tokens: int) -> list[str]:
    """Hard split for the approximate counter: pieces of about `max_tokens` tokens, cut at spaces when possible."""
    pieces: list[str] = []
    rest = text
    while rest:
        lo, hi = 1, len(rest)
        while lo < hi:  # the longest prefix that fits
            mid = (lo + hi + 1) // 2
            if approximate_tokens([rest[:mid]])[0] <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        cut = lo
        if cut < len(rest):
            space = rest.rfind(" ", 0, cut)
            if space > cut // 2:
                cut = space
        pieces.append(rest[:cut].strip())
        rest = rest[cut:].lstrip()
    return [p for p in pieces if p]

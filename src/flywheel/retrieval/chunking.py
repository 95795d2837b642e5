"""Structure-aware chunking: headings → paragraphs → sentences (Chinese 。！？； included), packed up to
`chunk_tokens` tokens of the embedder's own tokenizer, with about `overlap` tokens repeated between
consecutive chunks of a section. Chunk ids are content hashes, so re-chunking unchanged text gives the same ids.

Fenced code blocks are one unit: never cut by a blank line inside them, and a block too long for one chunk is
cut between lines with each piece re-fenced, so no chunk holds half a fence. `#` lines inside code are not
headings; heading text loses its Markdown markup. When a document records `line_start` (the file line its text
starts on: plain-text sources), every chunk records the file lines it spans (`metadata["lines"] = [a, b]`)
and its location ends with "lines a–b", so a citation points into a long file."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flywheel.retrieval.loaders.base import clean_inline
from flywheel.text import sentence_spans, sentences_with_separators, split_sentences
from flywheel.types import Chunk, Document, content_hash

__all__ = ["Chunker", "approximate_tokens", "sentences_with_separators", "split_by_characters", "split_sentences"]

_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_NEWLINE = re.compile("\n")
_ABOVE_CJK_RADICALS = re.compile("[\u2e81-\U0010ffff]+")  # runs of the characters counted one token each

TokenCounter = Callable[[Sequence[str]], list[int]]
Splitter = Callable[[str, int], list[str]]  # hard split of one over-long sentence into pieces of ≤ n tokens


@dataclass
class _Unit:
    text: str
    tokens: int
    joiner: str  # what goes before it when it follows another unit: "\n\n" (new paragraph) or " " / ""
    start: int = 0  # offset of the unit in its section body
    end: int = 0


@dataclass
class _Section:
    path: list[str]
    body: str
    line: int  # 0-based line of the body's first character in the document text


def paragraph_spans(body: str) -> list[tuple[int, int]]:
    """(start, end) of the paragraphs of `body`: blank-line separated, a fenced code block always whole."""
    spans: list[tuple[int, int]] = []
    start: int | None = None
    in_fence = False
    pos = last = 0
    for line in body.split("\n"):
        end = pos + len(line)
        if _FENCE.match(line):
            if not in_fence and start is not None:
                spans.append((start, last))  # a fence opens a paragraph of its own
                start = None
            in_fence = not in_fence
        if line.strip() or in_fence:
            if start is None:
                start = pos
            last = end
            if _FENCE.match(line) and not in_fence:  # the closing fence ends the code paragraph
                spans.append((start, last))
                start = None
        elif start is not None:
            spans.append((start, last))
            start = None
        pos = end + 1
    if start is not None:
        spans.append((start, last))
    return spans


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
        line_start = doc.metadata.get("line_start")
        chunks: list[Chunk] = []
        for section in self._sections(doc.text):
            location = " > ".join([p for p in [base_location, *section.path] if p]) or None
            # line of an offset: a binary search (counting "\n" from the start for every chunk made a 50 MB
            # log take hours)
            breaks = [m.start() for m in _NEWLINE.finditer(section.body)] if isinstance(line_start, int) else []
            for units in self._pack(self._units(section.body)):
                meta: dict = {}
                where = location
                if isinstance(line_start, int):
                    first = line_start + section.line + bisect_left(breaks, units[0].start)
                    last = line_start + section.line + bisect_left(breaks, units[-1].end)
                    meta["lines"] = [first, last]
                    span = f"line {first}" if first == last else f"lines {first}–{last}"
                    where = f"{location}, {span}" if location else span
                chunks.append(self._make(doc, self._join(units), where, len(chunks), meta))
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

    def _sections(self, text: str) -> list[_Section]:
        """Split on Markdown-style heading lines found in the text itself (loaders already split Markdown);
        `#` lines inside fenced code are code."""
        out: list[_Section] = []
        path: list[tuple[int, str]] = []
        body: list[str] = []
        body_line = 0
        in_fence = False

        def flush() -> None:
            joined = "\n".join(body)
            if joined.strip():
                lead = len(joined) - len(joined.lstrip())
                out.append(_Section([t for _, t in path], joined.strip(), body_line + joined.count("\n", 0, lead)))

        for i, line in enumerate(text.split("\n")):
            if _FENCE.match(line):
                in_fence = not in_fence
            m = None if in_fence else _HEADING.match(line)
            if not m:
                body.append(line)
                continue
            flush()
            body, body_line = [], i + 1
            level = len(m.group(1))
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, clean_inline(m.group(2))))
        flush()
        return out

    def _units(self, body: str) -> list[_Unit]:
        """Paragraphs that fit, else their sentences, else hard pieces of over-long sentences; code blocks whole,
        or cut between lines and re-fenced."""
        spans = paragraph_spans(body)
        paragraphs = [body[a:b] for a, b in spans]
        counts = self.count(paragraphs)
        units: list[_Unit] = []
        for (a, b), para, n in zip(spans, paragraphs, counts, strict=True):
            if n <= self.size:
                units.append(_Unit(para, n, "\n\n", a, b))
                continue
            if _FENCE.match(para):
                units.extend(self._code_pieces(para, a))
                continue
            pieces = [(a + s, a + e) for s, e in sentence_spans(para)]
            for j, ((s, e), m) in enumerate(zip(pieces, self.count([body[s:e] for s, e in pieces]), strict=True)):
                sent = body[s:e]
                gap = body[pieces[j - 1][1]:s] if j else ""  # as in the text: none between Chinese sentences
                joiner = "\n\n" if j == 0 else ("\n" if "\n" in gap else (" " if gap else ""))
                if m <= self.size:
                    units.append(_Unit(sent, m, joiner, s, e))
                    continue
                hard = self.hard_split(sent, self.size)
                for k, (piece, c) in enumerate(zip(hard, self.count(hard), strict=True)):
                    units.append(_Unit(piece, c, joiner if k == 0 else _gap(hard[k - 1], piece), s, e))
        return units

    def _code_pieces(self, block: str, offset: int) -> list[_Unit]:
        """An over-long fenced block cut between lines; every piece opens and closes its own fence."""
        lines = block.split("\n")
        fence, close = lines[0].strip(), lines[0].strip()[:3]
        inner = lines[1:-1] if len(lines) > 1 and _FENCE.match(lines[-1]) else lines[1:]
        units: list[_Unit] = []
        piece: list[str] = []
        start = pos = offset + len(lines[0]) + 1

        def flush(end: int) -> None:
            text = "\n".join([fence, *piece, close])
            units.append(_Unit(text, self.count([text])[0], "\n\n", start, end))

        for line in inner:
            if piece and self.count(["\n".join([fence, *piece, line, close])])[0] > self.size:
                flush(pos - 1)
                piece, start = [], pos
            if self.count([f"{fence}\n{line}\n{close}"])[0] > self.size:  # one line longer than a chunk
                for part in self.hard_split(line, max(8, self.size - self.count([f"{fence}\n{close}"])[0])):
                    piece = [part]
                    flush(pos + len(line))
                piece, start = [], pos + len(line) + 1
            else:
                piece.append(line)
            pos += len(line) + 1
        if piece:
            flush(offset + len(block))
        return units

    def _pack(self, units: list[_Unit]) -> list[list[_Unit]]:
        """Greedy packing; each new chunk starts with the trailing units of the previous one (≤ overlap)."""
        texts: list[list[_Unit]] = []
        current: list[_Unit] = []
        total = 0
        fresh = 0  # units in `current` that are not overlap from the previous chunk
        for u in units:
            if current and total + u.tokens > self.size:
                texts.append(current)
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
            texts.append(current)
        return texts

    @staticmethod
    def _join(units: list[_Unit]) -> str:
        out = units[0].text
        for u in units[1:]:
            out += u.joiner + u.text
        return out

    @staticmethod
    def _make(doc: Document, text: str, location: str | None, ordinal: int, extra: dict) -> Chunk:
        meta = {k: v for k, v in doc.metadata.items() if k != "location"} | extra
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
        cjk = 0 if t.isascii() else sum(map(len, _ABOVE_CJK_RADICALS.findall(t)))
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

"""Retrieval sets built from Debian's public text, committed under benchmarks/retrieval-sets/ (gzip'd BEIR
folders) so `flywheel bench retrieval --sets` runs them on any clone without downloading anything.
scripts/build_retrieval_sets.py rebuilds them from the downloaded sources (benchmarks/retrieval-sets/README.md).

- `debian-desc-{en,zh}`: Debian package descriptions (DDTP Translation-en / Translation-zh_CN of bookworm/main).
  Query = the one-line synopsis, document = the long description, relevant = its own package.
- `manpages-{en,zh}`: man pages (the `manpages` + `manpages-dev` debs for English, `manpages-zh`'s zh_CN pages
  for Chinese). Query = the NAME line's description (the whatis text after "name \\- "); document = the text of
  every section after NAME (SYNOPSIS, DESCRIPTION, ...), the NAME section itself left out (it holds the command
  name and the query verbatim), cut to the first 300 words (English) or 600 CJK characters (Chinese).

Rules that keep the qrels sound:
- Items are visited in the order of sha1(name). One item per near-duplicate family: an item is dropped when 50%
  or more of its document's shingles (3-word, or 5-character for Chinese) are in an already kept document
  (libfoo1 / libfoo-dev / libfoo-doc, 0ad / 0ad-data), or when its query equals a kept query (case and
  punctuation ignored). Synopses that are just the package name are dropped.
- Each kept item goes to `dev` or `heldout` by crc32(name) (even = dev), as in retrieval_sets.py; each half keeps
  at most `max_docs` items.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PACKAGED = Path(__file__).resolve().parents[3] / "benchmarks" / "retrieval-sets"
CONTAINMENT = 0.5
EN_WORDS, ZH_CHARS = 300, 600
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True)
class Item:
    name: str  # package or man page name: the document id
    query: str
    document: str


def half(name: str) -> str:
    return "dev" if zlib.crc32(name.encode("utf-8")) % 2 == 0 else "heldout"


def _cjk_count(text: str) -> int:
    return len(_CJK.findall(text))


def _join_lines(lines: Iterable[str]) -> str:
    """Wrapped lines joined: no space between two CJK characters (Chinese is wrapped mid-sentence)."""
    out = ""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if out and not (_CJK.match(out[-1]) and _CJK.match(line[0])):
            out += " "
        out += line
    return out


# ---------------------------------------------------------------------------- Debian descriptions


def parse_translation(text: str) -> list[Item]:
    """Items of a DDTP Translation-<lang> file: `Package:`, then `Description-<lang>: synopsis` and the long
    description's indented lines (" ." separates paragraphs)."""
    items = []
    for record in re.split(r"\n\s*\n", text):
        package, synopsis, long_lines = "", "", []
        in_description = False
        for line in record.splitlines():
            if line.startswith("Package:"):
                package = line.split(":", 1)[1].strip()
            elif line.startswith("Description-"):
                synopsis, in_description = line.split(":", 1)[1].strip(), True
            elif in_description and line.startswith(" "):
                long_lines.append("" if line.strip() == "." else line)
            else:
                in_description = False
        paragraphs = "\n".join(long_lines).split("\n\n")
        document = "\n".join(p for p in (_join_lines(p.splitlines()) for p in paragraphs) if p)
        if package and synopsis and document and not _just_the_name(synopsis, package):
            items.append(Item(package, synopsis, document))
    return items


def _norm(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.lower())


def _just_the_name(synopsis: str, name: str) -> bool:
    return _norm(synopsis) == _norm(name)


# ---------------------------------------------------------------------------- man pages

_TEXT_MACROS = {"SH", "SS", "B", "I", "BR", "IR", "RB", "RI", "BI", "IB", "SM", "SB", "IP", "TQ", "OP", "SY"}
_ALTERNATING = {"BR", "IR", "RB", "RI", "BI", "IB"}  # fonts alternate between words: no space between args
_NAMED = {"em": "—", "en": "–", "lq": '"', "rq": '"', "aq": "'", "dq": '"', "oq": "'", "cq": "'", "bu": "•",
          "mi": "-", "hy": "-", "ti": "~", "ha": "^", "co": "©", "rg": "®", "tm": "™", "aa": "'", "ga": "`"}
_ESCAPE = re.compile(r"\\(?:f(?:\[[^\]]*\]|\(..|.)|\*(?:\[[^\]]*\]|\(..|.)|s[+-]?\d+|\((..)|\[([^\]]*)\]|"
                     r"[&|^,/:%c)]|(-)|(e)|([ ~0])|(.))")


def _unescape(text: str) -> str:
    def sub(m: re.Match[str]) -> str:
        two, bracket, dash, backslash, space, other = m.groups()
        if two is not None or bracket is not None:
            return _NAMED.get(two or bracket or "", "")
        if dash:
            return "-"
        if backslash:
            return "\\"
        if space:
            return " "
        return other if other in ("\\", "'", "`", '"', ".") else ""

    return _ESCAPE.sub(sub, text.split('\\"', 1)[0])


def _macro_args(rest: str) -> list[str]:
    return [a[1:-1] if a.startswith('"') else a for a in re.findall(r'"[^"]*"|\S+', rest)]


def roff_sections(source: str) -> list[tuple[str, str]] | None:
    """(heading, text) of each section of a man(7) page, escapes and requests removed; None for a `.so` alias
    or an mdoc(7) page."""
    if re.match(r"\s*\.so\s", source) or re.search(r"^\.Dd\b", source, re.MULTILINE):
        return None
    sections: list[tuple[str, list[str]]] = []
    skip_until = ""
    for line in source.splitlines():
        if skip_until:
            if line.startswith(skip_until):
                skip_until = ""
            continue
        if line.startswith((".\\\"", "'\\\"", ".\\\\\"")) or line.strip() in (".", "'"):
            continue
        m = re.match(r"[.']\s*(\S+)\s*(.*)", line)
        if m:
            macro, rest = m.groups()
            if macro in ("de", "ig", "am"):
                skip_until = ".."
                continue
            if macro == "SH":
                sections.append((_unescape(" ".join(_macro_args(rest))).strip(), []))
                continue
            if macro not in _TEXT_MACROS:
                continue
            args = _macro_args(rest)
            text = ("" if macro in _ALTERNATING else " ").join(args)
        else:
            text = line
        text = _unescape(text).strip()
        if text and sections:
            sections[-1][1].append(text)
    return [(heading, _join_lines(lines)) for heading, lines in sections]


def _is_name_heading(heading: str) -> bool:
    return "NAME" in heading.upper() or "名称" in heading or "命令名" in heading


def manpage_item(name: str, source: str, language: str) -> Item | None:
    """The query and document of one man page (see the module docstring), or None when it has no usable NAME
    line or too little text."""
    sections = roff_sections(source)
    if not sections:
        return None
    at = next((i for i, (heading, _) in enumerate(sections) if _is_name_heading(heading)), None)
    if at is None:
        return None
    parts = re.split(r"\s+[-–—]+\s+|\s*[-–—]{1,2}\s*(?=[\u3400-\u9fff])", sections[at][1], maxsplit=1)
    if len(parts) != 2:
        return None
    # a NAME section naming several commands ("bzip2 - ... bzcat - ..."): the first description only
    query = re.split(r"\s+\S+\s+[-–—]+\s+", parts[1].strip(), maxsplit=1)[0].strip()
    body = " ".join(text for _, text in sections[at + 1:] if text)
    if language == "zh":
        if not _cjk_count(query) or _cjk_count(body) < 50:
            return None
        document = _cut_cjk(body, ZH_CHARS)
    else:
        words = body.split()
        if len(words) < 20 or len(query.split()) < 2:
            return None
        document = " ".join(words[:EN_WORDS])
    return Item(name, query, document)


def _cut_cjk(text: str, n: int) -> str:
    seen = 0
    for i, ch in enumerate(text):
        if _CJK.match(ch):
            seen += 1
            if seen > n:
                return text[:i]
    return text


def manpage_name(path: Path) -> str:
    """`ls.1` for man1/ls.1.gz: the page name with its section, so `printf.1` and `printf.3` stay apart."""
    return path.name.removesuffix(".gz")


def read_manpage(path: Path) -> str:
    data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    return data.decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------- families, halves, files


def _shingles(text: str, language: str) -> set[str]:
    if language == "zh":
        chars = re.sub(r"\s+", "", text.lower())
        return {chars[i:i + 5] for i in range(max(len(chars) - 4, 1))}
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i:i + 3]) for i in range(max(len(words) - 2, 1))}


def select(items: Iterable[Item], language: str, max_docs: int) -> dict[str, list[Item]]:
    """One item per near-duplicate family, split into halves ({"dev": [...], "heldout": [...]}), each at most
    `max_docs` items, visiting the items in sha1(name) order."""
    ordered = sorted(items, key=lambda it: hashlib.sha1(it.name.encode("utf-8")).hexdigest())
    halves: dict[str, list[Item]] = {"dev": [], "heldout": []}
    postings: dict[str, list[int]] = {}
    sizes: list[int] = []
    queries: set[str] = set()
    for item in ordered:
        if all(len(kept) >= max_docs for kept in halves.values()):
            break
        key = _norm(item.query)
        if not key or key in queries:
            continue
        shingles = _shingles(item.document, language)
        shared: dict[int, int] = {}
        for s in shingles:
            for kept in postings.get(s, ()):
                shared[kept] = shared.get(kept, 0) + 1
        if any(n >= CONTAINMENT * min(len(shingles), sizes[k]) for k, n in shared.items()):
            continue
        # a family is decided over both halves, so the half that is full still blocks its members' siblings
        queries.add(key)
        index = len(sizes)
        sizes.append(len(shingles))
        for s in shingles:
            postings.setdefault(s, []).append(index)
        target = halves[half(item.name)]
        if len(target) < max_docs:
            target.append(item)
    return halves


def write_packaged(folder: Path, items: list[Item]) -> Path:
    """A gzip'd BEIR folder: corpus.jsonl.gz, queries.jsonl.gz, qrels/test.tsv (each query's own item)."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    items = sorted(items, key=lambda it: it.name)

    def dump(path: Path, rows: list[dict[str, str]]) -> None:
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
        path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))  # mtime 0: same bytes on every build

    dump(folder / "corpus.jsonl.gz", [{"_id": it.name, "text": it.document} for it in items])
    dump(folder / "queries.jsonl.gz", [{"_id": f"q:{it.name}", "text": it.query} for it in items])
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q:{it.name}\t{it.name}\t1\n" for it in items), encoding="utf-8")
    return folder


def unpack(name: str, out: Path, root: Path = PACKAGED) -> Path:
    """The committed set `name` as a plain BEIR folder in `out`."""
    source = root / name
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    for part in ("corpus", "queries"):
        (out / f"{part}.jsonl").write_bytes(gzip.decompress((source / f"{part}.jsonl.gz").read_bytes()))
    shutil.copyfile(source / "qrels" / "test.tsv", out / "qrels" / "test.tsv")
    return out

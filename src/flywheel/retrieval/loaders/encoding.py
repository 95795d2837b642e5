"""Which legacy encoding a file that is not UTF-8 is in. Many byte strings decode without error as GB18030,
Big5 and Shift-JIS alike (a Big5 or Shift-JIS file read as GB18030 gives mojibake such as 羉砰呼 or 搶嫗搒偺),
so every encoding that decodes the start of the file is scored by the share of its non-ASCII characters that
are common in the languages it is used for: the 3,755 level-1 GB2312 characters, the 5,401 frequent Big5 ones,
the 2,965 level-1 JIS kanji, kana (Shift-JIS only), the 2,350 KS X 1001 Hangul syllables (EUC-KR only) and
CJK punctuation. The right encoding scores close to 1; a wrong one reads about half its characters as rare
ones, private-use code points or half-width katakana. A tie goes to the first in ENCODINGS (Chinese first).
Also: the charset an HTML or XML file declares (`<meta charset="gbk">`)."""

from __future__ import annotations

import codecs
import re
from functools import lru_cache

ENCODINGS = ("gb18030", "big5", "shift_jis", "euc-kr")  # after UTF-8; legacy single-byte code pages never
SAMPLE_BYTES = 64 * 1024
# a declared name → the codec to read it with (a superset: GBK pages often hold GB18030-only characters)
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "x_gbk": "gb18030", "big5": "big5hkscs",
              "shift_jis": "cp932", "euc_kr": "cp949", "iso8859_1": "cp1252", "ascii": "cp1252"}
_SPACED = re.compile("[\uac00-\ud7a3] [\uac00-\ud7a3]")  # Hangul words separated by a space
_DECLARED = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)|<\?xml[^>]*?encoding\s*=\s*["']"""
                       rb"""([A-Za-z0-9._:-]+)""", re.IGNORECASE)


def _range(codec: str, leads: range, trails: list[range]) -> set[str]:
    out: set[str] = set()
    for lead in leads:
        for trail_range in trails:
            for trail in trail_range:
                try:
                    out.add(bytes((lead, trail)).decode(codec))
                except UnicodeDecodeError:
                    continue
    return out


@lru_cache(maxsize=1)
def _common() -> dict[str, frozenset[str]]:
    high = [range(0xA1, 0xFF)]
    han = (_range("gb2312", range(0xB0, 0xD8), high)  # GB2312 level 1
           | _range("big5", range(0xA4, 0xC7), [range(0x40, 0x7F), *high])  # Big5 frequently used (A440–C67E)
           | _range("euc_jp", range(0xB0, 0xD0), high))  # JIS X 0208 level 1 kanji
    punct = {chr(c) for c in range(0x3000, 0x3040)} | {chr(c) for c in range(0xFF01, 0xFF5F)} | set("·—…‘’“”")
    kana = {chr(c) for c in range(0x3041, 0x30FF)}
    hangul = _range("euc_kr", range(0xB0, 0xC9), high)
    base = frozenset(han | punct)
    return {"gb18030": base, "big5": base, "shift_jis": base | kana, "euc-kr": base | hangul}


def score(text: str, encoding: str) -> float:
    """Share of the non-ASCII characters of `text` common in `encoding`'s languages (1.0 without any). Korean
    gets a bonus for spaces between its words: EUC-KR Hangul bytes are also common GB2312 characters, but
    Chinese puts no spaces between them."""
    common = _common()[encoding]
    wide = [c for c in text if c >= "\x80"]
    if not wide:
        return 1.0
    share = sum(c in common for c in wide) / len(wide)
    if encoding == "euc-kr" and len(_SPACED.findall(text)) >= 0.08 * len(wide):
        share += 0.5
    return share


def ranked(data: bytes) -> list[str]:
    """The encodings of ENCODINGS that decode the start of `data`, the likeliest first."""
    sample = data[:SAMPLE_BYTES]
    scored: list[tuple[float, int, str]] = []
    for i, enc in enumerate(ENCODINGS):
        try:
            text = codecs.getincrementaldecoder(enc)().decode(sample, final=len(sample) == len(data))
        except UnicodeDecodeError:
            continue
        scored.append((-score(text, enc), i, enc))
    return [enc for _, _, enc in sorted(scored)]


def declared(data: bytes) -> str | None:
    """The codec for the charset an HTML page or XML file declares in its first 4 KB; None when it declares
    none or one Python does not know."""
    m = _DECLARED.search(data[:4096])
    if not m:
        return None
    name = (m.group(1) or m.group(2)).decode("ascii").lower().replace("-", "_")
    if name in _SUPERSETS:
        return _SUPERSETS[name]
    try:
        codec = codecs.lookup(name).name.replace("-", "_")
    except LookupError:
        return None
    if codec.startswith(("utf_16", "utf_32")):  # a declaration readable as ASCII is not in UTF-16 (HTML spec)
        return "utf_8"
    return _SUPERSETS.get(codec, codec)

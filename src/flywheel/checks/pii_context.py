"""Context around a candidate PII span: keywords near it, and the surroundings that make a number something
else (part of a street address, an amount or a count)."""

from __future__ import annotations

import re


def words(*names: str) -> re.Pattern[str]:
    """Context keywords: whole words for Latin script, substrings for CJK."""
    latin = [w for w in names if w.isascii()]
    cjk = [w for w in names if not w.isascii()]
    parts = []
    if latin:
        parts.append(r"(?<![a-z])(?:" + "|".join(re.escape(w) for w in latin) + r")(?![a-z])")
    if cjk:
        parts.append("|".join(re.escape(w) for w in cjk))
    return re.compile("|".join(parts), re.IGNORECASE)


def near(text: str, start: int, end: int, words: re.Pattern[str] | None, before: int = 48,
         after: int = 24) -> bool:
    if words is None:
        return False
    return bool(words.search(text, max(0, start - before), start)
                or words.search(text, end, min(len(text), end + after)))


# A number followed by a street name ("3369 24 Clarke Avenue", "1977 Main St") or preceded by an
# address word ("Suite 2001", "Box 9168") is part of an address, not a phone number or a year.
_STREET_AFTER = re.compile(
    r"[ \t]+(?:[A-Z0-9][\w'’.-]*[ \t]+){1,3}(?:street|st|avenue|ave|road|rd|lane|ln|drive|dr|boulevard|blvd|"
    r"way|court|ct|place|pl|square|sq|terrace|parkway|pkwy|highway|hwy|rue|via|calle|camino|gata|gatan|"
    r"katu|vej|straße|strasse|str|weg|platz|allee|alley|crescent|close|plaza|circle|row)\b\.?",
    re.IGNORECASE)
_ADDRESS_BEFORE = re.compile(r"(?:apt|apartment|suite|ste|unit|box|psc|floor|room|no)\.?\s*#?\s*$",
                             re.IGNORECASE)


def in_address(text: str, start: int, end: int) -> bool:
    return bool(_STREET_AFTER.match(text, end, min(len(text), end + 60))
                or _ADDRESS_BEFORE.search(text, max(0, start - 12), start))


# A bare number right before a unit or a counter ("13812345678元", "15923456789 条记录", "… rows") or after an
# amount word ("营收", "累计", "total") is a quantity: not a phone number, whatever its digits look like.
_UNIT_AFTER = re.compile(
    r"[ \t]?(?:元|块钱|美元|人民币|万|亿|千|百|个|条|次|人|位|名|笔|件|份|张|股|手|吨|克|斤|公斤|米|公里|字|行|页|"
    r"倍|台|辆|户|家|本|篇|%|(?i:rows?|records?|items?|users?|people|times|visits|views|yuan|rmb|dollars|usd|"
    r"bytes|tokens|units|shares)(?![a-z]))")
_AMOUNT_WORDS = words("金额", "营收", "收入", "总额", "共有", "共计", "合计", "累计", "总计", "数量", "样本量",
                      "市值", "余额", "访问量", "浏览量", "销量", "amount", "total", "revenue", "count", "sum",
                      "balance")


def is_quantity(text: str, start: int, end: int) -> bool:
    return bool(_UNIT_AFTER.match(text, end)) or near(text, start, end, _AMOUNT_WORDS, 12, 0)

"""Page boilerplate dropped at ingest: follow/subscribe/QR-code/share lines, cookie banners, copyright and
reprint notices, navigation menus and breadcrumbs, and reference lists (a "References" / "参考文献" section
to its end, or a run of citation-like lines). Patterns describe classes of boilerplate in English and Chinese,
not one site's wording.

    kept, dropped = strip_boilerplate(text)

`kept` has the same number of lines as `text` (dropped lines become empty), so line numbers stay true.
Lines inside fenced code blocks are never dropped. `dropped` lists (line number, kind, text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flywheel.retrieval.loaders.base import clean_inline, heading_level

# One short line whose whole purpose is to ask the reader to do something with the page or the account.
_LINE_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("subscribe", re.compile(
        r"关注(?:我们|本号|作者|[^，。！\s]{0,16}(?:公众号|号|视频号))|(?:点击|点)(?:上方|下方|文末|左下角|右下角|蓝字|卡片|名片)"
        r"|扫(?:描)?(?:下方|上方|文末)?(?:二维码|码)|长按(?:识别|扫码|关注)|识别(?:图中|下方)?二维码|设为?星标|标星"
        r"|(?:后台|公众号)回复|加入?(?:我们的)?(?:技术|读者|粉丝)?(?:交流)?群|添加(?:小助手|微信)"
        r"|\bsubscribe\b|\bnewsletter\b|\bsign up for\b|\bfollow (?:us|me)\b|\bjoin (?:our|the) (?:mailing list|"
        r"community|discord|slack)\b|\bget (?:the latest|updates)\b", re.IGNORECASE)),
    ("share", re.compile(
        r"(?:点赞|在看|转发|分享|收藏)[、，/ ]*(?:点赞|在看|转发|分享|收藏|支持)|点个?(?:赞|在看)|一键三连|欢迎(?:转发|分享|留言|点赞|关注)"
        r"|分享到朋友圈|阅读原文|\bshare (?:this|on|via)\b|\btweet this\b|\bclick to share\b", re.IGNORECASE)),
    ("cookie", re.compile(
        r"^(?=.*\bcookies?\b)(?=.*\b(?:uses?|accept|consent|settings|policy|preferences)\b)"
        r"|\b(?:accept|reject) all\b|使用\s*cookie|cookie\s*(?:政策|设置)", re.IGNORECASE)),
    ("copyright", re.compile(
        r"版权(?:归|声明|所有)|转载请|未经(?:授权|许可).{0,8}转载|侵删|联系.{0,6}删除|本文(?:转载|来源|来自|首发)|免责声明"
        r"|\ball rights reserved\b|^\s*(?:©|\(c\)|copyright\b)", re.IGNORECASE)),
]
_MAX_LINE = {"zh": 60, "en": 160}  # a longer line is prose that happens to mention these words
_REFERENCE_HEADING = re.compile(
    r"^(?:参考(?:文献|资料|链接|阅读)|引用(?:文献)?|延伸阅读|相关(?:阅读|链接|文章)|推荐阅读|往期(?:推荐|回顾|精选|文章)"
    r"|references?|bibliography|works cited|further reading|related (?:posts|articles|reading)|sources|"
    r"see also|read more)\s*[:：]?$", re.IGNORECASE)
# One entry of a reference list: "[1] …", "1. Author, Title. 2021", a bare link line.
_CITATION = re.compile(
    r"^\s*(?:\[\d{1,3}\]|\d{1,3}[.)、]|[-*•])\s*.*(?:https?://|doi:|arxiv|et al\.|\b(?:19|20)\d{2}\b[.)]|《.+》)",
    re.IGNORECASE)
_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”|「[^」]*」|`[^`]*`")
_NAV_SPLIT = re.compile(r"\s+[|｜·•›»>/]\s+|\s*[｜›»]\s*")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_NAV_MARK = re.compile(r"[|｜·•›»>/]")
_HAN = re.compile(r"[\u3400-\u9fff]+")


@dataclass(frozen=True)
class Dropped:
    line: int  # 1-based
    kind: str  # subscribe | share | cookie | copyright | navigation | references
    text: str


def _line_kind(line: str) -> str | None:
    s = line.strip()
    if not s or s.startswith("|"):  # a table row is content
        return None
    han = 0 if s.isascii() else sum(map(len, _HAN.findall(s)))
    if len(s) <= _MAX_LINE["zh" if han * 3 >= len(s) else "en"]:
        said = _QUOTED.sub("", s)  # "点击上方…" in quotes is a mention (as in these docs), not a call to action
        for kind, rule in _LINE_RULES:
            if rule.search(said):
                return kind
    if _is_navigation(s):
        return "navigation"
    return None


def _is_navigation(s: str) -> bool:
    """A menu or breadcrumb: three or more short labels separated by | · › » / (not a Markdown table row)."""
    if s.startswith("|") or s.endswith("|") or "`" in s or not _NAV_MARK.search(s):
        return False  # (without a separator character there is one label)
    parts = [p.strip() for p in _NAV_SPLIT.split(clean_inline(s))]
    return len(parts) >= 3 and all(0 < len(p) <= 16 and not re.search(r"[。！？.!?,，]$", p) for p in parts)


def strip_boilerplate(text: str) -> tuple[str, list[Dropped]]:
    lines = text.split("\n")
    dropped: list[Dropped] = []
    in_fence = False
    ref_level: int | None = None  # inside a reference section started by a heading of this level
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
            if ref_level is None:
                continue
        if in_fence and ref_level is None:
            continue
        level = heading_level(lines, i)
        if level is not None:
            if ref_level is not None and level <= ref_level:
                ref_level = None
            if ref_level is None and _REFERENCE_HEADING.match(clean_inline(line)):
                ref_level = level
        kind = _line_kind(line) or ("references" if ref_level is not None else None)
        if kind is not None and line.strip():
            dropped.append(Dropped(i + 1, kind, line.strip()[:200]))
    dropped.extend(_citation_runs(lines, {d.line for d in dropped}))
    gone = {d.line for d in dropped}
    kept = "\n".join("" if i + 1 in gone else line for i, line in enumerate(lines))
    return kept, sorted(dropped, key=lambda d: d.line)


def _citation_runs(lines: list[str], gone: set[int]) -> list[Dropped]:
    """Three or more consecutive citation-like lines outside a reference section: a list without a heading."""
    out: list[Dropped] = []
    run: list[int] = []
    for i, line in enumerate([*lines, ""]):
        if i < len(lines) and i + 1 not in gone and line.strip() and _CITATION.match(line) and len(line) < 300:
            run.append(i)
            continue
        if len(run) >= 3:
            out.extend(Dropped(j + 1, "references", lines[j].strip()[:200]) for j in run)
        run = []
    return out


def summarize(dropped: list[Dropped]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in dropped:
        counts[d.kind] = counts.get(d.kind, 0) + 1
    return counts


def line_ranges(numbers: list[int]) -> str:
    """'3, 40–55' for [3, 40, 41, …, 55]."""
    out: list[str] = []
    for n in sorted(set(numbers)):
        if out and out[-1].split("–")[-1] == str(n - 1):
            out[-1] = f"{out[-1].split('–')[0]}–{n}"
        else:
            out.append(str(n))
    return ", ".join(out)


def record(meta: dict, dropped: list[Dropped]) -> None:
    """What was dropped, in a document's metadata: counts by kind and the file's line numbers."""
    if dropped:
        meta["boilerplate"] = summarize(dropped)
        meta["boilerplate_lines"] = line_ranges([d.line for d in dropped])

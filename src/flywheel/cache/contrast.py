"""Rules that veto a semantic-cache candidate outright: the two questions are near-duplicates that ask
opposite or different things, so serving one's answer for the other is wrong whatever the embedding says.

A semantic candidate is by construction close to the query (cosine ≥ threshold), so what the two do NOT share
carries the difference. Both are read with full-width forms folded (ＧＰＴ４ → GPT4, ２０２３ → 2023; keys.fold_width).
The rules:

- **forms**: a question about the characters' forms themselves (全角/半角, full-width, Unicode, code point),
  whose width forms are therefore kept, and another with other forms ("把 ＡＢＣ 转成半角" / "把 ABC 转成半角");

- **language**: the two are written in languages of different scripts ("How do I enable SSO?" / "如何启用 SSO？",
  "Как включить SSO?"), or in different Chinese scripts ("如何设置模型版本" / "如何設置模型版本"): the answer is
  in the asker's language (two Latin-script languages are left to the verifier: marker words are too loose);
- **identifiers**: the two mention different e-mail addresses or URLs, or only one mentions any ("why was the
  order for ann@example.com cancelled" / "… for bob@example.com …"): one user's answer is not another's;
- **numbers**: each side has a value the other does not ("within 7 days" / "within 30 days", "seven" /
  "thirty", "七天" / "三十天"), digits, English number words and Chinese numerals alike, and also relative
  dates ("last year" / "this year", 去年 / 今年, 昨天 / 今天) and the unit of a rate or a duration ("per minute" /
  "per hour", 每分钟 / 每秒);
- **negation**: one side negated and the other not ("is it rate limited" / "is it not rate limited");
- **opposites**: one side has a word whose opposite only the other side has: a lexicon of common opposites
  ("on"/"off", "start"/"stop", "before"/"after", "minimum"/"maximum", 开/关, 启用/禁用 …) and, for English,
  words that differ only by an opposing prefix ("lock"/"unlock", "enable"/"disable", "import"/"export",
  "upgrade"/"downgrade");
- **names**: a name replaced by another at the same place ("the Pro plan" / "the Enterprise plan", "on Linux" /
  "on Windows", 北京 / 上海, 张小明 / 王小红): capitalised or alphanumeric tokens, the first word of a sentence
  excepted; words jieba tags as proper nouns (people, places, organisations, other names) in Chinese; and any
  Chinese word in a sentence of a Latin-script language ("the population of 北京" / "… of 上海"), which the
  default English embedder places close together whatever they say.

A number or a name only one side mentions is left to the learned verifier (verifier.py), which scores what
the rules let through. The rules cost some real paraphrases a hit; a cache prefers a miss to a wrong answer.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from flywheel.cache.keys import WIDTH_FORM, fold_width
from flywheel.cache.verifier import _expand
from flywheel.text import detect_language, fold_traditional
from flywheel.text.language import LATIN
from flywheel.text.tokenize import _segmenter

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W{_CJK}]+(?:['’.,:/][^\W{_CJK}]+)*", re.UNICODE)  # a CJK run: cut into words
# jieba's part-of-speech tags of proper nouns: person (nr, nrfg, nrt), place (ns), organisation (nt), other (nz)
_PROPER_NOUN_TAGS = frozenset({"nr", "nrfg", "nrt", "ns", "nt", "nz"})
_SHORT_REPLACEMENT = 3  # tokens a side: a longer replaced run is a rephrasing, not a name swapped for another
_SPELLING_RATIO = 0.75  # character similarity above which two names are one name spelled two ways
_ABBREVIATED_NO = re.compile(r"\bno\.\s*(?=\d)", re.IGNORECASE)  # "No. 2": a number, not a negation
# an e-mail address or a URL: a question about one person's mailbox or one page is not about another's
_IDENTIFIER = re.compile(
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+|\b(?:https?|ftp)://[^\s<>\"'）】，。]+",
    re.IGNORECASE,
)
_CJK_CHAR = re.compile(rf"[{_CJK}]")
_DIGITS = re.compile(r"\d+(?:[.,:/]\d+)*")
_SENTENCE_END = re.compile(r"[.?!:;]+(?:\s+|$)|\s*[。？！：；]")
_POSSESSIVE = re.compile(r"['’]s$")
_CN_NUMERAL = re.compile(r"[零〇一二两三四五六七八九十百千万]+")
_CN_DIGIT = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CN_UNIT = {"十": 10, "百": 100, "千": 1000}
_UNITS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
    "thousand": 1000,
    "million": 10**6,
    "billion": 10**9,
}
_NUMBER_WORDS = {**{w: i for i, w in enumerate(_UNITS)}, **_TENS, "dozen": 12, "half": 0.5, "twice": 2}
_NEGATIONS = frozenset(["not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "without"])
# (没有 before 没: each occurrence counted once; 别 and 非 left out: 区别 "difference", 非常 "very")
_NEGATIONS_ZH = ("没有", "不", "没", "未", "无", "勿")
# words that hold a negation character without negating ("不同" different, "无论" whatever, "未来" future …)
_NOT_NEGATING_ZH = ("不同", "不过", "不错", "不管", "不仅", "不断", "无论", "无线", "未来", "没关系")
_A_NOT_A = re.compile(rf"([{_CJK}])[不没]\1")
# Opposite prefixes: two words that are one stem behind two different prefixes of a pair are opposites.
_PREFIX_PAIRS = (
    ("", "un"),
    ("", "dis"),
    ("", "de"),
    ("", "non"),
    ("", "in"),
    ("", "im"),
    ("", "il"),
    ("", "ir"),
    ("", "anti"),
    ("en", "dis"),
    ("en", "de"),
    ("in", "ex"),
    ("im", "ex"),
    ("in", "de"),
    ("in", "out"),
    ("up", "down"),
    ("over", "under"),
    ("pre", "post"),
    ("min", "max"),
)
_OPPOSITES_EN = (
    "on off|in out|start stop|open close|show hide|add remove|add delete|create delete|insert delete|"
    "before after|first last|min max|minimum maximum|most least|more less|more fewer|higher lower|high low|"
    "larger smaller|large small|big small|long short|fast slow|old new|early late|earlier later|"
    "allow deny|allow block|accept reject|approve reject|accept decline|buy sell|send receive|push pull|"
    "read write|left right|upper lower|above below|inside outside|internal external|public private|"
    "include exclude|input output|true false|pass fail|success failure|succeed fail|win lose|join leave|"
    "attach detach|pause resume|plus minus|positive negative|login logout|signin signout|"
    "increase decrease|increase reduce|raise lower|grant revoke|always never|"
    "maximise minimise|maximize minimize|ascending descending|import export|upload download|inbound outbound|"
    "encrypt decrypt|compress decompress|expand collapse|enter exit|arrive leave|permanent temporary|"
    "synchronous asynchronous|sync async|online offline|valid invalid|required optional|free paid|cheap expensive"
)
_OPPOSITES_ZH = (
    "启用 禁用|开启 关闭|打开 关闭|启动 停止|开始 结束|开始 停止|上传 下载|导入 导出|添加 删除|增加 删除|增加 减少|"
    "升级 降级|之前 之后|以前 以后|以上 以下|最大 最小|最多 最少|最高 最低|最早 最晚|允许 禁止|允许 拒绝|接受 拒绝|"
    "锁定 解锁|加密 解密|订阅 退订|登录 退出|登录 登出|登入 登出|显示 隐藏|成功 失败|公开 私有|输入 输出|绑定 解绑|"
    "冻结 解冻|连接 断开|包含 排除|必填 可选|免费 付费|同步 异步|在线 离线|永久 临时|升序 降序|展开 折叠|"
    "开 关|增 减|加 减|大 小|多 少|高 低|长 短|快 慢|前 后|早 晚|新 旧|买 卖|左 右|内 外|入 出|升 降|是 否|收 发|"
    "正 负|真 假|对 错|上 下"
)


# Relative dates: a value like a number ("last year" is not "this year"), written as (unit, offset).
_RELATIVE_EN = re.compile(r"\b(last|previous|past|this|current|next|coming)\s+(year|quarter|month|week)\b"
                          r"|\b(yesterday|today|tonight|tomorrow)\b", re.IGNORECASE)
_OFFSET_EN = {"last": -1, "previous": -1, "past": -1, "this": 0, "current": 0, "next": 1, "coming": 1,
              "yesterday": -1, "today": 0, "tonight": 0, "tomorrow": 1}
_RELATIVE_ZH = {
    "前年": ("year", -2), "去年": ("year", -1), "今年": ("year", 0), "本年": ("year", 0), "明年": ("year", 1),
    "后年": ("year", 2), "前天": ("day", -2), "昨天": ("day", -1), "昨日": ("day", -1), "今天": ("day", 0),
    "今日": ("day", 0), "明天": ("day", 1), "明日": ("day", 1), "后天": ("day", 2),
    "上周": ("week", -1), "上星期": ("week", -1), "上个星期": ("week", -1), "本周": ("week", 0),
    "这周": ("week", 0), "这个星期": ("week", 0), "下周": ("week", 1), "下星期": ("week", 1),
    "下个星期": ("week", 1), "上月": ("month", -1), "上个月": ("month", -1), "本月": ("month", 0),
    "这个月": ("month", 0), "下月": ("month", 1), "下个月": ("month", 1), "上季度": ("quarter", -1),
    "上个季度": ("quarter", -1), "本季度": ("quarter", 0), "这个季度": ("quarter", 0), "下季度": ("quarter", 1),
    "下个季度": ("quarter", 1),
}
_RELATIVE_ZH_RX = re.compile("|".join(sorted(_RELATIVE_ZH, key=len, reverse=True)))
# The unit of a rate or a duration: after "per", "a", "each", "every" or a number ("per minute", "30 days",
# "requests/min", 每分钟, 7天); a unit alone ("the first day") is not a value.
_UNIT_EN = {"sec": "second", "second": "second", "min": "minute", "minute": "minute",
            "h": "hour", "hr": "hour", "hour": "hour", "day": "day", "week": "week", "month": "month",
            "quarter": "quarter", "year": "year", "yr": "year"}
_RATE_EN = re.compile(r"(?:\b(?:per|a|an|each|every)\s+|\d\s*|/\s*)(second|minute|hour|day|week|month|quarter|"
                      r"year|sec|min|hr|yr|h)s?\b", re.IGNORECASE)
_UNIT_ZH = {"秒": "second", "秒钟": "second", "分钟": "minute", "小时": "hour", "天": "day", "日": "day",
            "周": "week", "星期": "week", "礼拜": "week", "月": "month", "个月": "month", "季度": "quarter",
            "年": "year"}
_RATE_ZH = re.compile(r"(?:每|[0-9零〇一二两三四五六七八九十百千万]个?)(秒钟|秒|分钟|小时|天|日|周|星期|礼拜|个月|月|季度|年)")


def _dates(text: str) -> frozenset[str]:
    """Relative dates as (unit, offset): "last year" → year-1, 明天 → day+1."""
    found = {f"{m.group(2).lower()}{_OFFSET_EN[m.group(1).lower()]:+d}" if m.group(1)
             else f"day{_OFFSET_EN[m.group(3).lower()]:+d}" for m in _RELATIVE_EN.finditer(text)}
    found |= {"{}{:+d}".format(*_RELATIVE_ZH[m.group()]) for m in _RELATIVE_ZH_RX.finditer(text)}
    return frozenset(found)


def _units(text: str) -> frozenset[str]:
    """The units of the rates and durations in `text` ("per minute" → minute, 7天 → day)."""
    return frozenset({_UNIT_EN[m.group(1).lower()] for m in _RATE_EN.finditer(text)}
                     | {_UNIT_ZH[m.group(1)] for m in _RATE_ZH.finditer(text)})


def _language(query: str, cached: str) -> bool:
    """Written in different languages (of different scripts), or one in traditional Chinese characters where the
    other has their simplified forms (設置 / 设置): an answer is written for the language it was asked in."""
    a, b = detect_language(query), detect_language(cached)
    if a and b and a != b and not (a in LATIN and b in LATIN):  # marker words tell Latin languages apart
        return True  # too loosely for a veto ("a", "as"): English against French is left to the verifier
    for x, y in ((query, cached), (cached, query)):
        for ch in set(_CJK_CHAR.findall(x)):
            simple = fold_traditional(ch)
            if simple != ch and simple in y and ch not in y:
                return True
    return False


def _pairs(spec: str) -> tuple[tuple[str, str], ...]:
    return tuple((a, b) for a, b in (p.split() for p in spec.split("|")))


_EN_PAIRS = _pairs(_OPPOSITES_EN)
_ZH_PAIRS = _pairs(_OPPOSITES_ZH)


def _stem(word: str) -> str:
    """A light English stem ("stopped", "stops", "stopping" → "stop"; "enabled", "enable" → "enabl"): enough
    to compare a word with the lexicon and with its prefixed opposite."""
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: -len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
                word = word[:-1]  # stopp → stop
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def _cn_number(run: str) -> float:
    """The value of a run of Chinese numerals ("三十" → 30, "二百零五" → 205, "七" → 7)."""
    total, section, digit = 0, 0, None
    for ch in run:
        if ch in _CN_DIGIT:
            digit = _CN_DIGIT[ch]
        elif ch in _CN_UNIT:
            section += (1 if digit is None else digit) * _CN_UNIT[ch]
            digit = None
        else:  # 万
            total = (total + section + (digit or 0)) * 10000
            section, digit = 0, None
    return float(total + section + (digit or 0))


def _numbers(text: str, words: list[str]) -> frozenset[float | str]:
    found: set[float | str] = set()
    for n in _DIGITS.findall(text):
        flat = n.replace(",", "")
        try:
            found.add(float(flat))
        except ValueError:
            found.add(flat)  # a time or a version: compared as written
    found |= {float(_NUMBER_WORDS[w]) for w in words if w in _NUMBER_WORDS}
    for run in _CN_NUMERAL.findall(text):
        if run not in ("万", "千", "百"):  # 千万 "by all means", a bare unit: not a count
            found.add(_cn_number(run))
    return frozenset(found)


def _negations(text: str, words: list[str]) -> int:
    count = sum(1 for w in words if w in _NEGATIONS) - len(_ABBREVIATED_NO.findall(text))
    rest = _A_NOT_A.sub(r"\1", text)  # 能不能 / 有没有 / 可不可以 ask a question, they do not negate
    for word in _NOT_NEGATING_ZH:
        rest = rest.replace(word, " ")
    for mark in _NEGATIONS_ZH:
        count += rest.count(mark)
        rest = rest.replace(mark, " ")
    return count


@dataclass(frozen=True)
class _Parsed:
    text: str  # contractions spelled out
    tokens: tuple[str, ...]  # lower-cased; a CJK run is cut into its words
    # per token: a name (capitalised or alphanumeric, not the first word of a sentence; a CJK word that jieba
    # tags a proper noun, or any CJK word in a sentence of a Latin-script language: "the population of 北京")
    names: tuple[bool, ...]
    tags: tuple[str, ...]
    stems: frozenset[str]
    numbers: frozenset[float | str]
    dates: frozenset[str]  # relative dates: compared with each other, not with numbers ("yesterday" / "Oct. 24")
    units: frozenset[str]  # units of rates and durations
    negations: int
    identifiers: frozenset[str]


@lru_cache(maxsize=4096)
def _parse(text: str) -> _Parsed:
    expanded = _expand(text)
    raw: list[str] = []
    names: list[bool] = []
    tags: list[str] = []  # jieba's part-of-speech tag of each CJK word ("" for other tokens)
    # A Chinese (or Japanese) sentence: its Latin words name something, whatever their case ("gpt-4o 的上下文长度" /
    # "claude 的上下文长度"), the first one too ("Kubernetes 怎么部署？"); its own words only when jieba tags them a
    # proper noun. Elsewhere a Chinese word names something ("the population of 北京"), and the first word of each
    # sentence is capitalised anyway: not a name.
    cjk = _CJK_CHAR.search(expanded) is not None and detect_language(expanded) not in LATIN
    start = not cjk
    for m in _TOKEN.finditer(expanded):
        if _CJK_CHAR.match(m.group()):
            for word, tag in _cjk_words(m.group()):
                raw.append(word)
                tags.append(tag)
                names.append(not cjk or tag in _PROPER_NOUN_TAGS)
        else:
            word = _POSSESSIVE.sub("", m.group())  # "the API's limit" names the API
            raw.append(word)
            tags.append("")
            names.append(_is_latin(word) if cjk else not start and _is_name(word))
        start = not cjk and bool(_SENTENCE_END.match(expanded, m.end()))
    tokens = tuple(w.lower() for w in raw)
    words = [t for t in tokens if not _CJK_CHAR.match(t)]
    return _Parsed(
        expanded,
        tokens,
        tuple(names),
        tuple(tags),
        frozenset(_stem(w) for w in words),
        _numbers(expanded, words),
        _dates(expanded),
        _units(expanded),
        _negations(expanded, words),
        frozenset(m.group().lower().rstrip(".,;:!?") for m in _IDENTIFIER.finditer(expanded)),
    )


@lru_cache(maxsize=4096)
def _cjk_words(run: str) -> tuple[tuple[str, str], ...]:
    """The words of a CJK run (jieba, the process's one instance), each with its part-of-speech tag."""
    _segmenter()  # jieba initialised once, quietly
    from jieba import posseg

    return tuple((p.word, p.flag) for p in posseg.lcut(run, HMM=True) if p.word.strip())


def warm_tagger() -> None:
    """Load jieba and its part-of-speech tagger now (a second or two, once per process) instead of on the first
    Chinese question the semantic cache compares: `flywheel serve` calls it beside the requests at start."""
    _cjk_words("北京")


def _is_latin(word: str) -> bool:
    letter = next((c for c in word if c.isalpha()), "")
    return letter.isascii() and letter != ""


def _is_name(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    if not letters or not letters[0].isascii() or word == "I":
        return False
    has_digit = any(c.isdigit() for c in word)
    return any(c.isupper() for c in word) or (has_digit and len(word) > 1)


def _opposite_stems(a: str, b: str) -> bool:
    for p, q in _PREFIX_PAIRS:
        for x, y in ((a, b), (b, a)):
            if x.startswith(p) and y.startswith(q) and len(x) - len(p) >= 3 and x[len(p) :] == y[len(q) :]:
                return True
    return False


_EN_STEM_PAIRS = tuple((_stem(a), _stem(b)) for a, b in _EN_PAIRS)  # stemmed once, not per candidate


def _has_opposites(q_only: frozenset[str], c_only: frozenset[str]) -> bool:
    for a, b in _EN_STEM_PAIRS:
        if (a in q_only and b in c_only) or (b in q_only and a in c_only):
            return True
    return any(_opposite_stems(a, b) for a in q_only for b in c_only)


def _has_opposites_zh(q: str, c: str) -> bool:
    for a, b in _ZH_PAIRS:
        if (a in q and b in c and a not in c and b not in q) or (
            b in q and a in c and b not in c and a not in q
        ):
            return True
    return False


def _renamed(q: _Parsed, c: _Parsed) -> bool:
    """A name replaced by another at the same place ("the Pro plan" / "the Enterprise plan"). Only short aligned
    replacements of names that are not spellings of each other ("U.K." / "UK", "Sept" / "September") count: a
    rephrased sentence that mentions a name elsewhere is left to the verifier."""
    ops = difflib.SequenceMatcher(None, q.tokens, c.tokens, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in ops:
        if tag != "replace" or max(i2 - i1, j2 - j1) > _SHORT_REPLACEMENT:
            continue
        q_names = {q.tokens[i] for i in range(i1, i2) if q.names[i]} - set(c.tokens)
        c_names = {c.tokens[j] for j in range(j1, j2) if c.names[j]} - set(q.tokens)
        if q_names and c_names and not any(_same_name(a, b) for a in q_names for b in c_names):
            return True
        if i2 - i1 == j2 - j1 == 1 and (_cjk_renamed(q, i1, c, j1) or _cjk_renamed(c, j1, q, i1)):
            return True
    return False


def _cjk_renamed(a: _Parsed, i: int, b: _Parsed, j: int) -> bool:
    """A Chinese proper noun replaced, one word for one, by a Chinese noun jieba does not tag as a name (华为 /
    小米, 支付宝 / 微信): Chinese has no capitals to tell a name by, and jieba's tags miss many. (Not in English:
    there a name replaced by a description, "Mr. Singleton" / "the prisoner", is mostly a paraphrase, as MRPC
    shows.)"""
    return (a.tags[i] in _PROPER_NOUN_TAGS and b.tags[j] not in _PROPER_NOUN_TAGS
            and b.tags[j].startswith(("n", "vn")) and not _same_name(a.tokens[i], b.tokens[j]))


def _same_name(a: str, b: str) -> bool:
    a, b = _fold(a), _fold(b)
    if a.startswith(b) or b.startswith(a):
        return True
    return difflib.SequenceMatcher(None, a, b).ratio() >= _SPELLING_RATIO


def _fold(name: str) -> str:
    """A name without accents, case and punctuation ("Martínez" → "martinez", "U.K." → "uk")."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", name.lower()) if ch.isalnum())


def contradiction(query: str, cached: str) -> str | None:
    """Why `query` and the `cached` question ask different things ("forms", "language", "identifiers",
    "numbers", "negation", "opposites", "names"), or None when no rule sees a difference. Both are read with
    their width forms folded (keys.fold_width: ＧＰＴ４ is GPT4, ２０２３ is 2023)."""
    query, cached = fold_width(query), fold_width(cached)  # entries saved before the fold kept their width forms
    if set(WIDTH_FORM.findall(query)) != set(WIDTH_FORM.findall(cached)):
        return "forms"  # a question about the characters' forms ("把 ＡＢＣ 转成半角") keeps them: they differ
    if _language(query, cached):
        return "language"
    q, c = _parse(query), _parse(cached)
    if q.identifiers != c.identifiers:
        return "identifiers"
    if any(a - b and b - a for a, b in ((q.numbers, c.numbers), (q.dates, c.dates), (q.units, c.units))):
        return "numbers"
    if q.negations % 2 != c.negations % 2:
        return "negation"
    q_only, c_only = q.stems - c.stems, c.stems - q.stems
    if (q_only and c_only and _has_opposites(q_only, c_only)) or _has_opposites_zh(q.text, c.text):
        return "opposites"
    if _renamed(q, c):
        return "names"
    return None

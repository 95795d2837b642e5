"""What the `extractive` model matches a question with: content terms (stemmed English words, jieba Chinese
words), the question's names, and what in a source's text does not count.

- **Names** are whole: a name in the question (`_names`: a Latin word in a Chinese question, a capitalised word
  or a number in an English one) matches a source word or identifier only as a whole, never as a piece of a
  longer identifier ("CI" is not the `ci` of `bootstrap_ci`). Ordinary words still match identifier pieces
  ("register a provider" finds `register_provider`).
- **Examples are mentions, not content**: quoted text that is itself a question (“发票什么时候发送”,
  "How do I …?", `"发票怎么开？"`), Chinese inside inline code (an example string) and inline code that is a
  call or an assignment (`llm.add(pattern, model=None)`) match nothing but the name called or assigned.
- **Markup is not content**: link targets and URLs match nothing (a link's text does).
- **The user's own details are not the question**: personal data (`without_personal` in flywheel.checks.pii:
  what the `pii` guard masks by default — e-mail addresses, phone numbers, IDs, cards, secrets) and the placeholders a `redact` guard puts in its
  place (`<EMAIL_ADDRESS_1_qhzvk>`) say how to reach the user, not what they ask; and the words that ask to be
  reached ("mail me at", "请发邮件到…联系我", `CONTACT_WORDS`) are not held against a source (see extractive.py).
- **Prose**: a unit's text without inline code, links and URLs. Its script says whether the unit can
  answer a question at all: an English question's words found in a Chinese sentence can only be its code and
  names, and the reverse (see extractive.py).
"""

from __future__ import annotations

import itertools
import re

from flywheel.text import (
    QUESTION_WORDS,
    STOPWORDS,
    detect_language,
    fold_traditional,
    normalize,
    segment,
    stem,
)
from flywheel.text.language import LATIN

INLINE_CODE = re.compile(r"`[^`\n]+`")
HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[a-z0-9][a-z0-9_]*")
_ACRONYM = re.compile(r"\b([A-Z]{2,6})s?\b")  # US, HR, SLAs
_NAME_LIKE = re.compile(r"\b(?:[A-Z][A-Za-z0-9]*|\d+(?:\.\d+)?)\b")  # Oracle, GenOS, CEO, 2024
# Quoted text, by the quote marks both languages use (straight double quotes only around a span of one line).
_QUOTED = re.compile(r"“[^”\n]{1,80}”|「[^」\n]{1,80}」|『[^』\n]{1,80}』|\"[^\"\n]{1,80}\"")
# A question as quoted text: it ends with a question mark, opens with an English question word, or holds a
# Chinese interrogative.
_QUESTION_LIKE = re.compile(r"[?？]\W*$|^\W*(?:how|what|why|when|where|which|who|can|does|do|is|are)\b"
                            r"|什么|什麼|怎么|怎麼|怎样|怎樣|如何|为什么|為什麼|为何|為何|哪|吗|嗎|多少|是否|能否",
                            re.IGNORECASE)
# A call or an assignment in inline code (`llm.add(pattern, reply, model=None)`): its arguments are not what
# the sentence is about.
_CALL = re.compile(r"\w\(|\w=")
_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\n]*\)")
_URL = re.compile(r"\b(?:https?://|www\.)\S+")

# What questions are phrased with rather than about (plus a few Chinese question phrases jieba keeps whole).
# The Chinese frame words carry what English says with function words the lists already drop: 在…的情况下 / 以后 /
# 之前 (in case of, after, before), 没有 (no, without), 需要 / 应该 / 可能 / 必须 (need, should, may, must),
# 发生 (happen), 知道 / 告诉 / 想要 / 使用 (know, tell, want, use). As terms they matched any sentence that
# says "哪种情况" or "没有", whatever it was about.
STOP = STOPWORDS | QUESTION_WORDS | frozenset({"有什么", "什么样", "哪种", "几个", "是不是", "work", "happen", "mean",
                                                "情况", "情况下", "以后", "之后", "以前", "之前", "没有", "需要", "应该",
                                                "可能", "必须", "发生", "知道", "告诉", "想要", "使用"})


def _match_form(word: str) -> str:
    """A word's stem without a final s. Snowball keeps the s of a plural without a vowel before it (llms, pdfs,
    gpus) and takes one that belongs to the word (alias → alia, aliases → alias): matching ignores it on both
    sides, so "model aliases" finds "alias" and "PDFs" finds "PDF"."""
    t = stem(word)
    return t[:-1] if len(t) > 2 and t.endswith("s") and t.isalpha() else t


def words(text: str, parts: bool = True) -> list[str]:
    """Stemmed English words; an identifier (`register_provider`) also counts as its parts unless `parts` is
    False."""
    out: list[str] = []
    for w in _WORD.findall(text.lower()):
        pieces = w.split("_") if parts and "_" in w else []
        out.extend(t for t in (_match_form(x) for x in [w, *pieces] if x and x not in STOP) if t not in STOP)
    return out


def pairs(found: list[str]) -> set[tuple[str, str]]:
    return set(itertools.pairwise(found))


def terms(text: str) -> set[str]:
    """Content terms: stemmed English words and Chinese words of two or more characters (jieba, traditional
    characters folded to simplified, as the keyword tokens are: 發票 matches 发票), without function words."""
    lowered = text.lower()
    out = set(words(lowered))
    for run in HAN_RUN.findall(fold_traditional(lowered)):
        # Single characters (词, 下, 用) are too ambiguous to count as matching content.
        out.update(w for w in segment(run) if len(w) > 1 and w not in STOP)
    return out


# A Chinese question asks where / when / why / how with an interrogative and the kind of answer it wants
# (什么地方, 哪个时间, 什么原因, 用什么方法): that noun is the question's wh-word, which English drops as a
# question word, not what it is about ("赫哲语在什么地方比较通行？" is not about some 地方).
_INTERROGATIVES = frozenset({"什么", "哪个", "哪些", "哪种", "哪一种", "何种", "什么样", "啥"})
_ASKED_KINDS = frozenset({"地方", "地点", "位置", "地区", "时间", "时候", "时刻", "日期", "原因", "缘故", "理由", "方法",
                          "办法", "方式", "途径"})


def asked_kinds(question: str) -> set[str]:
    """The question's nouns that only say which kind of answer it asks for: one of place, time, reason or
    manner right after an interrogative (什么地方 is "where")."""
    out: set[str] = set()
    for run in HAN_RUN.findall(fold_traditional(question.lower())):
        for before, word in itertools.pairwise(segment(run)):
            if before in _INTERROGATIVES and word in _ASKED_KINDS:
                out.add(word)
    return out


def joined_characters(question: str) -> set[str]:
    """The question's Chinese characters that jieba cut one by one next to each other (function words aside),
    joined again: a word its dictionary lacks (年假 → 年 假), or no word at all (先做 → 先 做). They match a
    source that writes them together, and are not held against one that does not."""
    out: set[str] = set()
    for run in HAN_RUN.findall(fold_traditional(question.lower())):
        joined = ""
        for w in [*segment(run), ""]:
            if len(w) == 1 and w not in STOP:
                joined += w
                continue
            if len(joined) > 1:
                out.add(joined)
            joined = ""
    return out


def names(question: str, language: str) -> set[str]:
    """Terms of the question that name something, whole (`min_relevance`, not its pieces): Latin words in a
    Chinese question; capitalised words (Oracle, GenOS, CEO) and numbers in an English one, except its first
    word (capitalised anyway)."""
    if language == "zh":
        return set(words(" ".join(re.findall(r"[A-Za-z0-9][A-Za-z0-9_.-]*", question)), parts=False))
    found = [m for m in _NAME_LIKE.finditer(question) if m.start() > 0]
    return set(words(" ".join(m.group(0) for m in found), parts=False))


def acronyms(question: str) -> dict[str, str]:
    """The question's all-capital words (US, HR, SLAs), as term → letters: a source may spell them out."""
    out: dict[str, str] = {}
    for m in _ACRONYM.finditer(question):
        found = words(m.group(0), parts=False)
        if found:
            out[found[0]] = m.group(1)
    return out


def spells_out(letters: str, text: str) -> bool:
    """Whether `text` has consecutive words whose initials are `letters` ("United States" for US, "service
    level agreement" for SLA), connecting words (of, and, for, the) skipped. Two letters need capitalised words:
    any two lowercase words would spell a short acronym by chance."""
    capital = len(letters) < 3
    initial = [f"{c}[a-z]" if capital else f"[{c}{c.lower()}]" for c in letters]  # letters are A-Z
    pattern = r"\s+(?:(?:of|and|for|the|&)\s+)?".join(f"{i}[\\w'-]*" for i in initial)
    return re.search(rf"\b{pattern}\b", text) is not None


def whole_words(text: str) -> set[str]:
    """The words and whole identifiers of a text (what a name of the question may match)."""
    return set(words(content(text), parts=False))


def _code_without_examples(code: re.Match[str]) -> str:
    """Inline code with Chinese in it is an example string (`"发票怎么开？"`), not what the sentence is about; so is
    one that is a question."""
    inner = code.group(0)[1:-1].strip("\"'")
    if HAN_RUN.search(inner) or _QUESTION_LIKE.search(inner):
        return " "
    call = _CALL.search(inner)
    return f" {inner[:call.start() + 1]} " if call else code.group(0)  # the callee names it; not its arguments


def _quote_without_questions(quote: re.Match[str]) -> str:
    """A quoted question (“发票什么时候发送”, "How do I …?") is an example being talked about, not content."""
    return " " if _QUESTION_LIKE.search(quote.group(0)[1:-1]) else quote.group(0)


def content(text: str) -> str:
    """What a unit's words are matched on: its text without examples, link targets and URLs (a link keeps its
    text)."""
    text = _URL.sub(" ", _LINK.sub(lambda m: f" {m.group(1)} ", text))
    return _QUOTED.sub(_quote_without_questions, INLINE_CODE.sub(_code_without_examples, text))


def echo_key(text: str) -> str:
    return "".join(normalize(text).split()).rstrip("?？.。!！")


def found(text: str, han_terms: list[str], question_names: set[str], spelled: dict[str, str] | None = None
          ) -> set[str]:
    """The text's content terms, plus the question's Chinese words it contains as written: jieba segments the
    same words differently in different phrases (代表 in the question, 代表队 in the source); and the question's
    acronyms (`spelled`, term → letters) the text spells out (US in "the United States"). A name of the
    question found only as a piece of a longer identifier is left out."""
    text = content(text)
    out = terms(text)
    if question_names & out:
        out -= question_names - set(words(text, parts=False))
    lowered = fold_traditional(text.lower())
    out |= {t for t, letters in (spelled or {}).items() if t not in out and spells_out(letters, text)}
    return out | {t for t in han_terms if t not in out and t in lowered}


def prose(text: str) -> str:
    """The text without inline code, links and URLs: what it says in its own words."""
    return _URL.sub(" ", _LINK.sub(" ", INLINE_CODE.sub(" ", text)))


def script(language: str) -> str:
    """The writing system of a language tag ('' for none): keywords only match within one."""
    if not language:
        return ""
    return "latin" if language in LATIN else {"ja": "zh", "uk": "ru"}.get(language, language)


def prose_script(text: str) -> str:
    """The script of a unit's own words, its code and link targets aside ('' when it has none)."""
    return script(detect_language(prose(text)))


def question_scripts(question: str) -> set[str]:
    """The scripts a unit may be written in to answer the question: the question's, and its content words'
    ("min_relevance 是什么？" is about two English words, which an English sentence matches as well), as the
    retriever's language rule has it."""
    content = detect_language(" ".join(sorted(terms(question))))
    return {script(detect_language(question)), script(content)} - {""}


# The words a question asks to be contacted with ("mail me at …", "请发邮件到 … 联系我", "我的手机 …"): beside the
# user's own details they say how to answer, not what about.
CONTACT_WORDS = frozenset(words("mail e-mail email call phone telephone mobile cell contact reach text write reply "
                                "number address sms whatsapp wechat qq telegram")) | frozenset({
    "邮件", "发邮件", "电子邮件", "电邮", "邮箱", "邮箱地址", "地址", "联系", "联络", "联系方式", "电话", "打电话", "电话号码",
    "手机", "手机号", "手机号码", "号码", "微信", "微信号", "短信", "回复", "回电", "通知"})


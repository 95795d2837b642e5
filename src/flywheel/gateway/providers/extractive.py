"""`extractive`: the offline default model. It answers by quoting the source sentences that best match the
question, each followed by its [n] citation — deterministic, no network, and never says more than the sources.

Contract (what a caller gives it):

- **Sources** are read from the prompt itself, exactly as a real model would see them: every
  `<source id="n" …>text</source>` block (the XML style) or every Markdown section whose heading starts
  with `[n]` (`### [n] name location`, the Markdown style), in any message. A Markdown section runs to the
  next `[n]` heading or to the `Question:` / `问题：` line. Both are the styles the packaged docs_qa prompt
  renders, so any prompt built on `Prompt.render(sources=…)` works.
- **The question** is `request.metadata["question"]` when the caller sets it (the docs-QA app does);
  otherwise the text after the last `Question:` / `问题：` label, otherwise the last user message with the
  source blocks removed.

It quotes up to `params.max_quotes` (default 3) sentences whose IDF-weighted term overlap with the question
covers at least `params.min_coverage` (default 0.34) of the question's terms; English words are lightly
stemmed and Chinese text is segmented into words with jieba. When no sentence reaches that, it says the sources
do not cover the question, in the question's language. Token usage is estimated (~4 characters per token).
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import threading
from dataclasses import dataclass
from typing import Any

from flywheel.config import ModelAlias
from flywheel.gateway.providers.base import BaseProvider, ProviderResponse, estimate_tokens
from flywheel.prompts.render import language_of
from flywheel.types import ChatRequest, Usage

_XML_SOURCE = re.compile(r"<source\b([^>]*)>(.*?)</source>", re.DOTALL)
_XML_ID = re.compile(r"\bid\s*=\s*[\"']?(\d+)")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*\[(\d+)\]")
_QUESTION_LABEL = re.compile(r"^\s*(?:question|问题|問題)\s*[:：]\s*", re.IGNORECASE | re.MULTILINE)
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_FENCE = re.compile(r"^\s*(```|~~~)")
# Data, not prose: YAML keys, JSON/YAML flow collections, shell prompts. Chunking can cut a code block so that
# a chunk starts inside it, without its opening fence.
_CODE_LIKE = re.compile(r"[{\[]|[A-Za-z_][\w.-]*:(?:\s|$)|\$ |>>> ")
_CODE_LINE = re.compile(r"^\s{2,}\S|[(){}\[\]=;]|^\s*(?:def|class|import|from|with|return|async|await|@)\b"
                        r"|^\s*[\w.-]+:(?:\s|$)|^\s*(?:\$|>>>) ")
# Sentence ends: Chinese punctuation (closing quotes/brackets kept with it), or . ! ? followed by space
# and something that starts a sentence — so "e.g. this" and "v1.2" stay whole.
_CJK_END = re.compile(r"(?<=[。！？；!?])([”」』）)]*)")
_EN_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z0-9\"“`(\[*_])")
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[a-z0-9][a-z0-9_]*")
_CJK_CHAR = r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]"

_EN_STOP = frozenset({
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "doing",
    "how", "what", "which", "who", "whom", "whose", "why", "when", "where", "can", "could", "should",
    "would", "will", "shall", "may", "might", "must", "i", "me", "my", "we", "our", "you", "your", "it",
    "its", "they", "them", "their", "he", "she", "his", "her", "this", "that", "these", "those", "there",
    "here", "to", "of", "in", "on", "at", "by", "for", "from", "with", "without", "about", "into", "onto",
    "over", "under", "and", "or", "but", "not", "no", "nor", "if", "then", "than", "so", "as", "also",
    "just", "any", "some", "all", "each", "every", "there's", "it's", "what's", "how's", "i'm", "please",
    "tell", "explain", "describe", "show", "give", "want", "need", "know", "use", "using", "used", "get"
})
# Chinese function words and question words: they do not count as content.
_ZH_STOP = frozenset({
    "如何", "怎么样", "怎么", "怎样", "什么", "哪些", "哪个", "哪里", "为什么", "为何", "是否", "能否", "可以", "能", "会", "可不可以",
    "请问", "一下", "吗", "呢", "吧", "啊", "的", "地", "得", "了", "着", "过", "是", "我", "你", "我们", "你们", "在", "和",
    "与", "及", "或", "也", "就", "都", "有", "把", "被", "对", "从", "为", "以", "于", "这", "那", "这个", "那个", "一个",
    "个", "之", "其", "中", "下", "要", "该", "时", "时候"
})
_jieba_lock = threading.Lock()
_jieba: Any = None

_LEAD = {"en": "According to the sources:", "zh": "根据资料："}
_NOT_COVERED = {"en": "The sources do not cover this question, so I cannot answer it from them.",
                "zh": "提供的资料没有涵盖这个问题，无法据此回答。"}
_NO_SOURCES = {"en": "No sources were given, and the extractive model can only quote sources.",
               "zh": "没有提供任何资料；抽取式模型只能引用资料中的原文。"}


@dataclass(frozen=True)
class Sentence:
    source: int  # the n of [n]
    ordinal: int  # position in the source, for deterministic ties
    text: str


def parse_sources(text: str) -> dict[int, str]:
    """The numbered sources in a rendered prompt: XML `<source id="n">` blocks, else Markdown `[n]` sections."""
    found: dict[int, str] = {}
    for attrs, body in _XML_SOURCE.findall(text):
        m = _XML_ID.search(attrs)
        if m:
            found.setdefault(int(m.group(1)), body.strip())
    if found:
        return found
    current: int | None = None
    body: list[str] = []
    for line in text.splitlines():
        m = _MD_HEADING.match(line)
        if m or (current is not None and _QUESTION_LABEL.match(line)):
            if current is not None:
                found.setdefault(current, "\n".join(body).strip())
            current, body = (int(m.group(1)), []) if m else (None, [])
            continue
        if current is not None:
            body.append(line)
    if current is not None:
        found.setdefault(current, "\n".join(body).strip())
    return found


def _strip_sources(text: str) -> str:
    text = _XML_SOURCE.sub(" ", text)
    keep, inside = [], False
    for line in text.splitlines():
        if _MD_HEADING.match(line):
            inside = True
        elif inside and _QUESTION_LABEL.match(line):
            inside = False
        if not inside:
            keep.append(line)
    return "\n".join(keep)


def find_question(request: ChatRequest) -> str:
    given = request.metadata.get("question")
    if isinstance(given, str) and given.strip():
        return given.strip()
    user = request.last_user()
    labels = list(_QUESTION_LABEL.finditer(user))
    if labels:
        return user[labels[-1].end():].split("\n\n")[0].strip()
    return _strip_sources(user).strip()


# ---------------------------------------------------------------- sentences and terms


def _join(a: str, b: str) -> str:
    """Join wrapped lines: no space between two CJK characters, one space otherwise."""
    if not a:
        return b
    if re.match(_CJK_CHAR, a[-1]) and re.match(_CJK_CHAR, b[:1] or " "):
        return a + b
    return f"{a} {b}"


def _starts_inside_code(lines: list[str]) -> bool:
    """Whether a passage begins inside a code block whose opening fence is in an earlier chunk: its fences
    are unbalanced, the first one is a bare closing fence, and the lines before it look like code."""
    fences = [i for i, line in enumerate(lines) if _FENCE.match(line)]
    if len(fences) % 2 == 0 or lines[fences[0]].strip() not in ("```", "~~~"):
        return False
    before = [line for line in lines[: fences[0]] if line.strip()]
    return bool(before) and sum(bool(_CODE_LINE.search(line)) for line in before) * 2 >= len(before)


def _paragraphs(text: str) -> list[str]:
    """Markdown-aware units: wrapped paragraphs joined, list items and table rows apart, code left out."""
    units: list[str] = []
    current = ""
    lines = text.splitlines()
    in_code = _starts_inside_code(lines)
    for raw in lines:
        line = raw.strip()
        if _FENCE.match(raw):
            in_code = not in_code
            units.append(current)
            current = ""
            continue
        if in_code or line.startswith(("#", "|", "<")) or not line:
            units.append(current)
            current = ""
            # Code is not quoted: examples often repeat a question's words without answering it.
            if not in_code and line.startswith("|") and not set(line) <= set("|-: "):
                units.append(line)
            continue
        if _LIST_MARK.match(raw):
            units.append(current)
            current = _LIST_MARK.sub("", raw, count=1).strip()
            continue
        current = _join(current, line)
    units.append(current)
    return [u for u in units if u and not _CODE_LIKE.match(u)]


def split_sentences(text: str) -> list[str]:
    """Sentences of English and Chinese text (paragraphs first, then sentence punctuation)."""
    out: list[str] = []
    for para in _paragraphs(text):
        for piece in _CJK_END.sub(r"\1\n", para).split("\n"):
            out.extend(s.strip() for s in _EN_END.split(piece) if s and s.strip())
    return [s for s in out if len(s) >= 2]


def _stem(word: str) -> str:
    """A light English stemmer: plural and -ed/-ing endings, doubled consonants, a final e."""
    if len(word) > 4 and word.endswith(("ies", "ied")):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("es") and word[:-2].endswith(("s", "x", "z", "ch", "sh")):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is", "as")):
        word = word[:-1]
    elif len(word) > 5 and word.endswith("ing") or len(word) > 4 and word.endswith("ed"):
        word = word[:-3] if word.endswith("ing") else word[:-2]
        if len(word) > 2 and word[-1] == word[-2] and word[-1] not in "lsz":
            word = word[:-1]  # pinned → pinn → pin
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]
    return word


def _words(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in _EN_STOP]


def _pairs(words: list[str]) -> set[tuple[str, str]]:
    return set(itertools.pairwise(words))


def _segment(run: str) -> list[str]:
    """Chinese words of a run of Han characters (jieba, loaded once and quietly)."""
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _jieba = jieba
    return _jieba.lcut(run)


def terms(text: str) -> set[str]:
    """Content terms: stemmed English words and Chinese words of two or more characters (jieba), without
    function words."""
    lowered = text.lower()
    out = set(_words(lowered))
    for run in _HAN_RUN.findall(lowered):
        # Single characters (词, 下, 用) are too ambiguous to count as matching content.
        out.update(w for w in _segment(run) if len(w) > 1 and w not in _ZH_STOP)
    return out


def best_sentences(question: str, sources: dict[int, str], *, max_quotes: int = 3,
                   min_coverage: float = 0.34) -> list[tuple[float, Sentence]]:
    """The sentences that cover the most of the question's terms (IDF-weighted), best first."""
    sentences = [Sentence(n, i, s) for n in sorted(sources) for i, s in enumerate(split_sentences(sources[n]))]
    q_terms = terms(question)
    if not sentences or not q_terms:
        return []
    s_terms = [terms(s.text) for s in sentences]
    # Question words in the same order ("model version") break ties between equally covering sentences.
    q_pairs = _pairs(_words(question))
    df: dict[str, int] = {}
    for ts in s_terms:
        for t in ts & q_terms:
            df[t] = df.get(t, 0) + 1
    n = len(sentences)
    # A question term found in no sentence keeps the highest weight: missing it lowers coverage the most.
    idf = {t: math.log(1 + n / df.get(t, 0.5)) for t in q_terms}
    total = sum(idf.values())
    # A sentence sharing one word with a two-word question ("reset my password") does not answer it.
    need_terms = min(2, len(q_terms))
    q_lang = language_of(question)
    scored = []
    for sent, ts in zip(sentences, s_terms):
        shared = ts & q_terms
        coverage = sum(idf[t] for t in shared) / total
        if coverage >= min_coverage and len(shared) >= need_terms:
            order = len(q_pairs & _pairs(_words(sent.text))) / len(q_pairs) if q_pairs else 0.0
            # a quote in the reader's language beats an equally matching one in another language
            same_language = 0.25 if language_of(sent.text) == q_lang else 0.0
            scored.append((coverage + 0.1 * order + same_language, sent))
    scored.sort(key=lambda x: (-x[0], x[1].source, x[1].ordinal))
    if not scored:
        return []
    floor = max(min_coverage, scored[0][0] * 0.5)
    picked: list[tuple[float, Sentence]] = []
    seen: set[str] = set()
    for coverage, sent in scored:
        key = " ".join(sent.text.split()).lower()
        if coverage < floor or key in seen:
            continue
        seen.add(key)
        picked.append((coverage, sent))
        if len(picked) >= max_quotes:
            break
    return picked


def extractive_answer(question: str, sources: dict[int, str], *, max_quotes: int = 3,
                      min_coverage: float = 0.34) -> str:
    language = "zh" if language_of(question) == "zh" else "en"
    if not sources:
        return _NO_SOURCES[language]
    picked = best_sentences(question, sources, max_quotes=max_quotes, min_coverage=min_coverage)
    if not picked:
        return _NOT_COVERED[language]
    lines = [_LEAD[language]]
    for _, sent in picked:
        quote = f"「{sent.text}」" if language == "zh" else f"“{sent.text}”"
        lines.append(f"- {quote} [{sent.source}]")
    return "\n".join(lines)


class ExtractiveProvider(BaseProvider):
    """The offline model behind `provider: extractive`."""

    name = "extractive"

    def chat(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> ProviderResponse:
        prompt = "\n\n".join(m.content for m in request.messages)
        sources: dict[int, str] = {}
        for m in request.messages:
            for n, text in parse_sources(m.content).items():
                sources.setdefault(n, text)
        params = alias.params or {}
        text = extractive_answer(find_question(request), sources,
                                 max_quotes=int(params.get("max_quotes", 3)),
                                 min_coverage=float(params.get("min_coverage", 0.34)))
        usage = Usage(input_tokens=estimate_tokens(prompt), output_tokens=estimate_tokens(text))
        return ProviderResponse(text, usage, alias.model or "extractive", "stop")
